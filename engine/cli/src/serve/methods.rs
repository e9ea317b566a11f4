//! The methods of `roomgraph serve`: each calls what the matching CLI command calls, so that its result
//! is what the command prints for the same document.

use serde::Deserialize;
use serde_json::value::RawValue;

use roomgraph::canonical_json::{self, JsonValue};
use roomgraph::pdu::Pdu;
use roomgraph::redaction::redact;
use roomgraph::room_version::RoomVersion;

pub use super::error::ApiError;
use super::sessions::Sessions;

/// What the methods read of the server around them.
pub trait Host {
    /// The store, when the server was started with `--db`.
    fn store(&self) -> Option<&StoreSide>;
    /// Open connections, requests in flight, requests received (the `stats` counters).
    fn counters(&self) -> (usize, usize, u64);
    /// The open host-driven resolutions.
    fn sessions(&self) -> &Sessions;
}

/// Where the answer of a queued request goes (the connection that sent it).
pub trait Reply: Send + 'static {
    fn answer(&self, id: u64, answer: Result<String, ApiError>);
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Hello,
    Ping,
    Resolve,
    AuthCheck,
    EventId,
    Redact,
    ContentHash,
    Ingest,
    State,
    Event,
    Extremities,
    Stats,
    ResolveBegin,
    ResolveSupply,
}

impl Method {
    /// Every method, in the order `hello` lists them.
    pub const ALL: [Method; 14] = [
        Method::Hello,
        Method::Ping,
        Method::Resolve,
        Method::AuthCheck,
        Method::EventId,
        Method::Redact,
        Method::ContentHash,
        Method::Ingest,
        Method::State,
        Method::Event,
        Method::Extremities,
        Method::Stats,
        Method::ResolveBegin,
        Method::ResolveSupply,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Method::Hello => "hello",
            Method::Ping => "ping",
            Method::Resolve => "resolve",
            Method::AuthCheck => "auth_check",
            Method::EventId => "event_id",
            Method::Redact => "redact",
            Method::ContentHash => "content_hash",
            Method::Ingest => "ingest",
            Method::State => "state",
            Method::Event => "event",
            Method::Extremities => "extremities",
            Method::Stats => "stats",
            Method::ResolveBegin => "resolve_begin",
            Method::ResolveSupply => "resolve_supply",
        }
    }

    pub fn from_name(name: &str) -> Option<Method> {
        Method::ALL.into_iter().find(|m| m.name() == name)
    }

    /// Served only with `--db`.
    pub fn needs_store(self) -> bool {
        matches!(
            self,
            Method::Ingest | Method::State | Method::Event | Method::Extremities | Method::Stats
        )
    }
}

/// Parses a method's params; a mismatch is `invalid_params`.
fn params<'a, T: Deserialize<'a>>(method: Method, bytes: &'a [u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::params(format!("{} params: {e}", method.name())))
}

/// `event_id`, `redact`, `content_hash`: the CLI's `--room-version` and input PDU.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PduParams<'a> {
    room_version: String,
    #[serde(borrow)]
    pdu: &'a RawValue,
}

/// Answers a request other than `hello`, `ping` and `ingest` (JSON text of the result).
pub fn call(method: Method, bytes: &[u8], host: &dyn Host) -> Result<String, ApiError> {
    match method {
        Method::Resolve => roomgraph::documents::resolve_json(bytes).map_err(ApiError::params),
        Method::AuthCheck => roomgraph::auth::request::evaluate(bytes)
            .map(|verdict| verdict.to_json())
            .map_err(ApiError::params),
        Method::EventId | Method::Redact | Method::ContentHash => {
            let p: PduParams<'_> = params(method, bytes)?;
            let version = RoomVersion::from_id(&p.room_version).map_err(ApiError::params)?;
            let pdu = Pdu::parse(p.pdu.get().as_bytes(), version).map_err(ApiError::params)?;
            Ok(match method {
                Method::EventId => serde_json::json!({ "event_id": pdu.event_id }).to_string(),
                Method::ContentHash => {
                    serde_json::json!({ "content_hash": pdu.content_hash_base64() }).to_string()
                }
                _ => canonical_json::to_canonical_string(&JsonValue::Object(redact(
                    &pdu.json,
                    version.redaction,
                ))),
            })
        }
        Method::State | Method::Event | Method::Extremities | Method::Stats => {
            store::query(method, bytes, host)
        }
        Method::ResolveBegin => host.sessions().begin(bytes),
        Method::ResolveSupply => host.sessions().supply(bytes),
        _ => {
            let _ = host;
            Err(ApiError::internal(format!(
                "{} is not answered here",
                method.name()
            )))
        }
    }
}

