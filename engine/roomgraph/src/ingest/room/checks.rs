//! The receipt checks of one event (steps 4–6 of the spec): against its auth events, the state
//! before it (resolved from its prev events) and the room's current state.

use super::*;

impl RoomWorker {
    /// Loads the state entries `keys` of `view` (the auth events the state-dependent rules may read)
    /// into the cache and returns them as an [`AuthState`].
    pub(super) fn state_for_check(
        &mut self,
        ctx: &BatchContext<'_>,
        keys: &[u32],
        view: &StateView,
    ) -> RoomResult<SmallVec<[Arc<AuthEvent>; 8]>> {
        let mut events = SmallVec::new();
        for &k in keys {
            let Some(num) = view.get(k) else { continue };
            let a = self.auth.load(ctx, num)?;
            if !events.iter().any(|e: &Arc<AuthEvent>| Arc::ptr_eq(e, &a)) {
                events.push(a);
            }
        }
        Ok(events)
    }

    /// The state before an event whose prev events are all timeline events: the resolution of the
    /// states after them. Also names a prev event of another room, if any.
    pub(super) fn state_from_prevs(
        &mut self,
        ctx: &BatchContext<'_>,
        event: &AuthEvent,
        prev_nums: &[u64],
        writes: &mut Writes,
    ) -> RoomResult<(Result<StateView, String>, Option<String>)> {
        let mut foreign_prev = None;
        let mut prev_views: SmallVec<[StateView; 2]> = SmallVec::new();
        for (p, id) in prev_nums.iter().zip(&event.pdu.prev_events) {
            match self.info(ctx, *p)? {
                Some((i, true)) => prev_views.push(self.view(ctx, i.after)?),
                _ => foreign_prev = Some(id.to_string()),
            }
        }
        let before = if prev_views.is_empty() {
            Ok(StateView::empty())
        } else {
            self.resolve_fork(ctx, &prev_views, writes)?
        };
        Ok((before, foreign_prev))
    }

    /// Step 4 of the receipt checks: the event against its own auth events (rejected ones left out).
    pub(super) fn check_auth_events(
        &mut self,
        ctx: &BatchContext<'_>,
        event: &Arc<AuthEvent>,
        auth_nums: &[u64],
        create: &Arc<AuthEvent>,
    ) -> RoomResult<Result<(), Reason>> {
        let mut auth_events: SmallVec<[Arc<AuthEvent>; 8]> = SmallVec::new();
        // At most 10 auth events: a list beats a map.
        let mut statuses: SmallVec<[(&str, EventStatus); 8]> = SmallVec::new();
        for (a, id) in auth_nums.iter().zip(&event.pdu.auth_events) {
            let ae = self.auth.load(ctx, *a)?;
            let status = match self.info(ctx, *a)? {
                Some((i, _)) => i.status,
                None => EventStatus::Rejected,
            };
            statuses.push((id, status));
            auth_events.push(ae);
        }
        let refs: SmallVec<[&AuthEvent; 8]> = auth_events.iter().map(|a| &**a).collect();
        // Mostly none is rejected: then no id needs comparing.
        let any_rejected = statuses.iter().any(|(_, s)| s.is_rejected());
        let is_rejected = |id: &str| {
            any_rejected
                && statuses
                    .iter()
                    .rev()
                    .find(|(i, _)| *i == id)
                    .is_some_and(|(_, s)| s.is_rejected())
        };
        if let Err(e) = auth::check_state_independent(event, &refs, Some(create), &is_rejected) {
            return Ok(Err(Reason::AuthEvents(Box::new(e))));
        }
        let usable: SmallVec<[&AuthEvent; 8]> = auth_events
            .iter()
            .filter(|a| !is_rejected(a.event_id()))
            .map(|a| &**a)
            .collect();
        if let Err(e) = auth::check_state_dependent(event, &AuthEventsState::new(&usable), create) {
            return Ok(Err(Reason::AuthEvents(Box::new(e))));
        }
        Ok(Ok(()))
    }

