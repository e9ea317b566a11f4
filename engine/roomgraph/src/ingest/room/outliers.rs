//! Outliers: events stored without state because prev events are missing, their waits on those prev
//! events, and the de-outliering when a gap closes ([ingest.md](../../../../docs/ingest.md) § Gaps).

use super::*;

/// The room's outliers and the gaps they wait on.
#[derive(Default)]
pub(super) struct Outliers {
    /// Outliers by the missing or outlier prev event they wait for (persisted: [`OUTLIER_WAITS`]).
    waits: FastMap<Box<str>, SmallVec<[u64; 2]>>,
    /// Outliers stored by this process, by number.
    bytes: IntMap<u64, OutlierBytes>,
    /// Missing or outlier events that an accepted timeline event cites as a prev event (persisted:
    /// [`CITED`]): when they join the timeline they are not forward extremities.
    cited: FastSet<Box<str>>,
}

/// The bytes of an outlier stored by this process, kept to rewrite its record when it is
/// de-outliered (older outliers are read back from the store).
struct OutlierBytes {
    raw: Vec<u8>,
    redacted: Option<Vec<u8>>,
    line: Option<u64>,
}

impl Outliers {
    /// The persisted waits and cited events of a stored room.
    pub(super) fn load(ctx: &BatchContext<'_>, room_id: &str) -> RoomResult<Outliers> {
        let mut outliers = Outliers::default();
        let this_room = InRoom { room_id, key: () };
        for ((id, num), ()) in ctx.store.scan(&OUTLIER_WAITS, &this_room)? {
            outliers.waits.entry(id.into()).or_default().push(num);
        }
        for (id, ()) in ctx.store.scan(&CITED, &this_room)? {
            outliers.cited.insert(id.into());
        }
        Ok(outliers)
    }

    /// Whether any outlier waits for a prev event.
    pub(super) fn any_waiting(&self) -> bool {
        !self.waits.is_empty()
    }

    /// The prev events outliers wait for.
    pub(super) fn gaps(&self) -> Vec<Box<str>> {
        self.waits.keys().cloned().collect()
    }

    /// Whether an accepted timeline event cites `event_id` as a missing or outlier prev event.
    pub(super) fn is_cited(&self, event_id: &str) -> bool {
        self.cited.contains(event_id)
    }

    /// Drops what was kept for an outlier that is now a timeline event.
    pub(super) fn forget(
        &mut self,
        room_id: &str,
        num: u64,
        event: &AuthEvent,
        writes: &mut Writes,
    ) {
        self.bytes.remove(&num);
        for id in &event.pdu.prev_events {
            if let Some(list) = self.waits.get_mut(&**id) {
                list.retain(|n| *n != num);
                if list.is_empty() {
                    self.waits.remove(&**id);
                }
            }
            let key = InRoom {
                room_id,
                key: (&**id, num),
            };
            writes.remove(&OUTLIER_WAITS, &key);
        }
    }
}

impl RoomWorker {
    /// The outliers waiting for `event_id` whose gap it closes, as work to de-outlier them.
    pub(super) fn outliers_waiting_for(
        &mut self,
        ctx: &BatchContext<'_>,
        event_id: &str,
        writes: &mut Writes,
    ) -> RoomResult<Vec<(ParsedEvent, u64)>> {
        let Some(nums) = self.outliers.waits.remove(event_id) else {
            return Ok(Vec::new());
        };
        let mut ready = Vec::with_capacity(nums.len());
        for num in nums {
            writes.remove(&OUTLIER_WAITS, &self.in_room((event_id, num)));
            let event = self.auth.load(ctx, num)?;
            let (raw, redacted, line) = match self.outliers.bytes.get(&num) {
                Some(b) => (b.raw.clone(), b.redacted.clone(), b.line),
                None => {
                    // An outlier of an earlier process: durable, so the store has it.
                    let rec = ctx.store.event_record(num)?.ok_or_else(|| {
                        EVENTS.corrupt(&num, "outlier waiting for its prev events is missing")
                    })?;
                    let redacted = rec.redacted.then(|| rec.pdu.clone());
                    (rec.pdu, redacted, None)
                }
            };
            let unsigned = crate::ingest::receipt::stored_presence(
                redacted.as_deref().unwrap_or(&raw),
                self.version,
            );
            ready.push((
                ParsedEvent {
                    line,
                    event,
                    raw,
                    redacted,
                    unsigned,
                    pending_seq: None,
                    outlier: false,
                },
                num,
            ));
        }
        Ok(ready)
    }

