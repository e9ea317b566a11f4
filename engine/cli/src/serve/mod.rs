//! `roomgraph serve`: the library over a local socket (the wire contract is `docs/protocol.md`).
//!
//! Threads: the main thread accepts (Unix socket, and TCP on loopback with a token) and watches the
//! shutdown flag set by SIGTERM/SIGINT. Each connection has a reader thread (frames in, requests
//! dispatched) and a writer thread (responses out, through a channel, in completion order). CPU work
//! runs on rayon; `ingest` runs on one ingest thread that owns the [`roomgraph::ingest::Engine`] (a
//! request holds it for its whole batch, as a mutex would, without a rayon worker ever blocking on a
//! lock), and the store queries go through the engine's [`roomgraph::ingest::Reader`], which shares its
//! open store: they see every acknowledged ingest, and take no lock.
//!
//! Bounds: a request holds an in-flight slot from dispatch until its response is written; over the
//! per-connection or the overall bound it is answered `busy` at once. A connection whose responses are
//! not read stops being read (backpressure); one whose writes time out is closed.

mod error;
mod methods;
mod sessions;

use std::collections::HashMap;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::ops::Range;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, TryRecvError};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use serde::Deserialize;
use serde_json::value::RawValue;

use methods::{ApiError, Host, Method, Reply};

/// Default of `--max-frame`: 64 MiB (a Matrix HQ `send_join` response is about 24 MB).
pub const DEFAULT_MAX_FRAME: u32 = 64 << 20;

/// How long a response write may block before the connection is closed (a client not reading).
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// Responses a connection may have queued beyond its in-flight bound (`busy` and error frames) before
/// its reader stops reading frames until the client reads.
const QUEUED_BEYOND_IN_FLIGHT: usize = 64;

/// `roomgraph serve`'s arguments.
#[derive(clap::Args)]
pub struct ServeArgs {
    /// The Unix socket to listen on (a stale socket file is replaced; a live server's is refused).
    #[arg(long, value_name = "PATH")]
    socket: PathBuf,
    /// Serve this store too (created if missing): `ingest`, `state`, `event`, `extremities`, `stats`.
    #[arg(long, value_name = "DIR")]
    db: Option<PathBuf>,
    /// Also listen on TCP, on a loopback address only; clients must open with `hello` and the token.
    #[arg(long, value_name = "ADDR", requires = "token_file")]
    tcp: Option<SocketAddr>,
    /// The token TCP clients must give (the file's content, surrounding whitespace trimmed).
    #[arg(long, value_name = "FILE", requires = "tcp")]
    token_file: Option<PathBuf>,
    /// Largest request frame in bytes; a larger one gets an error frame and the connection is closed.
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_MAX_FRAME)]
    max_frame: u32,
    /// Requests in flight per connection; beyond it a request is answered `busy`.
    #[arg(long, value_name = "N", default_value_t = 64)]
    max_in_flight: usize,
    /// Requests in flight over all connections; beyond it a request is answered `busy`.
    #[arg(long, value_name = "N", default_value_t = 256)]
    max_in_flight_total: usize,
    /// Open connections; a connection beyond it gets a `busy` frame and is closed.
    #[arg(long, value_name = "N", default_value_t = 512)]
    max_connections: usize,
    /// Verify event signatures on `ingest` with these server keys (as `roomgraph ingest --keys`).
    #[arg(long, value_name = "FILE", requires = "db")]
    keys: Option<PathBuf>,
}

/// What every connection shares.
pub(crate) struct Shared {
    max_frame: u32,
    max_in_flight: usize,
    max_in_flight_total: usize,
    /// TCP clients' token (None: no TCP listener).
    token: Option<Vec<u8>>,
    pub(crate) in_flight: AtomicUsize,
    pub(crate) connections: AtomicUsize,
    pub(crate) requests: AtomicU64,
    stopping: AtomicBool,
    pub(crate) store: Option<methods::StoreSide>,
    sessions: sessions::Sessions,
}