pub use store::{StoreSide, open_store, queue_ingest};

mod store {
    use std::ops::Range;
    use std::path::{Path, PathBuf};
    use std::sync::{Mutex, mpsc};
    use std::thread::JoinHandle;

    use serde::Deserialize;
    use serde_json::value::RawValue;

    use roomgraph::ingest::{Engine, EngineOptions, IngestError, Position, Reader};

    use super::{ApiError, Host, Method, Reply, params};
    use roomgraph::documents::{event_json, state_json};

    /// An `ingest` request waiting for the ingest thread.
    struct IngestJob {
        id: u64,
        body: Vec<u8>,
        params: Option<Range<usize>>,
        out: Box<dyn Reply>,
    }

    /// The store: queries through the engine's reader, ingest through the ingest thread.
    pub struct StoreSide {
        reader: Reader,
        queue: Mutex<Option<mpsc::Sender<IngestJob>>>,
    }

    impl StoreSide {
        /// Lets the ingest thread end once the queued requests are done.
        pub fn close_queue(&self) {
            if let Ok(mut q) = self.queue.lock() {
                q.take();
            }
        }
    }

    /// Opens the store (as `roomgraph ingest` does) and starts the ingest thread.
    pub fn open_store(
        db: &Path,
        keys: Option<&Path>,
    ) -> Result<(StoreSide, JoinHandle<()>), String> {
        let keys = keys.map(crate::store_cmds::read_keys).transpose()?;
        let engine = Engine::open_with(
            db,
            EngineOptions {
                keys,
                ..EngineOptions::default()
            },
        )
        .map_err(|e| format!("{}: {e}", db.display()))?;
        let reader = engine.reader();
        let (tx, rx) = mpsc::channel::<IngestJob>();
        let db: PathBuf = db.to_path_buf();
        let thread = std::thread::Builder::new()
            .name("serve-ingest".into())
            .spawn(move || ingest_loop(engine, &db, rx))
            .map_err(|e| format!("starting the ingest thread: {e}"))?;
        Ok((
            StoreSide {
                reader,
                queue: Mutex::new(Some(tx)),
            },
            thread,
        ))
    }

    /// Queues an `ingest` request (it holds an in-flight slot).
    pub fn queue_ingest(
        store: Option<&StoreSide>,
        id: u64,
        body: Vec<u8>,
        params: Option<Range<usize>>,
        out: Box<dyn Reply>,
    ) {
        let job = IngestJob {
            id,
            body,
            params,
            out,
        };
        let sent = match store.map(|s| s.queue.lock()) {
            Some(Ok(q)) => match q.as_ref() {
                Some(tx) => tx.send(job).map_err(|e| e.0),
                None => Err(job),
            },
            _ => Err(job),
        };
        if let Err(job) = sent {
            job.out.answer(
                job.id,
                Err(ApiError::new("shutting_down", "the server is stopping")),
            );
        }
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct IngestParams<'a> {
        #[serde(borrow)]
        pdus: Vec<&'a RawValue>,
    }

