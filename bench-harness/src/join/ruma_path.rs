//! The ruma-based path of `roomgraph-bench join`: what a homeserver built on ruma does with a
//! `send_join` response, on the same bytes as the roomgraph path.
//!
//! 1. **parse** (in parallel, as roomgraph's parse stage is): each PDU into ruma's canonical JSON, its
//!    event id from `ruma::signatures::reference_hash`, its content hash checked with
//!    `ruma::signatures::content_hash`, and the PDU into a type implementing ruma-state-res's `Event`;
//! 2. **order**: an auth-first topological order over `auth_events`;
//! 3. **auth**: per event, ruma-state-res 0.18's `check_state_independent_auth_rules` (auth events
//!    looked up among the events checked so far, with their rejection) and
//!    `check_state_dependent_auth_rules` against the state made of its auth events (as conduwuit
//!    builds it for an outlier: a map from `(type, state_key)` to the non-rejected auth event);
//! 4. **auth chains**: every event's auth chain, memoised along the order, as a set of short ids per
//!    event (conduwuit keeps `HashSet<ShortEventId>` auth chains);
//! 5. **join**: the join event checked against its auth events and against the response's state, and
//!    the state after it as a ruma `StateMap`.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use rayon::prelude::*;
use ruma::events::{StateEventType, TimelineEventType};
use ruma::room_version_rules::RoomVersionRules;
use ruma::state_res::{
    Event, StateMap, check_state_dependent_auth_rules, check_state_independent_auth_rules,
};
use ruma::{
    CanonicalJsonObject, CanonicalJsonValue, EventId, MilliSecondsSinceUnixEpoch, OwnedEventId,
    OwnedRoomId, OwnedUserId, RoomId, RoomVersionId, UserId,
};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::{Named, Response};

/// The fields of a PDU that ruma-state-res reads.
#[derive(Debug, Deserialize)]
struct Body {
    #[serde(default)]
    room_id: Option<OwnedRoomId>,
    sender: OwnedUserId,
    origin_server_ts: MilliSecondsSinceUnixEpoch,
    #[serde(rename = "type")]
    kind: TimelineEventType,
    content: Box<RawValue>,
    state_key: Option<String>,
    prev_events: Vec<OwnedEventId>,
    auth_events: Vec<OwnedEventId>,
    #[serde(default)]
    redacts: Option<OwnedEventId>,
}

/// A PDU as ruma-state-res sees it.
#[derive(Debug)]
struct RumaPdu {
    event_id: OwnedEventId,
    body: Body,
    rejected: bool,
}

impl Event for RumaPdu {
    type Id = OwnedEventId;
    fn event_id(&self) -> &OwnedEventId {
        &self.event_id
    }
    fn room_id(&self) -> Option<&RoomId> {
        self.body.room_id.as_deref()
    }
    fn sender(&self) -> &UserId {
        &self.body.sender
    }
    fn origin_server_ts(&self) -> MilliSecondsSinceUnixEpoch {
        self.body.origin_server_ts
    }
    fn event_type(&self) -> &TimelineEventType {
        &self.body.kind
    }
    fn content(&self) -> &RawValue {
        &self.body.content
    }
    fn state_key(&self) -> Option<&str> {
        self.body.state_key.as_deref()
    }
    fn prev_events(&self) -> Box<dyn DoubleEndedIterator<Item = &OwnedEventId> + '_> {
        Box::new(self.body.prev_events.iter())
    }
    fn auth_events(&self) -> Box<dyn DoubleEndedIterator<Item = &OwnedEventId> + '_> {
        Box::new(self.body.auth_events.iter())
    }
    fn redacts(&self) -> Option<&OwnedEventId> {
        self.body.redacts.as_ref()
    }
    fn rejected(&self) -> bool {
        self.rejected
    }
}

/// What the ruma path concluded, and how long each step took.
pub struct RumaRun {
    pub parse_s: f64,
    pub order_s: f64,
    pub auth_s: f64,
    pub chains_s: f64,
    pub join_s: f64,
    /// Events of the response checked.
    pub checked: usize,
    /// Ids of the rejected events of the response, sorted.
    pub rejected: Vec<String>,
    pub join_ok: bool,
    /// Entries of all the auth-chain sets.
    pub chain_entries: usize,
    /// The state after the join.
    pub state: Named,
}