    /// Stores an event whose prev events are missing or outliers, and for which no state was supplied,
    /// as an outlier: checked against its auth events only (spec: step 4), no state of its own, never
    /// an extremity. It waits to be de-outliered when its gap closes.
    pub(super) fn store_outlier(
        &mut self,
        ctx: &BatchContext<'_>,
        item: ParsedEvent,
        parents: Parents,
        gaps: SmallVec<[Box<str>; 2]>,
        event_id: String,
        out: &mut RoomOutput,
    ) -> RoomResult<EventOutcome> {
        let ParsedEvent {
            line,
            event,
            raw,
            redacted,
            unsigned,
            ..
        } = item;
        let num = ctx.next_event.fetch_add(1, Ordering::Relaxed);
        self.state_log.numbered(num);
        let is_create = event.is_create() && event.pdu.state_key.as_deref() == Some("");
        // Synapse validates an outlier's signatures before its auth events, as a timeline event's.
        let verdict = match (unsigned, self.create.clone()) {
            (Some(failure), _) => Err(Reason::Signature(failure)),
            (None, Some((_, create))) if is_create => {
                Err(Reason::SecondCreate(create.pdu.event_id.to_string()))
            }
            (None, None) if is_create => {
                auth::check_state_independent(&event, &[], None, &|_| false)
                    .map_err(|e| Reason::AuthEvents(Box::new(e)))
            }
            (None, None) => Err(Reason::NoCreate),
            (None, Some((_, create))) => {
                self.check_auth_events(ctx, &event, &parents.auth, &create)?
            }
        };
        let status = match verdict {
            Ok(()) => EventStatus::Outlier,
            Err(_) => EventStatus::RejectedOutlier,
        };
        let reason = verdict.err();
        let stored_reason = reason.as_ref().map(ToString::to_string).unwrap_or_default();
        let writes = &mut out.writes;
        // A create event stored as an outlier (a send_join response's) founds the room all the same.
        if is_create && status == EventStatus::Outlier {
            self.set_create(num, &event, writes);
        }
        if let Some(sk) = event.pdu.state_key.as_deref() {
            self.auth
                .index(&self.room_id, num, &parents.auth, &event, writes)?;
            if !status.is_rejected() {
                let k = self.keys.intern(ctx, &event.pdu.event_type, sk)?;
                self.keys.of_event.insert(num, k);
                self.state_log.push(num);
            }
        }
        // Kept until durable: de-outliering reads it back before its batch may be committed.
        self.auth.insert(num, &event);
        self.events.ids.insert(event_id.as_str().into(), num);
        self.events.info.insert(
            num,
            EventInfo {
                status,
                after: EMPTY_SNAPSHOT,
            },
        );
        self.write_event(
            writes,
            num,
            &event_id,
            status,
            &stored_reason,
            redacted.as_deref().unwrap_or(&raw),
            redacted.is_some(),
            (EMPTY_SNAPSHOT, EMPTY_SNAPSHOT),
            &parents,
        );
        for g in &gaps {
            writes.insert(&OUTLIER_WAITS, &self.in_room((g.as_ref(), num)), &());
            self.outliers.waits.entry(g.clone()).or_default().push(num);
        }
        let was_redacted = redacted.is_some();
        // Kept to de-outlier it when its gap closes (an outlier by request waits for nothing: it is
        // de-outliered only when received again, with its bytes).
        if !gaps.is_empty() {
            self.outliers.bytes.insert(
                num,
                OutlierBytes {
                    raw,
                    redacted,
                    line,
                },
            );
        }
        let (outcome, mut reason) = match status {
            EventStatus::Outlier => (Outcome::Outlier, None),
            _ => (
                Outcome::Rejected,
                reason.map(|r| Reason::Outlier(Box::new(r))),
            ),
        };
        if was_redacted {
            reason = redacted_reason(reason);
        }
        Ok(EventOutcome {
            line,
            event_id: Some(event_id),
            outcome,
            reason,
            deoutliered: false,
        })
    }

    /// Remembers (and persists) that an accepted timeline event cites these missing or outlier prev
    /// events: when one of them later joins the timeline, it is not a forward extremity.
    pub(super) fn cite_gaps(&mut self, event: &AuthEvent, parents: &Parents, writes: &mut Writes) {
        for id in &event.pdu.prev_events {
            let gap = parents.missing.iter().any(|m| **m == **id)
                || self
                    .events
                    .ids
                    .get(&**id)
                    .and_then(|n| self.events.info.get(n))
                    .is_some_and(|i| i.status.is_outlier());
            if gap && self.outliers.cited.insert(Box::from(&**id)) {
                writes.insert(&CITED, &self.in_room(&**id), &());
            }
        }
    }
}
