//! `roomgraph._native`: host-driven state resolution ([`roomgraph_core::resolve::Session`]) for Python.
//!
//! A Python host (the `roomgraph.synapse` drop-in) starts a [`ResolveSession`] with the state sets and
//! the events it has at hand, answers each `("need", ids)` with the events' PDU JSON, and receives
//! `("done", {(type, state_key): event_id})`. The work runs with the GIL released; the module does no
//! I/O. Engine errors are raised as `roomgraph.ResolveError` with the engine's message.

mod event_cache;

use std::collections::BTreeMap;

use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PySet, PyTuple};

use roomgraph_core::auth::AuthEvent;
use roomgraph_core::event_id::room_id_from_create_event_id;
use roomgraph_core::resolve::{ConflictedSet, ResolveError as EngineError, Session, Step};
use roomgraph_core::{Pdu, RoomVersion};

create_exception!(
    roomgraph,
    ResolveError,
    PyException,
    "A resolution the engine refused: a malformed PDU, an unknown room version, or an event asked for and not supplied."
);

/// What a step hands back to Python: the ids wanted next, or the resolved state by name.
enum Answer {
    Need(Vec<String>),
    Done(BTreeMap<String, BTreeMap<String, String>>),
}

impl Answer {
    fn of(step: Step) -> Result<Answer, EngineError> {
        match step {
            Step::Need(ids) => Ok(Answer::Need(ids)),
            Step::Done(done) => Ok(Answer::Done(done.to_named())),
            // `Step` is non-exhaustive: a future variant is nothing this binding can answer.
            _ => Err(EngineError::Request(
                "the engine asked for something this binding does not know".into(),
            )),
        }
    }

    fn into_py(self, py: Python<'_>) -> PyResult<Py<PyTuple>> {
        match self {
            Answer::Need(ids) => {
                let ids = PyList::new(py, ids)?;
                Ok(
                    PyTuple::new(py, ["need".into_pyobject(py)?.into_any(), ids.into_any()])?
                        .unbind(),
                )
            }
            Answer::Done(state) => {
                let map = PyDict::new(py);
                for (kind, keys) in state {
                    for (state_key, event_id) in keys {
                        map.set_item((kind.as_str(), state_key), event_id)?;
                    }
                }
                Ok(
                    PyTuple::new(py, ["done".into_pyobject(py)?.into_any(), map.into_any()])?
                        .unbind(),
                )
            }
        }
    }
}

fn refused(e: EngineError) -> PyErr {
    ResolveError::new_err(e.to_string())
}

/// PDUs as received (JSON bytes), parsed in `version` (or taken from the [`event_cache`]). With
/// `ids`, event `i` goes by `ids[i]` rather than the id its JSON gives or hashes to: the host's store
/// is keyed by the ids it checked on receipt, and test fixtures carry made-up ones.
fn parse_events(
    events: Vec<Vec<u8>>,
    ids: Option<Vec<String>>,
    version: &'static RoomVersion,
) -> Result<Vec<AuthEvent>, EngineError> {
    if let Some(ids) = &ids
        && ids.len() != events.len()
    {
        return Err(EngineError::Request(format!(
            "{} event ids for {} events",
            ids.len(),
            events.len()
        )));
    }
    let mut ids = ids.map(Vec::into_iter);
    events
        .iter()
        .enumerate()
        .map(|(i, bytes)| {
            let id = ids.as_mut().and_then(Iterator::next);
            if let Some(id) = &id
                && let Some(event) = event_cache::get(version, id, bytes)
            {
                return Ok(event);
            }
            let mut pdu = Pdu::parse(bytes, version)
                .map_err(|e| EngineError::Request(format!("events[{i}]: {e}")))?;
            if let Some(id) = id {
                // A room version 12 create event names its room: the host's id renames both.
                if version.room_id_from_create
                    && pdu.event_type == "m.room.create"
                    && pdu.state_key.as_deref() == Some("")
                {
                    pdu.room_id = room_id_from_create_event_id(&id).into();
                }
                pdu.event_id = id.into();
            }
            let event = AuthEvent::detached(&pdu);
            event_cache::put(version, bytes, &event);
            Ok(event)
        })
        .collect()
}