impl Shared {
    fn has_store(&self) -> bool {
        self.store.is_some()
    }
}

impl Host for Shared {
    fn store(&self) -> Option<&methods::StoreSide> {
        self.store.as_ref()
    }

    fn counters(&self) -> (usize, usize, u64) {
        (
            self.connections.load(Ordering::Relaxed),
            self.in_flight.load(Ordering::Relaxed),
            self.requests.load(Ordering::Relaxed),
        )
    }

    fn sessions(&self) -> &sessions::Sessions {
        &self.sessions
    }
}

impl Reply for Responder {
    fn answer(&self, id: u64, answer: Result<String, ApiError>) {
        Responder::answer(self, id, answer);
    }
}

/// A connected stream of either kind.
trait Stream: Read + Write + Send + Sized + 'static {
    fn clone_stream(&self) -> io::Result<Self>;
    fn close(&self, how: Shutdown);
    fn prepare(&self) -> io::Result<()>;
}

impl Stream for UnixStream {
    fn clone_stream(&self) -> io::Result<Self> {
        self.try_clone()
    }
    fn close(&self, how: Shutdown) {
        let _ = self.shutdown(how);
    }
    fn prepare(&self) -> io::Result<()> {
        self.set_nonblocking(false)?;
        self.set_write_timeout(Some(WRITE_TIMEOUT))
    }
}

impl Stream for TcpStream {
    fn clone_stream(&self) -> io::Result<Self> {
        self.try_clone()
    }
    fn close(&self, how: Shutdown) {
        let _ = self.shutdown(how);
    }
    fn prepare(&self) -> io::Result<()> {
        self.set_nonblocking(false)?;
        self.set_nodelay(true)?;
        self.set_write_timeout(Some(WRITE_TIMEOUT))
    }
}

/// A response frame on its way to a connection's writer.
struct Outgoing {
    frame: Vec<u8>,
    /// The request held an in-flight slot, released once this is written (or dropped).
    slot: bool,
}

/// A connection's counters, shared by its reader, its writer and its requests.
#[derive(Default)]
struct ConnState {
    in_flight: AtomicUsize,
    /// Frames queued for the writer and not yet written.
    unwritten: Mutex<usize>,
    written: Condvar,
}

/// Sends a connection's responses; cloned into every request it dispatches.
#[derive(Clone)]
pub(crate) struct Responder {
    tx: mpsc::Sender<Outgoing>,
    state: Arc<ConnState>,
    shared: Arc<Shared>,
}

impl Responder {
    fn send(&self, frame: Vec<u8>, slot: bool) {
        if let Ok(mut n) = self.state.unwritten.lock() {
            *n += 1;
        }
        if let Err(mpsc::SendError(msg)) = self.tx.send(Outgoing { frame, slot }) {
            release(&self.state, &self.shared, msg.slot);
        }
    }

    /// Sends a request's answer and releases its slot once written.
    pub(crate) fn answer(&self, id: u64, answer: Result<String, ApiError>) {
        let frame = match answer {
            Ok(result) => result_frame(id, &result),
            Err(e) => error_frame(Some(id), e.code, &e.message),
        };
        self.send(frame, true);
    }

    /// Takes an in-flight slot of the connection and of the server, or none.
    fn try_slot(&self) -> bool {
        let conn = self.state.in_flight.fetch_add(1, Ordering::AcqRel);
        let total = self.shared.in_flight.fetch_add(1, Ordering::AcqRel);
        if conn < self.shared.max_in_flight && total < self.shared.max_in_flight_total {
            return true;
        }
        self.state.in_flight.fetch_sub(1, Ordering::AcqRel);
        self.shared.in_flight.fetch_sub(1, Ordering::AcqRel);
        false
    }