    /// Checks against the event's own auth events, the state before it and the current state (for an
    /// event at a gap, `gap`: the resolution of the current extremities' states with the state before
    /// it, as Synapse's `_check_for_soft_fail` does when prev events are missing).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn check(
        &mut self,
        ctx: &BatchContext<'_>,
        event: &Arc<AuthEvent>,
        is_create: bool,
        before: Result<StateView, String>,
        foreign_prev: Option<String>,
        gap: bool,
        parents: &Parents,
        writes: &mut Writes,
    ) -> RoomResult<(Verdict, Option<StateView>)> {
        let reject = |reason: Reason| Verdict {
            status: EventStatus::Rejected,
            reason: Some(reason),
        };
        let before = match before {
            Ok(v) => v,
            Err(reason) => {
                return Ok((reject(Reason::StateBeforeUnresolved(reason)), None));
            }
        };
        if let Some(id) = foreign_prev {
            return Ok((reject(Reason::ForeignPrevEvent(id)), Some(before)));
        }
        if is_create {
            if let Some((_, create)) = &self.create {
                let other = &create.pdu.event_id;
                return Ok((
                    reject(Reason::SecondCreate(other.to_string())),
                    Some(before),
                ));
            }
            return Ok(
                match auth::check_state_independent(event, &[], None, &|_| false) {
                    Ok(()) => (
                        Verdict {
                            status: EventStatus::Accepted,
                            reason: None,
                        },
                        Some(before),
                    ),
                    Err(e) => (reject(Reason::AuthEvents(Box::new(e))), Some(before)),
                },
            );
        }
        let Some((_, create)) = self.create.clone() else {
            return Ok((reject(Reason::NoCreate), Some(before)));
        };
        if event.pdu.prev_events.is_empty() {
            return Ok((reject(Reason::NoPrevEvents), Some(before)));
        }

        // Step 4: the event's own auth events.
        if let Err(reason) = self.check_auth_events(ctx, event, &parents.auth, &create)? {
            return Ok((reject(reason), Some(before)));
        }

        // Step 5: the state before the event.
        let keys = self.check_keys(ctx, event)?;
        let state = self.state_for_check(ctx, &keys, &before)?;
        if let Err(e) = auth::check_state_dependent(event, &ArcState(&state), &create) {
            return Ok((reject(Reason::StateBefore(Box::new(e))), Some(before)));
        }

        // Step 6: the current state (soft fail).
        let current = if gap {
            let mut views: Vec<StateView> = Vec::with_capacity(self.extremities.events.len() + 1);
            for e in self.extremities.events.clone() {
                let snap = self.info(ctx, e)?.map_or(EMPTY_SNAPSHOT, |(i, _)| i.after);
                views.push(self.view(ctx, snap)?);
            }
            views.push(before.clone());
            match self.resolve_fork(ctx, &views, writes)? {
                Ok(v) => v,
                Err(reason) => {
                    return Ok((
                        Verdict {
                            status: EventStatus::SoftFailed,
                            reason: Some(Reason::CurrentStateUnresolved(reason)),
                        },
                        Some(before),
                    ));
                }
            }
        } else {
            self.extremities.current.clone()
        };
        if current.snap != before.snap {
            let state = self.state_for_check(ctx, &keys, &current)?;
            if let Err(e) = auth::check_state_dependent(event, &ArcState(&state), &create) {
                return Ok((
                    Verdict {
                        status: EventStatus::SoftFailed,
                        reason: Some(Reason::CurrentState(Box::new(e))),
                    },
                    Some(before),
                ));
            }
        }
        Ok((
            Verdict {
                status: EventStatus::Accepted,
                reason: None,
            },
            Some(before),
        ))
    }
}

/// An [`AuthState`] over a handful of loaded events.
pub(super) struct ArcState<'a>(&'a [Arc<AuthEvent>]);

impl AuthState for ArcState<'_> {
    fn get(&self, event_type: &str, state_key: &str) -> Option<&AuthEvent> {
        self.0
            .iter()
            .find(|e| {
                e.pdu.event_type == event_type && e.pdu.state_key.as_deref() == Some(state_key)
            })
            .map(|a| &**a)
    }
}
