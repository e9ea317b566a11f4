//! The pending set: events waiting for their auth events (or their room's create event), parked,
//! persisted and released when what they wait for is stored.

use super::*;

/// The room's events waiting for a missing event id.
#[derive(Default)]
pub(super) struct PendingSet {
    /// The waiting events, by the event id they wait for.
    waiting: FastMap<String, Vec<ParsedEvent>>,
    /// Events in `waiting` without a pending row yet (parked by the current run).
    unsaved: usize,
}

impl PendingSet {
    /// Writes the pending rows of the events parked by this run that are still waiting. An event
    /// parked and woken within one run (unordered input: most of a send_join response) costs no row:
    /// writing each one and deleting it in the same batch doubled the bytes committed.
    pub(super) fn persist(&mut self, ctx: &BatchContext<'_>, writes: &mut Writes) {
        if self.unsaved == 0 {
            return;
        }
        for items in self.waiting.values_mut() {
            for item in items.iter_mut().filter(|i| i.pending_seq.is_none()) {
                let seq = ctx.next_pending.fetch_add(1, Ordering::Relaxed);
                writes.insert(&PENDING, &seq, item.raw.as_slice());
                item.pending_seq = Some(seq);
            }
        }
        self.unsaved = 0;
    }

    /// Puts an event into the waiting set (persisted at the end of the run if it still waits then:
    /// [`PendingSet::persist`]), or reports it when the set is full.
    pub(super) fn park(
        &mut self,
        ctx: &BatchContext<'_>,
        item: ParsedEvent,
        missing: String,
        out: &mut RoomOutput,
    ) {
        if item.pending_seq.is_none() {
            if ctx.pending_count.load(Ordering::Relaxed) >= ctx.max_pending {
                out.outcomes.push(EventOutcome {
                    line: item.line,
                    event_id: Some(item.event.pdu.event_id.to_string()),
                    outcome: Outcome::Pending,
                    reason: Some(Reason::PendingSetFull {
                        limit: ctx.max_pending,
                        waiting_for: missing,
                    }),
                    deoutliered: false,
                });
                return;
            }
            self.unsaved += 1;
        }
        ctx.pending_count.fetch_add(1, Ordering::Relaxed);
        self.waiting.entry(missing).or_default().push(item);
    }

    /// Takes the events waiting for `event_id`.
    pub(super) fn take(&mut self, event_id: &str) -> Option<Vec<ParsedEvent>> {
        if self.waiting.is_empty() {
            None
        } else {
            self.waiting.remove(event_id)
        }
    }
}

impl RoomWorker {
    /// Moves waiting events whose missing parent is now stored (e.g. in another room) back into play,
    /// and outliers whose missing prev event is now stored in another room (they are then rejected).
    /// The deletions of the outliers' wait rows go into `writes`, committed with the work.
    pub fn take_unblocked(
        &mut self,
        ctx: &BatchContext<'_>,
        writes: &mut Writes,
    ) -> RoomResult<Vec<ParsedEvent>> {
        let mut ready = Vec::new();
        let gaps = self.outliers.gaps();
        for g in gaps {
            if !self.events.ids.contains_key(&*g) && ctx.store.event_num(&g)?.is_some() {
                for (item, _) in self.outliers_waiting_for(ctx, &g, writes)? {
                    ready.push(item);
                }
            }
        }
        let keys: Vec<String> = self.pending.waiting.keys().cloned().collect();
        for k in keys {
            if (ctx.store.event_num(&k)?.is_some() || self.events.ids.contains_key(k.as_str()))
                && let Some(items) = self.pending.waiting.remove(&k)
            {
                ctx.pending_count.fetch_sub(items.len(), Ordering::Relaxed);
                ready.extend(items);
            }
        }
        Ok(ready)
    }

    /// The waiting events, as pending outcomes naming the missing events that block them: the root
    /// missing ancestors (an event that is itself waiting is followed to what it waits for).
    pub fn pending_outcomes(&mut self, ctx: &BatchContext<'_>) -> RoomResult<Vec<EventOutcome>> {
        // What each waiting event waits for: the key it is parked under, and any other auth event
        // not stored.
        let mut blockers: FastMap<String, SmallVec<[String; 2]>> = FastMap::default();
        let waiting: Vec<(String, Vec<WaitingEvent>)> = self
            .pending
            .waiting
            .iter()
            .map(|(missing, items)| {
                let items = items
                    .iter()
                    .map(|i| {
                        (
                            i.line,
                            i.event.pdu.event_id.to_string(),
                            Arc::clone(&i.event),
                        )
                    })
                    .collect();
                (missing.clone(), items)
            })
            .collect();
        for (missing, items) in &waiting {
            for (_, id, event) in items {
                let mut b: SmallVec<[String; 2]> = SmallVec::new();
                b.push(missing.clone());
                for a in &event.pdu.auth_events {
                    if **a != **missing && self.events.lookup(ctx, a)?.is_none() {
                        b.push(a.to_string());
                    }
                }
                blockers.insert(id.clone(), b);
            }
        }
        let mut out = Vec::new();
        for (_, items) in &waiting {
            for (line, id, _) in items {
                let mut roots: Vec<&str> = Vec::new();
                let mut seen: FastSet<&str> = FastSet::default();
                let mut stack: Vec<&str> = vec![id.as_str()];
                while let Some(e) = stack.pop() {
                    for m in blockers.get(e).map(|b| b.as_slice()).unwrap_or_default() {
                        if !seen.insert(m.as_str()) {
                            continue;
                        }
                        if blockers.contains_key(m.as_str()) {
                            stack.push(m.as_str());
                        } else {
                            roots.push(m.as_str());
                        }
                    }
                }
                roots.sort_unstable();
                out.push(EventOutcome {
                    line: *line,
                    event_id: Some(id.clone()),
                    outcome: Outcome::Pending,
                    reason: Some(Reason::Waiting(
                        roots.iter().map(|r| (*r).to_owned()).collect(),
                    )),
                    deoutliered: false,
                });
            }
        }
        out.sort_by(|a, b| {
            a.line
                .cmp(&b.line)
                .then_with(|| a.event_id.cmp(&b.event_id))
        });
        Ok(out)
    }
}

/// A waiting event as [`RoomWorker::pending_outcomes`] reads it: line, id, event.
pub(super) type WaitingEvent = (Option<u64>, String, Arc<AuthEvent>);