    /// Blocks while the client leaves too many responses unread.
    fn wait_for_room(&self) {
        let limit = self.shared.max_in_flight + QUEUED_BEYOND_IN_FLIGHT;
        let Ok(mut n) = self.state.unwritten.lock() else {
            return;
        };
        while *n >= limit {
            match self
                .state
                .written
                .wait_timeout(n, Duration::from_millis(200))
            {
                Ok((guard, _)) => n = guard,
                Err(_) => return,
            }
        }
    }
}

fn release(state: &ConnState, shared: &Shared, slot: bool) {
    if slot {
        state.in_flight.fetch_sub(1, Ordering::AcqRel);
        shared.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
    if let Ok(mut n) = state.unwritten.lock() {
        *n = n.saturating_sub(1);
    }
    state.written.notify_all();
}

/// Prefixes a response body with its length; a body too long for a frame becomes an error.
fn framed(body: String) -> Vec<u8> {
    let Ok(len) = u32::try_from(body.len()) else {
        return framed(
            r#"{"id":null,"error":{"code":"internal","message":"response larger than 4 GiB"}}"#
                .to_owned(),
        );
    };
    let mut frame = Vec::with_capacity(4 + body.len());
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(body.as_bytes());
    frame
}

/// `{"id": id, "result": <result>}`; `result` is JSON text.
fn result_frame(id: u64, result: &str) -> Vec<u8> {
    framed(format!(r#"{{"id":{id},"result":{result}}}"#))
}

/// `{"id": id|null, "error": {"code", "message"}}`.
fn error_frame(id: Option<u64>, code: &str, message: &str) -> Vec<u8> {
    let id = id.map_or_else(|| "null".to_owned(), |id| id.to_string());
    let message = serde_json::to_string(message).unwrap_or_else(|_| "\"\"".to_owned());
    framed(format!(
        r#"{{"id":{id},"error":{{"code":"{code}","message":{message}}}}}"#
    ))
}

enum FrameError {
    TooLarge(u32),
    Truncated,
    /// The connection failed (reset, closed for writing by us): framing is lost, nothing to say.
    Io,
}

/// Reads one frame; `None` at a clean end of stream (between frames).
fn read_frame(r: &mut impl Read, max: u32) -> Result<Option<Vec<u8>>, FrameError> {
    let mut header = [0u8; 4];
    let mut got = 0;
    while got < header.len() {
        match r.read(&mut header[got..]) {
            Ok(0) if got == 0 => return Ok(None),
            Ok(0) => return Err(FrameError::Truncated),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return Err(FrameError::Io),
        }
    }
    let len = u32::from_be_bytes(header);
    if len > max {
        return Err(FrameError::TooLarge(len));
    }
    // Grown as bytes arrive: a bare header does not make the server allocate the frame.
    let mut body = Vec::with_capacity((len as usize).min(1 << 16));
    r.by_ref()
        .take(u64::from(len))
        .read_to_end(&mut body)
        .map_err(|_| FrameError::Io)?;
    if body.len() < len as usize {
        return Err(FrameError::Truncated);
    }
    Ok(Some(body))
}

/// The request envelope, fields as received.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Envelope<'a> {
    #[serde(borrow, default)]
    id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    method: Option<&'a RawValue>,
    #[serde(borrow, default)]
    params: Option<&'a RawValue>,
}

/// A well-formed request: its id, method and where its params are in the frame.
struct Request {
    id: u64,
    method: String,
    params: Option<Range<usize>>,
}

/// Parses a frame's envelope; the error is the frame to answer with.
fn parse_request(body: &[u8]) -> Result<Request, Vec<u8>> {
    let env: Envelope<'_> = match serde_json::from_slice(body) {
        Ok(env) => env,
        Err(e) if e.is_syntax() || e.is_eof() => {
            return Err(error_frame(None, "parse_error", &format!("not JSON: {e}")));
        }
        Err(e) => {
            return Err(error_frame(
                None,
                "invalid_request",
                &format!("not a request object: {e}"),
            ));
        }
    };
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(error_frame(
            None,
            "invalid_request",
            "a request is a JSON object",
        ));
    }
    let id = env
        .id
        .and_then(|raw| serde_json::from_str::<u64>(raw.get()).ok());
    let Some(id) = id else {
        return Err(error_frame(
            None,
            "invalid_request",
            "`id` must be an unsigned integer",
        ));
    };
    let method = env
        .method
        .and_then(|raw| serde_json::from_str::<String>(raw.get()).ok());
    let Some(method) = method else {
        return Err(error_frame(
            Some(id),
            "invalid_request",
            "`method` must be a string",
        ));
    };
    let params = env.params.map(|raw| {
        let start = raw.get().as_ptr() as usize - body.as_ptr() as usize;
        start..start + raw.get().len()
    });
    Ok(Request { id, method, params })
}

