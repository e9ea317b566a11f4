//! Tests of roomgraph-core that build events with `roomgraph_testkit` (which depends on the core,
//! so they cannot be the core's own unit tests).

/// Moved from `engine/core/src/auth/state.rs`.
mod auth_state {

    use roomgraph::auth::{AuthEvent, AuthState};

    use roomgraph::auth::StateLookup;
    use roomgraph::room_version::RoomVersion;
    use roomgraph_testkit::builder::EventBuilder;

    #[test]
    fn state_map_finds_every_kind_of_key() {
        let v = RoomVersion::from_id("11").expect("known");
        let make = |t: &str, k: &str| {
            AuthEvent::new(
                EventBuilder::with_json_content(v, t, "@a:x", "{}")
                    .state_key(k)
                    .room_id("!r:x")
                    .build()
                    .expect("valid"),
            )
        };
        let events = [
            make("m.room.create", ""),
            make("m.room.power_levels", ""),
            make("m.room.join_rules", ""),
            make("m.room.member", "@a:x"),
            make("m.room.third_party_invite", "tok"),
            make("m.room.topic", ""),
        ];
        let state: StateLookup<'_> = events.iter().collect();
        assert_eq!(state.len(), 6);
        for e in &events {
            let key = (&*e.pdu.event_type, e.pdu.state_key.as_deref().unwrap_or(""));
            assert_eq!(
                state.get(key.0, key.1).map(AuthEvent::event_id),
                Some(e.event_id()),
                "{key:?}"
            );
        }
        assert!(state.get("m.room.member", "@b:x").is_none());
        assert!(state.get("m.room.power_levels", "x").is_none());
    }
}

/// Moved from `engine/core/src/auth/mod.rs`.
mod auth {

    use roomgraph::room_version::RoomVersion;

    use roomgraph::auth::*;
    use roomgraph_testkit::builder::EventBuilder;

    fn event(
        v: &str,
        event_type: &str,
        sender: &str,
        state_key: Option<&str>,
        content: &str,
    ) -> AuthEvent {
        let version = RoomVersion::from_id(v).expect("known");
        let mut b = EventBuilder::with_json_content(version, event_type, sender, content)
            .room_id("!r:a.org");
        if let Some(k) = state_key {
            b = b.state_key(k);
        }
        AuthEvent::new(b.build().expect("valid fixture"))
    }

    fn create(v: &str, extra: &str) -> AuthEvent {
        event(
            v,
            "m.room.create",
            "@alice:a.org",
            Some(""),
            &format!(r#"{{"creator":"@alice:a.org"{extra}}}"#),
        )
    }

    #[test]
    fn selection_follows_the_event() {
        let join = event(
            "8",
            "m.room.member",
            "@bob:a.org",
            Some("@bob:a.org"),
            r#"{"membership":"join","join_authorised_via_users_server":"@carol:b.org"}"#,
        );
        let keys = auth_types_for_event(&join);
        for key in [
            ("m.room.power_levels", ""),
            ("m.room.member", "@bob:a.org"),
            ("m.room.create", ""),
            ("m.room.join_rules", ""),
            ("m.room.member", "@carol:b.org"),
        ] {
            assert!(
                keys.iter().any(|(t, k)| *t == key.0 && k == key.1),
                "{key:?} in {keys:?}"
            );
        }
        assert_eq!(keys.len(), 5);
        let invite = event(
            "12",
            "m.room.member",
            "@bob:a.org",
            Some("@eve:c.org"),
            r#"{"membership":"invite","third_party_invite":{"signed":{"token":"t"}}}"#,
        );
        let keys = auth_types_for_event(&invite);
        assert!(
            keys.iter()
                .any(|(t, k)| *t == "m.room.third_party_invite" && k == "t")
        );
        assert!(
            !keys.iter().any(|(t, _)| *t == "m.room.create"),
            "v12 never cites the create event"
        );
        assert!(auth_types_for_event(&create("11", "")).is_empty());
    }

    #[test]
    fn facts_follow_synapse_readings() {
        assert!(
            !create("6", r#","m.federate":"false""#)
                .create
                .expect("facts")
                .federate
        );
        assert!(create("6", "").create.expect("facts").federate);
        let rules = event("6", "m.room.join_rules", "@alice:a.org", Some(""), "{}");
        assert_eq!(rules.join_rule, Some(JoinRule::Invite));
        let odd = event(
            "6",
            "m.room.join_rules",
            "@alice:a.org",
            Some(""),
            r#"{"join_rule":5}"#,
        );
        assert_eq!(odd.join_rule, Some(JoinRule::Unknown));
    }

    struct Map(Vec<AuthEvent>);

    impl AuthState for Map {
        fn get(&self, t: &str, k: &str) -> Option<&AuthEvent> {
            self.0
                .iter()
                .find(|e| e.pdu.event_type == t && e.pdu.state_key.as_deref() == Some(k))
        }
    }

    #[test]
    fn power_levels_with_a_state_key_compare_against_their_own_key() {
        let c = create("6", "");
        let state = Map(vec![
            event(
                "6",
                "m.room.member",
                "@alice:a.org",
                Some("@alice:a.org"),
                r#"{"membership":"join"}"#,
            ),
            event(
                "6",
                "m.room.power_levels",
                "@alice:a.org",
                Some(""),
                r#"{"users":{"@alice:a.org":60}}"#,
            ),
        ]);
        // Under "" this would raise bob above alice (rule 9.7); under "x" there is no previous event.
        let keyed = event(
            "6",
            "m.room.power_levels",
            "@alice:a.org",
            Some("x"),
            r#"{"users":{"@bob:a.org":99}}"#,
        );
        assert_eq!(check_state_dependent(&keyed, &state, &c), Ok(()));
        let plain = event(
            "6",
            "m.room.power_levels",
            "@alice:a.org",
            Some(""),
            r#"{"users":{"@alice:a.org":60,"@bob:a.org":99}}"#,
        );
        assert_eq!(
            check_state_dependent(&plain, &state, &c).map_err(|f| f.rule),
            Err("9.7".to_owned())
        );
    }

    #[test]
    fn v1_redaction_without_target_passes_like_synapse() {
        let c = create("1", "");
        let state = Map(vec![
            event(
                "1",
                "m.room.member",
                "@carol:b.org",
                Some("@carol:b.org"),
                r#"{"membership":"join"}"#,
            ),
            event(
                "1",
                "m.room.power_levels",
                "@alice:a.org",
                Some(""),
                r#"{"users":{"@alice:a.org":100}}"#,
            ),
        ]);
        let redaction = event("1", "m.room.redaction", "@carol:b.org", None, "{}");
        assert_eq!(check_state_dependent(&redaction, &state, &c), Ok(()));
    }

    #[test]
    fn no_input_panics_on_a_foreign_create() {
        // A "create" argument that is not a create event is a failure, not a panic.
        let not_create = event("11", "m.room.topic", "@alice:a.org", Some(""), "{}");
        let msg = event("11", "m.room.message", "@alice:a.org", None, "{}");
        let failure =
            check_state_dependent(&msg, &Map(Vec::new()), &not_create).expect_err("no create");
        assert_eq!(failure.rule, "2");
        assert_eq!(
            sender_power_level(&msg, None, &not_create),
            PowerLevel::Finite(0)
        );
    }
}