/// Canonical JSON, event id, content hash, then the typed PDU.
fn parse(json: &str, rules: &RoomVersionRules) -> Result<RumaPdu, String> {
    let object: CanonicalJsonObject =
        serde_json::from_str(json).map_err(|e| format!("canonical JSON: {e}"))?;
    let hash = ruma::signatures::content_hash(&object).map_err(|e| e.to_string())?;
    let claimed = match object.get("hashes") {
        Some(CanonicalJsonValue::Object(h)) => match h.get("sha256") {
            Some(CanonicalJsonValue::String(s)) => Some(s.as_str()),
            _ => None,
        },
        _ => None,
    };
    // A mismatch would make the server redact the event; the generated responses have none.
    if claimed != Some(hash.encode().as_str()) {
        return Err("content hash mismatch".into());
    }
    let reference = ruma::signatures::reference_hash(&object, rules).map_err(|e| e.to_string())?;
    let event_id = OwnedEventId::try_from(format!("${reference}")).map_err(|e| e.to_string())?;
    let body: Body = serde_json::from_str(json).map_err(|e| format!("{event_id}: {e}"))?;
    Ok(RumaPdu {
        event_id,
        body,
        rejected: false,
    })
}

/// Auth-first order of `events` over their `auth_events` (those not in `events` are skipped), create
/// events first (from v12 no event cites the create event: its room id names it).
fn auth_first(events: &[RumaPdu], index: &HashMap<OwnedEventId, usize>) -> Vec<usize> {
    let mut order = Vec::with_capacity(events.len());
    let mut done = vec![false; events.len()];
    let mut entered = vec![false; events.len()];
    let creates =
        (0..events.len()).filter(|&i| events[i].body.kind == TimelineEventType::RoomCreate);
    for root in creates.chain(0..events.len()) {
        let mut stack = vec![(root, false)];
        while let Some((i, expanded)) = stack.pop() {
            if expanded {
                if !done[i] {
                    done[i] = true;
                    order.push(i);
                }
                continue;
            }
            if entered[i] {
                continue;
            }
            entered[i] = true;
            stack.push((i, true));
            for a in &events[i].body.auth_events {
                if let Some(&j) = index.get(a)
                    && !entered[j]
                {
                    stack.push((j, false));
                }
            }
        }
    }
    order
}

fn state_key_of(e: &RumaPdu) -> Option<(StateEventType, String)> {
    let k = e.body.state_key.clone()?;
    Some((StateEventType::from(e.body.kind.to_string()), k))
}