#[derive(Deserialize)]
struct HelloParams {
    #[serde(default)]
    token: Option<String>,
}

fn hello_result(shared: &Shared) -> String {
    let methods: Vec<&str> = Method::ALL
        .iter()
        .filter(|m| shared.has_store() || !m.needs_store())
        .map(|m| m.name())
        .collect();
    serde_json::json!({
        "version": env!("CARGO_PKG_VERSION"),
        "methods": methods,
        "max_frame": shared.max_frame,
        "store": shared.has_store(),
    })
    .to_string()
}

fn token_matches(expected: &[u8], given: &[u8]) -> bool {
    if expected.len() != given.len() {
        return false;
    }
    expected
        .iter()
        .zip(given)
        .fold(0u8, |acc, (a, b)| acc | (a ^ b))
        == 0
}

/// What the reader does after a frame.
enum Flow {
    Continue,
    Close,
}

/// Handles one frame on the reader thread: answers the cheap requests and errors at once, hands the
/// others to rayon or the ingest thread.
fn handle(body: Vec<u8>, out: &Responder, authed: &mut bool) -> Flow {
    let shared = &out.shared;
    let request = match parse_request(&body) {
        Ok(r) => r,
        Err(frame) => {
            out.send(frame, false);
            return if *authed { Flow::Continue } else { Flow::Close };
        }
    };
    let params: &[u8] = match &request.params {
        Some(range) => body.get(range.clone()).unwrap_or(b"{}"),
        None => b"{}",
    };
    let method = Method::from_name(&request.method);
    if !*authed {
        let token = serde_json::from_slice::<HelloParams>(params)
            .ok()
            .and_then(|p| p.token);
        let ok = method == Some(Method::Hello)
            && matches!((&shared.token, &token), (Some(want), Some(got)) if token_matches(want, got.as_bytes()));
        if !ok {
            out.send(
                error_frame(
                    Some(request.id),
                    "unauthorized",
                    "a TCP connection must open with `hello` and the server's token",
                ),
                false,
            );
            return Flow::Close;
        }
        *authed = true;
    }
    let Some(method) = method else {
        out.send(
            error_frame(
                Some(request.id),
                "unknown_method",
                &format!("unknown method {:?}", request.method),
            ),
            false,
        );
        return Flow::Continue;
    };
    match method {
        Method::Hello => out.send(result_frame(request.id, &hello_result(shared)), false),
        Method::Ping => out.send(result_frame(request.id, r#""pong""#), false),
        _ if method.needs_store() && !shared.has_store() => out.send(
            error_frame(
                Some(request.id),
                "no_store",
                &format!(
                    "`{}` needs a store: start the server with --db DIR",
                    method.name()
                ),
            ),
            false,
        ),
        _ if !out.try_slot() => out.send(
            error_frame(
                Some(request.id),
                "busy",
                "too many requests in flight; retry later",
            ),
            false,
        ),
        _ => dispatch(method, request, body, out),
    }
    Flow::Continue
}

/// Runs a request that holds a slot: ingest on the ingest thread, the rest on rayon.
fn dispatch(method: Method, request: Request, body: Vec<u8>, out: &Responder) {
    let Request { id, params, .. } = request;
    if method == Method::Ingest {
        methods::queue_ingest(
            out.shared.store.as_ref(),
            id,
            body,
            params,
            Box::new(out.clone()),
        );
        return;
    }
    let out = out.clone();
    rayon::spawn(move || {
        let params: &[u8] = params.and_then(|r| body.get(r)).unwrap_or(b"{}".as_slice());
        let answer = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            methods::call(method, params, &*out.shared)
        }))
        .unwrap_or_else(|_| {
            Err(ApiError::internal(
                "the request panicked; see the server log",
            ))
        });
        out.answer(id, answer);
    });
}

