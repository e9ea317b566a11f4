//! Queries over a store: stored events, the state before or after an event, a room's current state
//! and forward extremities. [`Reader`] answers them from a store opened read-only (no lock, no file
//! written: many processes query one store at once); [`Engine`](super::Engine) answers the same
//! queries through a [`Reader`] over its own store. What a query returns is what is durable.

use std::path::Path;
use std::sync::Arc;

use crate::resolve::ChainCover;
use roomgraph_store::table::{AUTH_CHAINS, EVENT_STATE, EVENTS, InRoom, ROOMS, STATE_KEYS};
use roomgraph_store::{Store, StoreOptions};

use super::outcome::{IngestError, Position, StateMap, StoredEvent};

/// Read-only queries over a store.
#[derive(Debug, Clone)]
pub struct Reader {
    store: Arc<Store>,
}

impl Reader {
    /// Opens the existing store at `path` read-only ([`Store::open_read_only`]).
    pub fn open(path: impl AsRef<Path>) -> Result<Reader, IngestError> {
        Reader::open_with(path, &StoreOptions::default())
    }

    pub fn open_with(
        path: impl AsRef<Path>,
        options: &StoreOptions,
    ) -> Result<Reader, IngestError> {
        Ok(Reader {
            store: Arc::new(Store::open_read_only_with(path, options)?),
        })
    }