/// The ruma path on a `send_join` body and the join event's PDU.
pub fn join(response: &[u8], join: &[u8], version_id: &str) -> Result<RumaRun, String> {
    let rules = RoomVersionId::try_from(version_id)
        .ok()
        .and_then(|v| v.rules())
        .ok_or_else(|| format!("ruma knows no room version {version_id}"))?;
    let auth_rules = &rules.authorization;
    let start = Instant::now();
    let r: Response<'_> = serde_json::from_slice(response).map_err(|e| e.to_string())?;
    let raws: Vec<&RawValue> = r.state.iter().chain(&r.auth_chain).copied().collect();
    let events: Vec<RumaPdu> = raws
        .par_iter()
        .map(|raw| parse(raw.get(), &rules))
        .collect::<Result<_, _>>()?;
    let state_ids: Vec<OwnedEventId> = events[..r.state.len()]
        .iter()
        .map(|e| e.event_id.clone())
        .collect();
    let join_text = std::str::from_utf8(join).map_err(|e| e.to_string())?;
    let join_event = parse(join_text, &rules)?;
    let parse_s = start.elapsed().as_secs_f64();

    let index: HashMap<OwnedEventId, usize> = events
        .iter()
        .enumerate()
        .map(|(i, e)| (e.event_id.clone(), i))
        .collect();
    let order = auth_first(&events, &index);
    let ids: Vec<OwnedEventId> = events.iter().map(|e| e.event_id.clone()).collect();
    let order_s = start.elapsed().as_secs_f64() - parse_s;

    let mut slots: Vec<Option<RumaPdu>> = events.into_iter().map(Some).collect();
    let mut checked: HashMap<OwnedEventId, Arc<RumaPdu>> = HashMap::with_capacity(slots.len());
    let mut create: Option<Arc<RumaPdu>> = None;
    let mut rejected: Vec<String> = Vec::new();
    for &i in &order {
        let Some(mut event) = slots[i].take() else {
            continue;
        };
        let independent = check_state_independent_auth_rules(auth_rules, &event, |id: &EventId| {
            checked.get(id).cloned()
        });
        let ok = independent.is_ok() && {
            let mut auth_state: HashMap<(StateEventType, String), Arc<RumaPdu>> = HashMap::new();
            for a in &event.body.auth_events {
                if let Some(e) = checked.get(a)
                    && !e.rejected
                    && let Some(k) = state_key_of(e)
                {
                    auth_state.insert(k, Arc::clone(e));
                }
            }
            let fetch = |t: &StateEventType, k: &str| {
                auth_state
                    .get(&(t.clone(), k.to_owned()))
                    .cloned()
                    .or_else(|| {
                        // From v12 the create event is no auth event; the room id names it.
                        (*t == StateEventType::RoomCreate && k.is_empty())
                            .then(|| create.clone())
                            .flatten()
                    })
            };
            check_state_dependent_auth_rules(auth_rules, &event, fetch).is_ok()
        };
        event.rejected = !ok;
        if !ok {
            rejected.push(event.event_id.to_string());
        }
        let event = Arc::new(event);
        if ok && event.body.kind == TimelineEventType::RoomCreate && create.is_none() {
            create = Some(Arc::clone(&event));
        }
        checked.insert(event.event_id.clone(), event);
    }
    let auth_s = start.elapsed().as_secs_f64() - parse_s - order_s;

    // Auth chains: short ids are positions in the order; each event's set is the union of its auth
    // events and their sets (computed before it).
    let short: HashMap<&OwnedEventId, u64> = order
        .iter()
        .enumerate()
        .map(|(pos, &i)| (&ids[i], pos as u64))
        .collect();
    let mut chains: Vec<HashSet<u64>> = Vec::with_capacity(order.len());
    for &i in &order {
        let mut set: HashSet<u64> = HashSet::new();
        if let Some(e) = checked.get(&ids[i]) {
            for a in &e.body.auth_events {
                if let Some(&s) = short.get(a) {
                    set.insert(s);
                    if let Some(c) = chains.get(s as usize) {
                        set.extend(c.iter().copied());
                    }
                }
            }
        }
        chains.push(set);
    }
    let chain_entries = chains.iter().map(HashSet::len).sum();
    let chains_s = start.elapsed().as_secs_f64() - parse_s - order_s - auth_s;

    let mut state: StateMap<OwnedEventId> = StateMap::with_capacity(state_ids.len() + 1);
    let mut by_key: HashMap<(StateEventType, String), Arc<RumaPdu>> =
        HashMap::with_capacity(state_ids.len());
    for id in &state_ids {
        if let Some(e) = checked.get(id)
            && let Some(k) = state_key_of(e)
        {
            state.insert(k.clone(), id.clone());
            by_key.insert(k, Arc::clone(e));
        }
    }
    let independent =
        check_state_independent_auth_rules(auth_rules, &join_event, |id: &EventId| {
            checked.get(id).cloned()
        });
    let join_ok = independent.is_ok()
        && check_state_dependent_auth_rules(auth_rules, &join_event, |t, k| {
            by_key.get(&(t.clone(), k.to_owned())).cloned()
        })
        .is_ok();
    if join_ok && let Some(k) = state_key_of(&join_event) {
        state.insert(k, join_event.event_id.clone());
    }
    let join_s = start.elapsed().as_secs_f64() - parse_s - order_s - auth_s - chains_s;

    rejected.sort();
    let named = state
        .into_iter()
        .map(|((t, k), id)| ((t.to_string(), k), id.to_string()))
        .collect();
    drop(chains);
    Ok(RumaRun {
        parse_s,
        order_s,
        auth_s,
        chains_s,
        join_s,
        checked: checked.len(),
        rejected,
        join_ok,
        chain_entries,
        state: named,
    })
}