/// A connection's reader loop, on its own thread; returns when the connection is done.
fn serve_connection<S: Stream>(stream: S, shared: Arc<Shared>, mut authed: bool) {
    let (Ok(read_half), Ok(write_half)) = (stream.clone_stream(), stream.clone_stream()) else {
        stream.close(Shutdown::Both);
        return;
    };
    let state = Arc::new(ConnState::default());
    let (tx, rx) = mpsc::channel::<Outgoing>();
    let writer = {
        let state = Arc::clone(&state);
        let shared = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("serve-writer".into())
            .spawn(move || write_loop(write_half, rx, &state, &shared))
    };
    let Ok(writer) = writer else {
        stream.close(Shutdown::Both);
        return;
    };
    let out = Responder {
        tx,
        state,
        shared: Arc::clone(&shared),
    };
    let mut reader = BufReader::with_capacity(64 << 10, read_half);
    loop {
        out.wait_for_room();
        if shared.stopping.load(Ordering::Acquire) {
            break;
        }
        let body = match read_frame(&mut reader, shared.max_frame) {
            Ok(Some(body)) => body,
            Ok(None) | Err(FrameError::Io) => break,
            Err(_) if shared.stopping.load(Ordering::Acquire) => break,
            Err(FrameError::TooLarge(len)) => {
                out.send(
                    error_frame(
                        None,
                        "frame_too_large",
                        &format!(
                            "a frame of {len} bytes is over the limit of {} bytes; closing",
                            shared.max_frame
                        ),
                    ),
                    false,
                );
                break;
            }
            Err(FrameError::Truncated) => {
                out.send(
                    error_frame(
                        None,
                        "truncated_frame",
                        "the stream ended inside a frame; closing",
                    ),
                    false,
                );
                break;
            }
        };
        shared.requests.fetch_add(1, Ordering::Relaxed);
        if let Flow::Close = handle(body, &out, &mut authed) {
            break;
        }
    }
    // The writer ends once every request of this connection has answered (each holds a sender).
    drop(out);
    let _ = writer.join();
    stream.close(Shutdown::Both);
}

fn write_loop<S: Stream>(
    stream: S,
    rx: mpsc::Receiver<Outgoing>,
    state: &ConnState,
    shared: &Shared,
) {
    let mut w = BufWriter::with_capacity(64 << 10, stream);
    let mut dead = false;
    loop {
        let msg = match rx.try_recv() {
            Ok(msg) => msg,
            Err(TryRecvError::Empty) => {
                if !dead && w.flush().is_err() {
                    dead = true;
                    w.get_ref().close(Shutdown::Both);
                }
                match rx.recv() {
                    Ok(msg) => msg,
                    Err(_) => break,
                }
            }
            Err(TryRecvError::Disconnected) => break,
        };
        if !dead && w.write_all(&msg.frame).is_err() {
            // The client is gone or not reading: drop the rest, wake the reader.
            dead = true;
            w.get_ref().close(Shutdown::Both);
        }
        release(state, shared, msg.slot);
    }
    if !dead {
        let _ = w.flush();
    }
}