    /// Queries over a store held elsewhere (the engine's).
    pub(crate) fn over(store: Arc<Store>) -> Reader {
        Reader { store }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// A stored event with its outcome.
    pub fn event(&self, event_id: &str) -> Result<Option<StoredEvent>, IngestError> {
        let Some(num) = self.store.event_num(event_id)? else {
            return Ok(None);
        };
        let Some(rec) = self.store.event_record(num)? else {
            return Err(EVENTS.corrupt(&num, "event number without record").into());
        };
        let room_id = self
            .store
            .event_state(num)?
            .map(|m| m.room_id)
            .unwrap_or_default();
        Ok(Some(StoredEvent {
            event_id: event_id.to_owned(),
            room_id,
            room_version: rec.room_version,
            pdu: rec.pdu,
            status: rec.status,
            reason: rec.reason,
            redacted: rec.redacted,
        }))
    }

    /// The state before or after an event (after includes the event itself if it is an accepted or
    /// soft-failed state event). An event not in the store is [`IngestError::UnknownEvent`].
    pub fn state_at(&self, event_id: &str, position: Position) -> Result<StateMap, IngestError> {
        let num = self
            .store
            .event_num(event_id)?
            .ok_or_else(|| IngestError::UnknownEvent(event_id.to_owned()))?;
        let meta = self
            .store
            .event_state(num)?
            .ok_or_else(|| EVENT_STATE.corrupt(&num, "stored event without state record"))?;
        if meta.status.is_outlier() {
            return Err(IngestError::Outlier(event_id.to_owned()));
        }
        let snap = match position {
            Position::Before => meta.before,
            Position::After => meta.after,
        };
        self.named_snapshot(snap)
    }

    /// The current state of a room: the resolution of the states after its forward extremities.
    pub fn current_state(&self, room_id: &str) -> Result<StateMap, IngestError> {
        let (snap, _) = self
            .store
            .extremities(room_id)?
            .ok_or_else(|| IngestError::UnknownRoom(room_id.to_owned()))?;
        self.named_snapshot(snap)
    }

    /// The forward extremities of a room as stored by the last commit, sorted by event id.
    /// The rooms of the store (those whose create event is stored), sorted by id.
    pub fn rooms(&self) -> Result<Vec<String>, IngestError> {
        let mut out: Vec<String> = self
            .store
            .scan(&ROOMS, &())?
            .into_iter()
            .map(|(room, _)| room)
            .collect();
        out.sort();
        Ok(out)
    }

    pub fn extremities(&self, room_id: &str) -> Result<Vec<String>, IngestError> {
        let (_, ext) = self
            .store
            .extremities(room_id)?
            .ok_or_else(|| IngestError::UnknownRoom(room_id.to_owned()))?;
        let mut out = Vec::with_capacity(ext.len());
        for n in ext {
            out.push(self.event_id_of(n)?);
        }
        out.sort();
        Ok(out)
    }

    /// The auth chain of a stored state event (not including it), as event ids ascending by event
    /// number, from the persisted chain cover index. It loads the room's index (one row per state
    /// event of the room), so it costs the room's state events, not the answer; an embedder asking
    /// often keeps an [`Engine`](super::Engine), whose rooms hold the index in memory.
    pub fn auth_chain(&self, event_id: &str) -> Result<Vec<String>, IngestError> {
        if self.store.chain_rebuild_pending()? {
            return Err(IngestError::ChainIndexOutdated);
        }
        let num = self
            .store
            .event_num(event_id)?
            .ok_or_else(|| IngestError::UnknownEvent(event_id.to_owned()))?;
        let room_id = self
            .store
            .event_state(num)?
            .map(|m| m.room_id)
            .ok_or_else(|| IngestError::UnknownEvent(event_id.to_owned()))?;
        let mut cover = ChainCover::new();
        for (n, row) in self.store.chain_rows(&room_id)? {
            cover.restore(n, row.key, &row.inserted).map_err(|e| {
                let key = InRoom {
                    room_id: room_id.as_str(),
                    key: n,
                };
                AUTH_CHAINS.corrupt(&key, e.to_string())
            })?;
        }
        let chain = cover
            .auth_chain(num)
            .map_err(|_| IngestError::NotState(event_id.to_owned()))?;
        chain.into_iter().map(|n| self.event_id_of(n)).collect()
    }

    pub(crate) fn event_id_of(&self, num: u64) -> Result<String, IngestError> {
        self.store.event_id(num)?.ok_or_else(|| {
            EVENT_STATE
                .corrupt(&num, "event number without a state record")
                .into()
        })
    }

    fn named_snapshot(&self, snap: u64) -> Result<StateMap, IngestError> {
        let view = self.store.load_view(snap)?;
        let mut entries = Vec::with_capacity(view.len());
        view.for_each(|k, e| entries.push((k, e)));
        let mut out = StateMap::new();
        for (k, e) in entries {
            let key = self
                .store
                .state_key(k)?
                .ok_or_else(|| STATE_KEYS.corrupt(&k, "state-key number without key"))?;
            out.insert((key.event_type, key.state_key), self.event_id_of(e)?);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::Engine;
    use roomgraph_testkit::trace::{TraceSpec, generate};

    /// A reader opened beside the engine that wrote the store answers as the engine does.
    #[test]
    fn a_reader_beside_the_engine_answers_as_the_engine() {
        let dir = tempfile::tempdir().expect("tempdir");
        let trace = generate(&TraceSpec {
            events: 200,
            rooms: 2,
            ..TraceSpec::default()
        });
        let mut engine = Engine::open(dir.path()).expect("open");
        engine.ingest(&trace.lines).expect("ingest");
        let reader = Reader::open(dir.path()).expect("read-only beside the engine");
        assert!(reader.store().is_read_only());
        for room in &trace.rooms {
            assert_eq!(
                reader.current_state(room).expect("state"),
                engine.current_state(room).expect("state")
            );
            assert_eq!(
                reader.extremities(room).expect("ext"),
                engine.extremities(room).expect("ext")
            );
        }
        for id in &trace.ids {
            assert_eq!(
                reader.event(id).expect("event"),
                engine.event(id).expect("event")
            );
            for pos in [Position::Before, Position::After] {
                assert_eq!(
                    reader.state_at(id, pos).map_err(|e| e.to_string()),
                    engine.state_at(id, pos).map_err(|e| e.to_string())
                );
            }
        }
        assert!(matches!(
            reader.state_at("$missing", Position::After),
            Err(IngestError::UnknownEvent(_))
        ));
        assert!(matches!(
            reader.extremities("!missing:x"),
            Err(IngestError::UnknownRoom(_))
        ));
    }
}