/// The bytes of each `bytes` object, copied so the work can run without the GIL.
fn copy_bytes(events: &[Bound<'_, PyBytes>]) -> Vec<Vec<u8>> {
    events.iter().map(|b| b.as_bytes().to_vec()).collect()
}

/// One resolution in progress: `ResolveSession(room_version, state_sets, events, rejected)`.
#[pyclass(module = "roomgraph._native")]
pub struct ResolveSession {
    /// `None` once done or failed.
    session: Option<Session>,
    /// The latest answer (the constructor's, then each `supply`'s).
    last: Py<PyTuple>,
}

impl ResolveSession {
    /// Parses `events` and begins a session with `begin`, without the GIL.
    fn start(
        py: Python<'_>,
        version: &'static RoomVersion,
        events: &[Bound<'_, PyBytes>],
        event_ids: Option<Vec<String>>,
        begin: impl FnOnce(Vec<AuthEvent>) -> Result<(Session, Step), EngineError> + Send,
    ) -> PyResult<ResolveSession> {
        let events = copy_bytes(events);
        let (session, answer) = py
            .detach(move || {
                let events = parse_events(events, event_ids, version)?;
                let (session, step) = begin(events)?;
                let done = matches!(step, Step::Done(_));
                Ok::<_, EngineError>(((!done).then_some(session), Answer::of(step)?))
            })
            .map_err(refused)?;
        Ok(ResolveSession {
            session,
            last: answer.into_py(py)?,
        })
    }
}

#[pymethods]
impl ResolveSession {
    /// Starts a resolution of `state_sets` (event ids) in a room of `room_version`; `events` are the
    /// PDUs at hand (JSON bytes), `rejected` the ids among them that were rejected, `event_ids`
    /// (optional, one per event) the ids the host knows them by.
    #[new]
    #[pyo3(signature = (room_version, state_sets, events, rejected, event_ids = None))]
    fn new(
        py: Python<'_>,
        room_version: &str,
        state_sets: Vec<Vec<String>>,
        events: Vec<Bound<'_, PyBytes>>,
        rejected: Vec<String>,
        event_ids: Option<Vec<String>>,
    ) -> PyResult<ResolveSession> {
        let version =
            RoomVersion::from_id(room_version).map_err(|e| ResolveError::new_err(e.to_string()))?;
        ResolveSession::start(py, version, &events, event_ids, move |events| {
            Session::begin(version, state_sets, events, &rejected)
        })
    }

    /// Starts the second half of a v2 or v2.1 resolution (room versions 2–12) from what the host
    /// computed with its own auth-chain index: `full_conflicted_set` (event ids: the conflicted
    /// events, the auth difference and, for v2.1, the conflicted subgraph) and `base_state`
    /// (`{(type, state_key): event_id}`: the unconflicted state, or the part of it at the keys the
    /// auth rules of the full conflicted set look up and the power levels; empty for v2.1). The
    /// session then asks only for the events the algorithm reads. Done, it answers the base state
    /// with the conflicted events that pass applied, as Synapse's `_resolve_conflicted_set` does.
    #[staticmethod]
    #[pyo3(signature = (room_version, full_conflicted_set, base_state, events, rejected, event_ids = None))]
    fn conflicted(
        py: Python<'_>,
        room_version: &str,
        full_conflicted_set: Vec<String>,
        base_state: &Bound<'_, PyDict>,
        events: Vec<Bound<'_, PyBytes>>,
        rejected: Vec<String>,
        event_ids: Option<Vec<String>>,
    ) -> PyResult<ResolveSession> {
        let version =
            RoomVersion::from_id(room_version).map_err(|e| ResolveError::new_err(e.to_string()))?;
        let mut base = Vec::with_capacity(base_state.len());
        for (key, id) in base_state.iter() {
            let (event_type, state_key): (String, String) = key.extract()?;
            base.push((event_type, state_key, id.extract::<String>()?));
        }
        let conflicted = ConflictedSet {
            events: full_conflicted_set,
            base_state: base,
        };
        ResolveSession::start(py, version, &events, event_ids, move |events| {
            Session::begin_conflicted(version, conflicted, events, &rejected)
        })
    }

    /// The latest step: `("need", [id, ...])` or `("done", {(type, state_key): event_id})`.
    #[getter]
    fn step(&self, py: Python<'_>) -> Py<PyTuple> {
        self.last.clone_ref(py)
    }

    /// Answers the last `("need", ids)` with those events (JSON bytes), `rejected` naming the ids
    /// among them that were rejected (and `event_ids` as in the constructor); returns the next step.
    #[pyo3(signature = (events, rejected, event_ids = None))]
    fn supply(
        &mut self,
        py: Python<'_>,
        events: Vec<Bound<'_, PyBytes>>,
        rejected: Vec<String>,
        event_ids: Option<Vec<String>>,
    ) -> PyResult<Py<PyTuple>> {
        let Some(mut session) = self.session.take() else {
            return Err(ResolveError::new_err(
                "the session is finished (done or failed): begin another",
            ));
        };
        let events = copy_bytes(&events);
        let (session, answer) = py
            .detach(move || {
                let events = parse_events(events, event_ids, session.version())?;
                let step = session.supply(events, &rejected)?;
                let done = matches!(step, Step::Done(_));
                Ok::<_, EngineError>(((!done).then_some(session), Answer::of(step)?))
            })
            .map_err(refused)?;
        self.session = session;
        self.last = answer.into_py(py)?;
        Ok(self.last.clone_ref(py))
    }

    /// Whether the session is over (done, or failed on an error).
    #[getter]
    fn finished(&self) -> bool {
        self.session.is_none()
    }
}

/// Synapse's `_seperate` on `state_sets` (mappings `(type, state_key) -> event_id`): the unconflicted
/// state (keys every set maps to one same event) as a dict, and the conflicted state (every other key,
/// missing from a set included) as a dict of key to the set of its events. Works on the Python
/// objects as they are (no copy of the strings), with the mapping protocol, so plain dicts and
/// Synapse's immutable maps both go.
#[pyfunction]
fn separate<'py>(
    py: Python<'py>,
    state_sets: Vec<Bound<'py, PyAny>>,
) -> PyResult<(Bound<'py, PyDict>, Bound<'py, PyDict>)> {
    let unconflicted = PyDict::new(py);
    let conflicted = PyDict::new(py);
    let none = py.None().into_bound(py);
    // The value of `key` in `set`, or None.
    let get = |set: &Bound<'py, PyAny>, key: &Bound<'py, PyAny>| -> PyResult<Bound<'py, PyAny>> {
        match set.cast::<PyDict>() {
            Ok(dict) => Ok(dict.get_item(key)?.unwrap_or_else(|| none.clone())),
            Err(_) => set.call_method1("get", (key,)),
        }
    };
    for (i, set) in state_sets.iter().enumerate() {
        let items = set.call_method0("items")?;
        for item in items.try_iter()? {
            let (key, value): (Bound<'py, PyAny>, Bound<'py, PyAny>) = item?.extract()?;
            // A key is decided by the first set that has it; later sets only skip it.
            if i > 0 && (unconflicted.contains(&key)? || conflicted.contains(&key)?) {
                continue;
            }
            let mut same = i == 0;
            let events = PySet::empty(py)?;
            events.add(&value)?;
            for other in &state_sets[i + 1..] {
                let v = get(other, &key)?;
                if v.is_none() {
                    same = false;
                } else {
                    if !v.eq(&value)? {
                        same = false;
                    }
                    events.add(&v)?;
                }
            }
            if same {
                unconflicted.set_item(&key, &value)?;
            } else {
                conflicted.set_item(&key, events)?;
            }
        }
    }
    Ok((unconflicted, conflicted))
}

/// Sets how many parsed events are kept across resolutions (0: none; default 50 000) and empties
/// the cache.
#[pyfunction]
fn set_event_cache_capacity(capacity: usize) {
    event_cache::set_capacity(capacity);
}

/// How many parsed events are kept now.
#[pyfunction]
fn event_cache_len() -> usize {
    event_cache::len()
}

#[pymodule]
#[pyo3(name = "_native")]
fn native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<ResolveSession>()?;
    m.add_function(wrap_pyfunction!(separate, m)?)?;
    m.add_function(wrap_pyfunction!(set_event_cache_capacity, m)?)?;
    m.add_function(wrap_pyfunction!(event_cache_len, m)?)?;
    m.add("ResolveError", m.py().get_type::<ResolveError>())?;
    Ok(())
}