/// Open connections, to stop their readers at shutdown.
type Registry = Mutex<HashMap<u64, Box<dyn Fn() + Send>>>;

struct Server {
    shared: Arc<Shared>,
    registry: Arc<Registry>,
    threads: Vec<JoinHandle<()>>,
    next_conn: u64,
    max_connections: usize,
}

impl Server {
    fn accept<S: Stream>(&mut self, stream: S, authed: bool) {
        if stream.prepare().is_err() {
            return;
        }
        if self.shared.connections.load(Ordering::Acquire) >= self.max_connections {
            let mut stream = stream;
            let _ = stream.write_all(&error_frame(
                None,
                "busy",
                "too many connections; retry later",
            ));
            stream.close(Shutdown::Both);
            return;
        }
        let Ok(handle) = stream.clone_stream() else {
            return;
        };
        let conn = self.next_conn;
        self.next_conn += 1;
        if let Ok(mut reg) = self.registry.lock() {
            reg.insert(conn, Box::new(move || handle.close(Shutdown::Read)));
        }
        self.shared.connections.fetch_add(1, Ordering::AcqRel);
        let shared = Arc::clone(&self.shared);
        let registry = Arc::clone(&self.registry);
        let spawned = std::thread::Builder::new()
            .name("serve-conn".into())
            .spawn(move || {
                serve_connection(stream, Arc::clone(&shared), authed);
                if let Ok(mut reg) = registry.lock() {
                    reg.remove(&conn);
                }
                shared.connections.fetch_sub(1, Ordering::AcqRel);
            });
        match spawned {
            Ok(t) => self.threads.push(t),
            Err(e) => {
                eprintln!("roomgraph serve: cannot start a connection thread: {e}");
                if let Ok(mut reg) = self.registry.lock() {
                    reg.remove(&conn);
                }
                self.shared.connections.fetch_sub(1, Ordering::AcqRel);
            }
        }
    }

    fn reap(&mut self) {
        let (done, running): (Vec<_>, Vec<_>) = std::mem::take(&mut self.threads)
            .into_iter()
            .partition(JoinHandle::is_finished);
        self.threads = running;
        for t in done {
            let _ = t.join();
        }
    }
}

/// Removes the socket file when the server stops, however it stops.
struct SocketFile(PathBuf);

impl Drop for SocketFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn bind_unix(path: &Path) -> Result<UnixListener, String> {
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(format!(
                "{} exists and is not a socket; not replacing it",
                path.display()
            ));
        }
        if UnixStream::connect(path).is_ok() {
            return Err(format!(
                "{}: another server is listening on it",
                path.display()
            ));
        }
        std::fs::remove_file(path)
            .map_err(|e| format!("removing the stale socket {}: {e}", path.display()))?;
    }
    let listener =
        UnixListener::bind(path).map_err(|e| format!("binding {}: {e}", path.display()))?;
    // Only the server's user may connect: the socket is the access control of local clients.
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| format!("setting the mode of {}: {e}", path.display()))?;
    Ok(listener)
}

fn read_token(path: &Path) -> Result<Vec<u8>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("reading the token file {}: {e}", path.display()))?;
    let token = text.trim();
    if token.is_empty() {
        return Err(format!("the token file {} is empty", path.display()));
    }
    Ok(token.as_bytes().to_vec())
}