    /// The ingest thread: one request at a time, each answered once its commits are durable. After a
    /// failed commit or a panic the engine is dropped and later requests are refused (`store_error`):
    /// restart the server (what was acknowledged is durable; nothing else was written).
    fn ingest_loop(engine: Engine, db: &Path, rx: mpsc::Receiver<IngestJob>) {
        let mut engine = Some(engine);
        // Lines are numbered across requests, so that an outcome names its request's PDU.
        let mut next_line: u64 = 1;
        for job in rx {
            let bytes: &[u8] = job
                .params
                .clone()
                .and_then(|r| job.body.get(r))
                .unwrap_or(b"{}".as_slice());
            let answer = match params::<IngestParams<'_>>(Method::Ingest, bytes) {
                Err(e) => Err(e),
                Ok(p) => match engine.as_mut() {
                    None => Err(ApiError::new(
                        "store_error",
                        format!(
                            "ingest is unavailable after an earlier store failure; restart the server on {}",
                            db.display()
                        ),
                    )),
                    Some(eng) => {
                        let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                            let pdus: Vec<&[u8]> =
                                p.pdus.iter().map(|r| r.get().as_bytes()).collect();
                            roomgraph::documents::ingest_json(eng, &mut next_line, &pdus)
                        }));
                        match ran {
                            Ok(Ok(text)) => Ok(text),
                            Ok(Err(e)) => {
                                engine = None;
                                Err(ApiError::new("store_error", e.to_string()))
                            }
                            Err(_) => {
                                engine = None;
                                Err(ApiError::internal(
                                    "ingest panicked; ingest is off until the server restarts",
                                ))
                            }
                        }
                    }
                },
            };
            job.out.answer(job.id, answer);
        }
        // Dropping the engine closes the store; every acknowledged batch is durable already.
        drop(engine);
    }

    fn query_error(e: IngestError) -> ApiError {
        match e {
            IngestError::UnknownEvent(_) | IngestError::UnknownRoom(_) => {
                ApiError::new("not_found", e.to_string())
            }
            IngestError::Outlier(_) => ApiError::new("outlier", e.to_string()),
            IngestError::Store(_) => ApiError::new("store_error", e.to_string()),
            _ => ApiError::internal(e.to_string()),
        }
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct StateParams {
        #[serde(default)]
        room_id: Option<String>,
        #[serde(default)]
        event_id: Option<String>,
        #[serde(default)]
        before: Option<bool>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct EventParams {
        event_id: String,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct RoomParams {
        room_id: String,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct NoParams {}

    pub fn query(method: Method, bytes: &[u8], host: &dyn Host) -> Result<String, ApiError> {
        let Some(store) = host.store() else {
            return Err(ApiError::new("no_store", "the server has no store"));
        };
        let reader = &store.reader;
        match method {
            Method::State => {
                let p: StateParams = params(method, bytes)?;
                let map = match (p.room_id, p.event_id, p.before) {
                    (Some(room), None, None) => reader.current_state(&room),
                    (None, Some(event), before) => {
                        let pos = if before.unwrap_or(false) {
                            Position::Before
                        } else {
                            Position::After
                        };
                        reader.state_at(&event, pos)
                    }
                    _ => {
                        return Err(ApiError::params(
                            "state params: give {\"room_id\"} or {\"event_id\", \"before\": bool}",
                        ));
                    }
                }
                .map_err(query_error)?;
                Ok(state_json(&map).to_string())
            }
            Method::Event => {
                let p: EventParams = params(method, bytes)?;
                let json = event_json(reader, &p.event_id)
                    .map_err(query_error)?
                    .ok_or_else(|| {
                        ApiError::new("not_found", format!("unknown event {}", p.event_id))
                    })?;
                Ok(json.to_string())
            }
            Method::Extremities => {
                let p: RoomParams = params(method, bytes)?;
                let ids = reader.extremities(&p.room_id).map_err(query_error)?;
                Ok(serde_json::json!(ids).to_string())
            }
            Method::Stats => {
                let _: NoParams = params(method, bytes)?;
                let (connections, in_flight, requests) = host.counters();
                let c = reader
                    .store()
                    .counters()
                    .map_err(|e| ApiError::new("store_error", e.to_string()))?;
                Ok(serde_json::json!({
                    "events": c.next_event.saturating_sub(1),
                    "state_keys": c.next_state_key.saturating_sub(1),
                    "snapshots": c.next_snapshot.saturating_sub(1),
                    "size_on_disk": reader.store().size_on_disk(),
                    "connections": connections,
                    "in_flight": in_flight,
                    "requests": requests,
                    "resolve_sessions": host.sessions().len(),
                })
                .to_string())
            }
            _ => Err(ApiError::internal(format!(
                "{} is not a query",
                method.name()
            ))),
        }
    }
}
