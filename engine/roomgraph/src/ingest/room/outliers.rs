//! Outliers: events stored without state because prev events are missing, their waits on those prev
//! events, and the de-outliering when a gap closes ([ingest.md](../../../../docs/ingest.md) § Gaps).

use super::*;

impl RoomWorker {
    /// The outliers waiting for `event_id` whose gap it closes, as work to de-outlier them.
    pub(super) fn outliers_waiting_for(
        &mut self,
        ctx: &BatchContext<'_>,
        event_id: &str,
        writes: &mut Writes,
    ) -> RoomResult<Vec<(ParsedEvent, u64)>> {
        let Some(nums) = self.outlier_wait.remove(event_id) else {
            return Ok(Vec::new());
        };
        let mut ready = Vec::with_capacity(nums.len());
        for num in nums {
            writes.remove(&OUTLIER_WAITS, &self.in_room((event_id, num)));
            let event = self.load_auth(ctx, num)?;
            let (raw, redacted, line) = match self.outlier_bytes.get(&num) {
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
        self.log_from = self.log_from.min(num);
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
            self.index_auth_chain(num, &parents.auth, &event, writes)?;
            if !status.is_rejected() {
                let k = self.intern_key(ctx, &event.pdu.event_type, sk)?;
                self.event_keys.insert(num, k);
                self.state_log.push(num);
            }
        }
        // Kept until durable: de-outliering reads it back before its batch may be committed.
        self.auth_cache.insert(num, Arc::clone(&event));
        self.ids.insert(event_id.as_str().into(), num);
        self.info.insert(
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
            self.outlier_wait.entry(g.clone()).or_default().push(num);
        }
        let was_redacted = redacted.is_some();
        // Kept to de-outlier it when its gap closes (an outlier by request waits for nothing: it is
        // de-outliered only when received again, with its bytes).
        if !gaps.is_empty() {
            self.outlier_bytes.insert(
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
                    .ids
                    .get(&**id)
                    .and_then(|n| self.info.get(n))
                    .is_some_and(|i| i.status.is_outlier());
            if gap && self.cited.insert(Box::from(&**id)) {
                writes.insert(&CITED, &self.in_room(&**id), &());
            }
        }
    }

    /// Drops what was kept for an outlier that is now a timeline event.
    pub(super) fn forget_outlier(&mut self, num: u64, event: &AuthEvent, writes: &mut Writes) {
        self.outlier_bytes.remove(&num);
        for id in &event.pdu.prev_events {
            if let Some(list) = self.outlier_wait.get_mut(&**id) {
                list.retain(|n| *n != num);
                if list.is_empty() {
                    self.outlier_wait.remove(&**id);
                }
            }
            writes.remove(&OUTLIER_WAITS, &self.in_room((&**id, num)));
        }
    }
}