pub fn run(args: ServeArgs) -> Result<(), String> {
    let token = match (&args.tcp, &args.token_file) {
        (Some(addr), Some(file)) => {
            if !addr.ip().is_loopback() {
                return Err(format!(
                    "--tcp {addr}: only loopback addresses (127.0.0.0/8, ::1) are served"
                ));
            }
            Some(read_token(file)?)
        }
        (None, None) => None,
        _ => return Err("--tcp and --token-file go together".into()),
    };
    if args.max_in_flight == 0 || args.max_in_flight_total == 0 || args.max_connections == 0 {
        return Err("the --max-* bounds must be at least 1".into());
    }

    // Signals first: a SIGTERM during start-up stops the server as soon as it can serve. A second
    // signal while stopping ends the process at once.
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register_conditional_shutdown(sig, 1, Arc::clone(&stop))
            .map_err(|e| format!("installing the signal handler: {e}"))?;
        signal_hook::flag::register(sig, Arc::clone(&stop))
            .map_err(|e| format!("installing the signal handler: {e}"))?;
    }

    let (store, ingest_thread) = match &args.db {
        Some(db) => {
            let (side, thread) = methods::open_store(db, args.keys.as_deref())?;
            (Some(side), Some(thread))
        }
        None => (None, None),
    };

    let unix = bind_unix(&args.socket)?;
    let _socket_file = SocketFile(args.socket.clone());
    unix.set_nonblocking(true)
        .map_err(|e| format!("listening on {}: {e}", args.socket.display()))?;
    let tcp = match args.tcp {
        Some(addr) => {
            let l = TcpListener::bind(addr).map_err(|e| format!("binding {addr}: {e}"))?;
            l.set_nonblocking(true)
                .map_err(|e| format!("listening on {addr}: {e}"))?;
            Some(l)
        }
        None => None,
    };
    let tcp_addr = match &tcp {
        Some(l) => Some(
            l.local_addr()
                .map_err(|e| format!("TCP listener: {e}"))?
                .to_string(),
        ),
        None => None,
    };

    let shared = Arc::new(Shared {
        max_frame: args.max_frame,
        max_in_flight: args.max_in_flight,
        max_in_flight_total: args.max_in_flight_total,
        token,
        in_flight: AtomicUsize::new(0),
        connections: AtomicUsize::new(0),
        requests: AtomicU64::new(0),
        stopping: AtomicBool::new(false),
        store,
        sessions: sessions::Sessions::default(),
    });
    let mut server = Server {
        shared: Arc::clone(&shared),
        registry: Arc::new(Mutex::new(HashMap::new())),
        threads: Vec::new(),
        next_conn: 0,
        max_connections: args.max_connections,
    };

    // The ready line: clients (and tests) may connect once it is printed.
    let ready = serde_json::json!({
        "socket": args.socket.to_string_lossy(),
        "tcp": tcp_addr,
        "store": shared.has_store(),
    });
    {
        let mut stdout = io::stdout().lock();
        writeln!(stdout, "{ready}").map_err(|e| format!("writing standard output: {e}"))?;
        stdout
            .flush()
            .map_err(|e| format!("writing standard output: {e}"))?;
    }

    while !stop.load(Ordering::Acquire) {
        let mut idle = true;
        match unix.accept() {
            Ok((s, _)) => {
                idle = false;
                server.accept(s, true);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => eprintln!("roomgraph serve: accept: {e}"),
        }
        if let Some(l) = &tcp {
            match l.accept() {
                Ok((s, peer)) if peer.ip().is_loopback() => {
                    idle = false;
                    server.accept(s, false);
                }
                Ok(_) => idle = false,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => eprintln!("roomgraph serve: accept: {e}"),
            }
        }
        server.reap();
        if idle {
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    // Stop accepting, stop reading new requests, finish what is in flight.
    drop(unix);
    drop(tcp);
    shared.stopping.store(true, Ordering::Release);
    if let Ok(reg) = server.registry.lock() {
        for stop_reading in reg.values() {
            stop_reading();
        }
    }
    for t in std::mem::take(&mut server.threads) {
        let _ = t.join();
    }
    {
        if let Some(store) = &shared.store {
            store.close_queue();
        }
        if let Some(t) = ingest_thread {
            let _ = t.join();
        }
    }
    eprintln!(
        "roomgraph serve: stopped after {} requests",
        shared.requests.load(Ordering::Relaxed)
    );
    Ok(())
}
