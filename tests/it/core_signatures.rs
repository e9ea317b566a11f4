//! Tests of roomgraph-core that build events with `roomgraph_testkit` (which depends on the core,
//! so they cannot be the core's own unit tests).

/// Moved from `engine/core/src/signatures.rs`.
mod signatures {
    use roomgraph::canonical_json::{JsonObject, JsonValue};
    use roomgraph::pdu::Pdu;
    use roomgraph::room_version::RoomVersion;

    use roomgraph::canonical_json::to_canonical_string;
    use roomgraph::hashes::{base64_standard, reference_hash};
    use roomgraph::signatures::*;
    use roomgraph_testkit::builder::EventBuilder;

    fn v(id: &str) -> &'static RoomVersion {
        RoomVersion::from_id(id).expect("known")
    }

    /// A test key: the secret is derived from a label, so no key is shared by accident.
    fn seed(label: &str) -> [u8; 32] {
        <sha2::Sha256 as sha2::Digest>::digest(label.as_bytes()).into()
    }

    fn ring(entries: &[(&str, &str, &[u8; 32], Option<i64>)]) -> KeyRing {
        let mut keys = KeyRing::new();
        for (server, key_id, secret, until) in entries {
            keys.insert(server, key_id, public_key(secret), *until)
                .expect("valid key");
        }
        keys
    }

    fn message(version: &str, sender: &str) -> EventBuilder {
        EventBuilder::with_json_content(v(version), "m.room.message", sender, r#"{"body":"hi"}"#)
            .room_id("!r:a.org")
            .origin_server_ts(5_000)
    }

    fn reparse(pdu: &Pdu<'_>) -> Pdu<'static> {
        let line = to_canonical_string(&JsonValue::Object(pdu.json.clone()));
        Pdu::parse(line.as_bytes(), pdu.version)
            .expect("valid")
            .into_owned()
    }

    #[test]
    fn the_signed_bytes_are_the_reference_hash_input() {
        for version in RoomVersion::all() {
            let pdu = message(version.id, "@a:a.org")
                .field("unsigned", JsonValue::Object(JsonObject::new()))
                .build()
                .expect("valid");
            let digest: [u8; 32] =
                <sha2::Sha256 as sha2::Digest>::digest(signing_input(&pdu.json, version)).into();
            assert_eq!(
                digest,
                reference_hash(&pdu.json, version),
                "v{}",
                version.id
            );
        }
    }

    #[test]
    fn valid_wrong_unknown_and_malformed_keys() {
        let a = seed("a.org 1");
        let pdu = message("11", "@u:a.org")
            .sign("a.org", "ed25519:1", &a)
            .build()
            .expect("valid");
        assert_eq!(
            verify_event(&pdu, &ring(&[("a.org", "ed25519:1", &a, None)])),
            Ok(())
        );
        // Another key under the signing key's id: the signature does not verify.
        let wrong = ring(&[("a.org", "ed25519:1", &seed("not a.org"), None)]);
        assert_eq!(
            verify_event(&pdu, &wrong),
            Err(SignatureError::Invalid {
                server: "a.org".into(),
                signer: Signer::Sender,
                key_id: "ed25519:1".into(),
            })
        );
        // Only keys the ring does not know: no signature can be checked.
        let other_id = ring(&[("a.org", "ed25519:2", &a, None)]);
        let err = verify_event(&pdu, &other_id).expect_err("unknown key");
        assert!(
            matches!(err, SignatureError::UnknownKey { ref key_ids, .. } if key_ids == "ed25519:1")
        );
        assert_eq!(
            err.to_string(),
            "no signature of a.org (the sender's server) is by a known key (key ids: ed25519:1)"
        );
        // A signature that is not base64 of 64 bytes.
        let mut json = pdu.json.clone();
        sign_event(&mut json, pdu.version, "a.org", "ed25519:1", &a);
        if let Some(JsonValue::Object(s)) = json.get_mut("signatures")
            && let Some(JsonValue::Object(k)) = s.get_mut("a.org")
        {
            k.insert("ed25519:1".into(), JsonValue::String("AAAA".into()));
        }
        let bad = Pdu::from_json(json, pdu.version).expect("valid");
        assert!(matches!(
            verify_event(&bad, &ring(&[("a.org", "ed25519:1", &a, None)])),
            Err(SignatureError::Malformed { .. })
        ));
    }

    #[test]
    fn signatures_by_unknown_keys_are_skipped_but_every_known_one_must_verify() {
        let (k1, k2) = (seed("a.org 1"), seed("a.org 2"));
        let pdu = message("11", "@u:a.org")
            .sign("a.org", "ed25519:1", &k1)
            .sign("a.org", "ed25519:2", &k2)
            .build()
            .expect("valid");
        let only_first = ring(&[("a.org", "ed25519:1", &k1, None)]);
        assert_eq!(verify_event(&pdu, &only_first), Ok(()));
        let second_wrong = ring(&[
            ("a.org", "ed25519:1", &k1, None),
            ("a.org", "ed25519:2", &k1, None),
        ]);
        assert!(matches!(
            verify_event(&pdu, &second_wrong),
            Err(SignatureError::Invalid { ref key_id, .. }) if key_id == "ed25519:2"
        ));
    }

    #[test]
    fn key_validity_is_enforced_from_room_version_5() {
        let a = seed("a.org 1");
        let keys = ring(&[("a.org", "ed25519:1", &a, Some(4_999))]);
        for (id, enforced) in [("1", false), ("4", false), ("5", true), ("12", true)] {
            let pdu = message(id, "@u:a.org")
                .sign("a.org", "ed25519:1", &a)
                .build()
                .expect("valid");
            let result = verify_event(&pdu, &keys);
            if enforced {
                let err = result.expect_err("expired");
                assert!(
                    matches!(
                        err,
                        SignatureError::Expired {
                            valid_until_ts: 4_999,
                            origin_server_ts: 5_000,
                            ..
                        }
                    ),
                    "v{id}"
                );
                assert!(err.to_string().contains("key ed25519:1 of a.org"), "{err}");
            } else {
                assert_eq!(result, Ok(()), "v{id}");
            }
        }
        // Valid until the event's own timestamp is still valid.
        let pdu = message("5", "@u:a.org")
            .sign("a.org", "ed25519:1", &a)
            .build()
            .expect("valid");
        assert_eq!(
            verify_event(&pdu, &ring(&[("a.org", "ed25519:1", &a, Some(5_000))])),
            Ok(())
        );
    }

    #[test]
    fn tampering_breaks_only_what_the_signature_covers() {
        let a = seed("a.org 1");
        let keys = ring(&[("a.org", "ed25519:1", &a, None)]);
        let pdu = EventBuilder::with_json_content(
            v("11"),
            "m.room.member",
            "@u:a.org",
            r#"{"membership":"join","displayname":"U"}"#,
        )
        .state_key("@u:a.org")
        .room_id("!r:a.org")
        .sign("a.org", "ed25519:1", &a)
        .build()
        .expect("valid");
        let tamper = |key: &str, value: &str| {
            let mut json = pdu.json.clone();
            if let Some(JsonValue::Object(c)) = json.get_mut("content") {
                c.insert(
                    key.to_owned().into(),
                    JsonValue::String(value.to_owned().into()),
                );
            }
            reparse(&Pdu::from_json(json, pdu.version).expect("valid"))
        };
        // A key redaction removes: the signature holds (the content hash does not).
        let renamed = tamper("displayname", "Mallory");
        assert_eq!(verify_event(&renamed, &keys), Ok(()));
        assert!(!renamed.content_hash_matches());
        // A key redaction keeps: the signature no longer verifies.
        let left = tamper("membership", "leave");
        assert_eq!(
            verify_event(&left, &keys),
            Err(SignatureError::Invalid {
                server: "a.org".into(),
                signer: Signer::Sender,
                key_id: "ed25519:1".into(),
            })
        );
    }

    #[test]
    fn required_servers_follow_synapse() {
        let a = seed("a.org 1");
        let b = seed("b.org 1");
        let keys = ring(&[
            ("a.org", "ed25519:1", &a, None),
            ("b.org", "ed25519:1", &b, None),
        ]);
        let join = |version: &str, authoriser: &str| {
            EventBuilder::with_json_content(
                v(version),
                "m.room.member",
                "@u:a.org",
                &format!(
                    r#"{{"membership":"join","join_authorised_via_users_server":{authoriser}}}"#
                ),
            )
            .state_key("@u:a.org")
            .room_id("!r:a.org")
            .sign("a.org", "ed25519:1", &a)
        };
        // v8+: the authorising server must sign a join naming it; before v8 the key means nothing.
        let unsigned = join("8", r#""@c:b.org""#).build().expect("valid");
        let missing = Err(SignatureError::Missing {
            server: "b.org".into(),
            signer: Signer::Authoriser,
        });
        assert_eq!(verify_event(&unsigned, &keys), missing);
        assert_eq!(check_present(&unsigned), missing);
        let signed = join("8", r#""@c:b.org""#)
            .sign("b.org", "ed25519:1", &b)
            .build()
            .expect("valid");
        assert_eq!(verify_event(&signed, &keys), Ok(()));
        assert_eq!(check_present(&signed), Ok(()));
        let v7 = join("7", r#""@c:b.org""#).build().expect("valid");
        assert_eq!(verify_event(&v7, &keys), Ok(()));
        assert_eq!(check_present(&v7), Ok(()));
        // An authoriser that names no server: Synapse cannot process the join.
        for bad in ["5", r#""nobody""#] {
            let pdu = join("10", bad).build().expect("valid");
            assert!(
                matches!(check_present(&pdu), Err(SignatureError::Authoriser { .. })),
                "{bad}"
            );
            assert!(
                matches!(
                    verify_event(&pdu, &keys),
                    Err(SignatureError::Authoriser { .. })
                ),
                "{bad}"
            );
        }

        // v1/v2: the server of the event id as well.
        let v1 = message("1", "@u:a.org")
            .local_id("$1:b.org")
            .sign("a.org", "ed25519:1", &a)
            .build()
            .expect("valid");
        assert_eq!(
            verify_event(&v1, &ring(&[("a.org", "ed25519:1", &a, None)])),
            Err(SignatureError::UnknownKey {
                server: "b.org".into(),
                signer: Signer::EventIdDomain,
                key_ids: "ed25519:1".into(),
            })
        );
        let mut json = v1.json.clone();
        if let Some(JsonValue::Object(s)) = json.get_mut("signatures") {
            s.remove("b.org");
        }
        let v1_unsigned = Pdu::from_json(json, v1.version).expect("valid");
        assert_eq!(
            check_present(&v1_unsigned),
            Err(SignatureError::Missing {
                server: "b.org".into(),
                signer: Signer::EventIdDomain,
            })
        );

        // An invite made from a third-party invite need not be signed by the sender's server.
        let mut invite = EventBuilder::with_json_content(
            v("11"),
            "m.room.member",
            "@u:a.org",
            r#"{"membership":"invite","third_party_invite":{"signed":{}}}"#,
        )
        .state_key("@e:c.org")
        .room_id("!r:a.org")
        .build()
        .expect("valid")
        .json;
        invite.insert("signatures".into(), JsonValue::Object(JsonObject::new()));
        let invite = Pdu::from_json(invite, v("11")).expect("valid");
        assert_eq!(check_present(&invite), Ok(()));
        assert_eq!(verify_event(&invite, &KeyRing::new()), Ok(()));
        // Any other event must carry the sender's server.
        let mut plain = message("11", "@u:a.org").build().expect("valid").json;
        plain.insert("signatures".into(), JsonValue::Object(JsonObject::new()));
        let plain = Pdu::from_json(plain, v("11")).expect("valid");
        assert_eq!(
            check_present(&plain),
            Err(SignatureError::Missing {
                server: "a.org".into(),
                signer: Signer::Sender,
            })
        );
    }

    #[test]
    fn key_ring_documents_fail_with_what_and_where() {
        let key = base64_standard(&public_key(&seed("k")));
        let ok = format!(
            r#"{{"a.org":{{"ed25519:1":{{"key":"{key}","valid_until_ts":10}},"ed25519:2":{{"key":"{key}"}}}},"b.org":{{}}}}"#
        );
        let keys = KeyRing::from_json(ok.as_bytes()).expect("valid");
        assert_eq!(keys.len(), 2);
        assert_eq!(
            keys.get("a.org", "ed25519:1").map(|k| k.valid_until_ts),
            Some(Some(10))
        );
        assert_eq!(
            keys.get("a.org", "ed25519:2").map(|k| k.valid_until_ts),
            Some(None)
        );
        assert_eq!(
            keys.get("a.org", "ed25519:2").map(ServerKey::public_key),
            Some(public_key(&seed("k")))
        );
        for (doc, message) in [
            (
                "[]".to_owned(),
                "keys: the document must be an object, found array",
            ),
            (
                r#"{"a.org":1}"#.to_owned(),
                "keys: `a.org` must be an object, found integer",
            ),
            (
                format!(r#"{{"a.org":{{"rsa:1":{{"key":"{key}"}}}}}}"#),
                "keys: a.org: key id `rsa:1` is not of the form `ed25519:<version>`",
            ),
            (
                r#"{"a.org":{"ed25519:1":{"key":"!!"}}}"#.to_owned(),
                "keys: a.org ed25519:1: `key` is not base64",
            ),
            (
                r#"{"a.org":{"ed25519:1":{"key":"AAAA"}}}"#.to_owned(),
                "keys: a.org ed25519:1: `key` is not 32 bytes",
            ),
            (
                r#"{"a.org":{"ed25519:1":{}}}"#.to_owned(),
                "keys: a.org ed25519:1: `key` is missing",
            ),
            (
                format!(r#"{{"a.org":{{"ed25519:1":{{"key":"{key}","valid_until_ts":"soon"}}}}}}"#),
                "keys: a.org ed25519:1: `valid_until_ts` must be an integer, found `soon`",
            ),
            (
                format!(r#"{{"a.org":{{"ed25519:1":{{"key":"{key}","valid_until":1}}}}}}"#),
                "keys: a.org ed25519:1: unknown field `valid_until` (expected `key`, `valid_until_ts`)",
            ),
        ] {
            let err = KeyRing::from_json(doc.as_bytes()).expect_err(&doc);
            assert_eq!(err.to_string(), message, "{doc}");
        }
        assert!(matches!(
            KeyRing::from_json(b"{"),
            Err(KeyRingError::Json(_))
        ));
    }
}
