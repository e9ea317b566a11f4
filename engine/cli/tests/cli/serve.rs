//! `roomgraph serve` end to end, with real processes and real sockets: every method answers as the
//! command line does for the same document; concurrent pipelined clients; bad frames; clients that go
//! away mid-request; SIGTERM with requests in flight and SIGKILL, each followed by a restart on the
//! same store; TCP only with the token. The wire contract is `docs/protocol.md`.

use roomgraph_tests::auth_support;

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use roomgraph::room_version::RoomVersion;
use roomgraph_testkit::room_generator::{RoomConfig, generate as generate_room};
use roomgraph_testkit::trace::{Trace, TraceSpec, generate};
use serde_json::{Value, json};

const SAMPLE: &str = include_str!("../../../../datasets/sample-room-v11.ndjson");

fn bin() -> String {
    std::env::var("ROOMGRAPH_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_roomgraph").to_owned())
}

/// Runs a CLI command with `stdin`; its output.
fn cli(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(bin())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn roomgraph");
    let mut input = child.stdin.take().expect("stdin");
    let bytes = stdin.to_vec();
    let feeder = std::thread::spawn(move || {
        let _ = input.write_all(&bytes);
    });
    let out = child.wait_with_output().expect("roomgraph finishes");
    feeder.join().expect("stdin written");
    out
}

/// The JSON a successful CLI command prints.
fn cli_json(args: &[&str], stdin: &[u8]) -> Value {
    let out = cli(args, stdin);
    assert!(
        out.status.success(),
        "roomgraph {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "roomgraph {args:?} printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

fn cli_text(args: &[&str], stdin: &[u8]) -> String {
    let out = cli(args, stdin);
    assert!(
        out.status.success(),
        "roomgraph {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("utf-8")
        .trim_end()
        .to_owned()
}

/// A running `roomgraph serve`.
struct Server {
    child: Child,
    socket: PathBuf,
    ready: Value,
}

impl Server {
    fn start(dir: &Path, extra: &[&str]) -> Server {
        let socket = dir.join("rg.sock");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("server.log"))
            .expect("log file");
        let mut child = Command::new(bin())
            .arg("serve")
            .arg("--socket")
            .arg(&socket)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("spawn roomgraph serve");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("ready line");
        let ready: Value = serde_json::from_str(&line).unwrap_or_else(|e| {
            let _ = child.kill();
            let log = std::fs::read_to_string(dir.join("server.log")).unwrap_or_default();
            panic!("no ready line ({e}): {line:?}; log: {log}")
        });
        Server {
            child,
            socket,
            ready,
        }
    }

    fn connect(&self) -> Client<UnixStream> {
        Client::new(UnixStream::connect(&self.socket).expect("connect"))
    }

    fn signal(&self, sig: libc::c_int) {
        let pid = libc::pid_t::try_from(self.child.id()).expect("pid");
        // SAFETY: kill(2) on our own child's pid; no memory is involved.
        let rc = unsafe { libc::kill(pid, sig) };
        assert_eq!(rc, 0, "kill({pid}, {sig})");
    }

    /// Waits for the process to end (at most `limit`).
    fn wait(&mut self, limit: Duration) -> std::process::ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            if start.elapsed() > limit {
                let _ = self.child.kill();
                panic!("server did not stop within {limit:?}");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// SIGTERM: the server stops cleanly, exits 0 and removes its socket.
    fn stop(mut self) {
        self.signal(libc::SIGTERM);
        let status = self.wait(Duration::from_secs(20));
        assert!(status.success(), "serve exited with {status}");
        assert!(!self.socket.exists(), "socket file removed");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn frame(body: &[u8]) -> Vec<u8> {
    let mut f = (body.len() as u32).to_be_bytes().to_vec();
    f.extend_from_slice(body);
    f
}

/// A client speaking the wire protocol (blocking).
struct Client<S: Read + Write> {
    stream: S,
    next_id: u64,
}

impl<S: Read + Write> Client<S> {
    fn new(stream: S) -> Client<S> {
        Client { stream, next_id: 1 }
    }

    fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("send");
    }

    /// Sends a request whose params are JSON text; its id.
    fn send(&mut self, method: &str, params: &str) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        let body = format!(r#"{{"id":{id},"method":"{method}","params":{params}}}"#);
        self.send_raw(&frame(body.as_bytes()));
        id
    }

    /// The next response; `None` at end of stream.
    fn recv(&mut self) -> Option<Value> {
        let mut header = [0u8; 4];
        if self.stream.read_exact(&mut header).is_err() {
            return None;
        }
        let mut body = vec![0; u32::from_be_bytes(header) as usize];
        self.stream.read_exact(&mut body).expect("frame body");
        Some(serde_json::from_slice(&body).expect("a response is JSON"))
    }

    /// One request, answered: the whole response.
    fn call(&mut self, method: &str, params: &str) -> Value {
        let id = self.send(method, params);
        let resp = self.recv().expect("a response");
        assert_eq!(resp["id"], id, "{resp}");
        resp
    }

    fn result(&mut self, method: &str, params: &str) -> Value {
        let resp = self.call(method, params);
        assert!(resp.get("error").is_none(), "{method}: {resp}");
        resp["result"].clone()
    }

    fn error_code(&mut self, method: &str, params: &str) -> String {
        let resp = self.call(method, params);
        resp["error"]["code"]
            .as_str()
            .unwrap_or_else(|| panic!("{method}: no error: {resp}"))
            .to_owned()
    }
}

fn sample_lines() -> Vec<&'static str> {
    SAMPLE.lines().filter(|l| !l.trim().is_empty()).collect()
}

fn pdus_params<S: AsRef<str>>(lines: &[S]) -> String {
    let joined: Vec<&str> = lines.iter().map(AsRef::as_ref).collect();
    format!(r#"{{"pdus":[{}]}}"#, joined.join(","))
}

fn resolve_requests() -> Vec<String> {
    [("1", 3), ("2", 4), ("11", 5), ("12", 6)]
        .into_iter()
        .map(|(v, seed)| {
            generate_room(&RoomConfig::small(
                RoomVersion::from_id(v).expect("known"),
                seed,
            ))
            .to_request_json()
        })
        .collect()
}

fn auth_requests() -> Vec<String> {
    use auth_support::*;
    let mut room = Room::standard("11", "invite", "{}");
    let refused = room.build(member(BOB, BOB, "join"));
    let mut out = vec![room.request(&refused)];
    room.send(member(ALICE, BOB, "invite"));
    let allowed = room.build(member(BOB, BOB, "join"));
    out.push(room.request(&allowed));
    out
}

fn pdu_params(line: &str) -> String {
    format!(r#"{{"room_version":"11","pdu":{line}}}"#)
}

fn trace(events: usize, seed: u64) -> Trace {
    generate(&TraceSpec {
        events,
        rooms: 3,
        seed,
        ..TraceSpec::default()
    })
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// Every method, answered as the CLI answers the same document.
#[test]
fn every_method_answers_as_the_cli() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("db");
    let server = Server::start(dir.path(), &["--db", s(&db)]);
    assert_eq!(server.ready["store"], true);
    let mut c = server.connect();

    let hello = c.result("hello", "{}");
    assert_eq!(hello["store"], true);
    assert_eq!(hello["max_frame"], 64 << 20);
    assert_eq!(hello["version"], env!("CARGO_PKG_VERSION"));
    let methods: Vec<&str> = hello["methods"]
        .as_array()
        .expect("methods")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for m in [
        "hello",
        "ping",
        "resolve",
        "auth_check",
        "event_id",
        "redact",
        "content_hash",
        "ingest",
        "state",
        "event",
        "extremities",
        "stats",
    ] {
        assert!(methods.contains(&m), "{m} in {methods:?}");
    }
    assert_eq!(c.result("ping", "{}"), "pong");

    for doc in resolve_requests() {
        assert_eq!(
            c.result("resolve", &doc),
            cli_json(&["resolve"], doc.as_bytes())
        );
    }
    for doc in auth_requests() {
        assert_eq!(
            c.result("auth_check", &doc),
            cli_json(&["auth-check"], doc.as_bytes())
        );
    }
    for line in sample_lines().into_iter().take(4) {
        let p = pdu_params(line);
        let args = |cmd| [cmd, "--room-version", "11"];
        assert_eq!(
            c.result("event_id", &p)["event_id"],
            cli_text(&args("event-id"), line.as_bytes())
        );
        assert_eq!(
            c.result("content_hash", &p)["content_hash"],
            cli_text(&args("content-hash"), line.as_bytes())
        );
        assert_eq!(
            c.result("redact", &p),
            cli_json(&args("redact"), line.as_bytes())
        );
    }

    // ingest: the summary and the outcome lines of `roomgraph ingest --outcomes` on the same PDUs.
    let lines = sample_lines();
    let answer = c.result("ingest", &pdus_params(&lines));
    let cli_db = dir.path().join("cli-db");
    let outcomes = dir.path().join("cli.outcomes");
    let summary = cli_json(
        &[
            "ingest",
            "--db",
            s(&cli_db),
            "--outcomes",
            s(&outcomes),
            "-",
        ],
        SAMPLE.as_bytes(),
    );
    assert_eq!(answer["summary"], summary);
    let cli_outcomes: Vec<Value> = std::fs::read_to_string(&outcomes)
        .expect("outcomes")
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    assert_eq!(answer["outcomes"], Value::Array(cli_outcomes));
    assert!(summary["accepted"].as_u64().is_some_and(|n| n > 0));
    // Again: every PDU a duplicate, as for the CLI.
    let again = c.result("ingest", &pdus_params(&lines));
    assert_eq!(again["summary"]["duplicates"], lines.len());

    // Queries: as the CLI answers on the server's own store (opened read-only beside it).
    let first: Value = serde_json::from_str(lines[0]).expect("PDU");
    let room = first["room_id"].as_str().expect("room_id");
    let ids: Vec<String> = answer["outcomes"]
        .as_array()
        .expect("outcomes")
        .iter()
        .filter_map(|o| o["event_id"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(
        c.result("state", &json!({ "room_id": room }).to_string()),
        cli_json(&["state", "--db", s(&db), "--room", room], b"")
    );
    assert_eq!(
        c.result("extremities", &json!({ "room_id": room }).to_string()),
        cli_json(&["extremities", "--db", s(&db), "--room", room], b"")
    );
    for id in ids.iter().take(5) {
        assert_eq!(
            c.result("event", &json!({ "event_id": id }).to_string()),
            cli_json(&["event", "--db", s(&db), id], b"")
        );
        assert_eq!(
            c.result("state", &json!({ "event_id": id }).to_string()),
            cli_json(&["state", "--db", s(&db), "--event", id], b"")
        );
        assert_eq!(
            c.result(
                "state",
                &json!({ "event_id": id, "before": true }).to_string()
            ),
            cli_json(&["state", "--db", s(&db), "--event", id, "--before"], b"")
        );
    }
    let stats = c.result("stats", "{}");
    assert!(stats["events"].as_u64().is_some_and(|n| n > 0), "{stats}");
    assert!(stats["size_on_disk"].as_u64().is_some_and(|n| n > 0));
    assert_eq!(stats["connections"], 1);

    // What the CLI refuses, the server answers with an error.
    assert_eq!(
        c.error_code("event", r#"{"event_id":"$nope"}"#),
        "not_found"
    );
    assert_eq!(
        c.error_code("state", r#"{"room_id":"!nope:x"}"#),
        "not_found"
    );
    assert_eq!(
        c.error_code("extremities", r#"{"room_id":"!nope:x"}"#),
        "not_found"
    );
    assert_eq!(
        c.error_code("state", r#"{"room_id":"!a:x","event_id":"$b"}"#),
        "invalid_params"
    );
    assert_eq!(c.error_code("ingest", r#"{"pdus":7}"#), "invalid_params");
    drop(c);
    server.stop();
}

/// Malformed requests and bad params are answered with an error frame; the connection goes on.
#[test]
fn bad_requests_get_error_frames_and_the_connection_goes_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), &[]);
    let mut c = server.connect();
    let raw_error = |c: &mut Client<UnixStream>, body: &[u8]| -> Value {
        c.send_raw(&frame(body));
        let resp = c.recv().expect("an error frame");
        assert!(resp.get("result").is_none(), "{resp}");
        resp
    };
    for (body, code) in [
        (&b"{not json"[..], "parse_error"),
        (&b""[..], "parse_error"),
        (&b"\xff\xfe{}"[..], "parse_error"),
        (&br#"{"id":1,"method":"ping""#[..], "parse_error"),
        (&br#"[1,2]"#[..], "invalid_request"),
        (&br#"{"id":"one","method":"ping"}"#[..], "invalid_request"),
        (&br#"{"id":-1,"method":"ping"}"#[..], "invalid_request"),
        (&br#"{"method":"ping"}"#[..], "invalid_request"),
        (
            &br#"{"id":1,"method":"ping","extra":true}"#[..],
            "invalid_request",
        ),
    ] {
        let resp = raw_error(&mut c, body);
        assert_eq!(
            resp["error"]["code"],
            code,
            "{:?}: {resp}",
            String::from_utf8_lossy(body)
        );
        assert_eq!(resp["id"], Value::Null);
        assert!(
            resp["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
    }
    let resp = raw_error(&mut c, br#"{"id":5}"#);
    assert_eq!(
        (resp["id"].clone(), resp["error"]["code"].clone()),
        (json!(5), json!("invalid_request"))
    );
    assert_eq!(c.error_code("frobnicate", "{}"), "unknown_method");
    assert_eq!(c.error_code("resolve", "{}"), "invalid_params");
    assert_eq!(c.error_code("resolve", "[]"), "invalid_params");
    assert_eq!(
        c.error_code("auth_check", r#"{"room_version":"11"}"#),
        "invalid_params"
    );
    assert_eq!(c.error_code("event_id", "{}"), "invalid_params");
    assert_eq!(
        c.error_code("event_id", r#"{"room_version":"99","pdu":{}}"#),
        "invalid_params"
    );
    assert_eq!(
        c.error_code("redact", r#"{"room_version":"11","pdu":{"type":1}}"#),
        "invalid_params"
    );
    // Without --db the store methods are not served.
    assert_eq!(c.error_code("ingest", r#"{"pdus":[]}"#), "no_store");
    assert_eq!(c.error_code("stats", "{}"), "no_store");
    let hello = c.result("hello", "{}");
    assert_eq!(hello["store"], false);
    assert!(
        !hello["methods"]
            .as_array()
            .expect("methods")
            .contains(&json!("ingest"))
    );
    assert_eq!(c.result("ping", "{}"), "pong");
    drop(c);
    server.stop();
}

/// Oversize and truncated frames get an error frame, then the connection is closed; a client that
/// goes away mid-request (or mid-frame) leaves the server serving.
#[test]
fn oversize_truncated_and_abandoned_frames() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), &["--max-frame", "1048576"]);
    assert_eq!(server.connect().result("hello", "{}")["max_frame"], 1 << 20);

    let mut c = server.connect();
    c.send_raw(&2_000_000u32.to_be_bytes());
    c.send_raw(&[b' '; 100]);
    let resp = c.recv().expect("error frame");
    assert_eq!(resp["error"]["code"], "frame_too_large", "{resp}");
    assert!(c.recv().is_none(), "closed after an oversize frame");

    let mut c = server.connect();
    c.send_raw(&100u32.to_be_bytes());
    c.send_raw(br#"{"id":1,"#);
    c.stream.shutdown(Shutdown::Write).expect("half-close");
    let resp = c.recv().expect("error frame");
    assert_eq!(resp["error"]["code"], "truncated_frame", "{resp}");
    assert!(c.recv().is_none(), "closed after a truncated frame");

    let mut c = server.connect();
    c.send_raw(&[0, 0]);
    c.stream.shutdown(Shutdown::Write).expect("half-close");
    assert_eq!(
        c.recv().expect("error frame")["error"]["code"],
        "truncated_frame"
    );

    // Clients gone mid-request: pipelined work whose answers nobody reads, and half frames.
    let docs = resolve_requests();
    for _ in 0..8 {
        let mut c = server.connect();
        for doc in &docs {
            c.send("resolve", doc);
        }
        c.send_raw(&frame(br#"{"id":99,"method":"resolve","params":"#)[..30]);
        drop(c);
    }
    let mut c = server.connect();
    for doc in &docs {
        assert_eq!(
            c.result("resolve", doc),
            cli_json(&["resolve"], doc.as_bytes())
        );
    }
    drop(c);
    server.stop();
}

/// 32 clients at once, each pipelining requests: every request is answered once, with the answer a
/// lone request gets (the bounds are set above what the clients send: no `busy`).
#[test]
fn thirty_two_concurrent_pipelined_clients() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(
        dir.path(),
        &["--max-in-flight", "128", "--max-in-flight-total", "4096"],
    );
    let mut requests: Vec<(&str, String)> = Vec::new();
    for doc in resolve_requests() {
        requests.push(("resolve", doc));
    }
    for doc in auth_requests() {
        requests.push(("auth_check", doc));
    }
    for line in sample_lines() {
        requests.push(("event_id", pdu_params(line)));
        requests.push(("redact", pdu_params(line)));
    }
    requests.push(("ping", "{}".into()));
    requests.push(("nope", "{}".into()));
    let expected: Vec<Value> = {
        let mut c = server.connect();
        requests
            .iter()
            .map(|(m, p)| {
                let mut r = c.call(m, p);
                r.as_object_mut().expect("object").remove("id");
                r
            })
            .collect()
    };
    let socket = server.socket.clone();
    let threads: Vec<_> = (0..32)
        .map(|t| {
            let socket = socket.clone();
            let requests = requests.clone();
            let expected = expected.clone();
            std::thread::spawn(move || {
                let stream = UnixStream::connect(&socket).expect("connect");
                let mut c = Client::new(stream.try_clone().expect("clone"));
                let mut writer = Client::new(stream);
                let rounds = 3;
                let order: Vec<usize> = (0..rounds * requests.len())
                    .map(|i| (i * 7 + t) % requests.len())
                    .collect();
                let sent = order.clone();
                let reqs = requests.clone();
                let w = std::thread::spawn(move || {
                    let mut ids = Vec::new();
                    for i in sent {
                        ids.push(writer.send(reqs[i].0, &reqs[i].1));
                    }
                    ids
                });
                let mut answers: HashMap<u64, Value> = HashMap::new();
                for _ in 0..order.len() {
                    let mut r = c.recv().expect("a response per request");
                    let id = r["id"].as_u64().expect("id");
                    r.as_object_mut().expect("object").remove("id");
                    assert!(answers.insert(id, r).is_none(), "id {id} answered twice");
                }
                let ids = w.join().expect("writer");
                let mut busy = 0;
                for (id, i) in ids.iter().zip(&order) {
                    let got = &answers[id];
                    if got["error"]["code"] == "busy" {
                        busy += 1;
                    } else {
                        assert_eq!(
                            got, &expected[*i],
                            "{} answered differently",
                            requests[*i].0
                        );
                    }
                }
                busy
            })
        })
        .collect();
    let busy: usize = threads.into_iter().map(|t| t.join().expect("client")).sum();
    assert_eq!(busy, 0, "busy answers under the bounds");
    server.stop();
}

/// Over the in-flight bound a request is answered `busy` at once; the others are served.
#[test]
fn over_the_bound_requests_are_busy() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), &["--max-in-flight", "1"]);
    let doc = &resolve_requests()[3];
    let expected = server.connect().result("resolve", doc);
    let mut c = server.connect();
    let mut batch = Vec::new();
    for _ in 0..100 {
        let id = c.next_id;
        c.next_id += 1;
        batch.extend(frame(
            format!(r#"{{"id":{id},"method":"resolve","params":{doc}}}"#).as_bytes(),
        ));
    }
    let stream = c.stream.try_clone().expect("clone");
    let w = std::thread::spawn(move || {
        let mut stream = stream;
        stream.write_all(&batch).expect("send");
    });
    let (mut busy, mut served) = (0, 0);
    for _ in 0..100 {
        let r = c.recv().expect("response");
        if r["error"]["code"] == "busy" {
            busy += 1;
        } else {
            assert_eq!(r["result"], expected);
            served += 1;
        }
    }
    w.join().expect("writer");
    assert!(busy > 0 && served > 0, "busy {busy}, served {served}");
    drop(c);
    server.stop();
}

/// The stored outcome of every event in acknowledged `ingest` answers, asked of a server.
fn check_acknowledged(server: &Server, acknowledged: &[Value]) -> usize {
    let mut c = server.connect();
    let mut n = 0;
    for answer in acknowledged {
        for o in answer["outcomes"].as_array().expect("outcomes") {
            let outcome = o["outcome"].as_str().expect("outcome");
            if matches!(outcome, "accepted" | "rejected" | "soft_failed" | "outlier") {
                let id = o["event_id"].as_str().expect("id");
                let ev = c.result("event", &json!({ "event_id": id }).to_string());
                assert_eq!(ev["event_id"], id);
                n += 1;
            }
        }
    }
    n
}

/// SIGTERM with ingests in flight: answered requests are durable; the server exits 0; a restarted
/// server on the same store has every acknowledged event.
#[test]
fn sigterm_finishes_in_flight_requests() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("db");
    let mut server = Server::start(dir.path(), &["--db", s(&db)]);
    let t = trace(1500, 11);
    let mut c = server.connect();
    let chunks: Vec<String> = t.lines.chunks(50).map(pdus_params).collect();
    let stream = c.stream.try_clone().expect("clone");
    let count = chunks.len();
    let w = std::thread::spawn(move || {
        // The server stops reading at the signal: later writes may fail.
        let mut stream = stream;
        for (i, chunk) in chunks.iter().enumerate() {
            let body = format!(r#"{{"id":{},"method":"ingest","params":{chunk}}}"#, i + 1);
            if stream.write_all(&frame(body.as_bytes())).is_err() {
                break;
            }
        }
    });
    let mut acknowledged = Vec::new();
    let first = c.recv().expect("first answer");
    assert!(first.get("result").is_some(), "{first}");
    acknowledged.push(first["result"].clone());
    server.signal(libc::SIGTERM);
    while let Some(r) = c.recv() {
        if let Some(result) = r.get("result") {
            acknowledged.push(result.clone());
        }
    }
    w.join().expect("writer");
    let status = server.wait(Duration::from_secs(30));
    assert!(status.success(), "{status}");
    assert!(!server.socket.exists());
    eprintln!(
        "{} of {count} ingests acknowledged before the stop",
        acknowledged.len()
    );

    let server = Server::start(dir.path(), &["--db", s(&db)]);
    let stored = check_acknowledged(&server, &acknowledged);
    assert!(stored > 0);
    server.stop();
}

/// SIGKILL between acknowledged ingests, restart on the same store (its stale socket file replaced),
/// ingest the rest: the rooms' state is what one CLI ingest of the whole trace gives.
#[test]
fn sigkill_and_restart_on_the_same_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("db");
    let t = trace(600, 12);
    let (head, tail) = t.lines.split_at(t.lines.len() / 2);
    let mut server = Server::start(dir.path(), &["--db", s(&db)]);
    let mut acknowledged = Vec::new();
    {
        let mut c = server.connect();
        for chunk in head.chunks(100) {
            acknowledged.push(c.result("ingest", &pdus_params(chunk)));
        }
        // One more in flight when the server dies.
        c.send("ingest", &pdus_params(tail));
        server.child.kill().expect("SIGKILL");
        server.child.wait().expect("reaped");
    }
    assert!(
        server.socket.exists(),
        "a killed server leaves its socket file"
    );
    let server = Server::start(dir.path(), &["--db", s(&db)]);
    check_acknowledged(&server, &acknowledged);
    let mut c = server.connect();
    c.result("ingest", &pdus_params(tail));

    let reference = dir.path().join("reference");
    let mut all = t.lines.join("\n");
    all.push('\n');
    cli_json(&["ingest", "--db", s(&reference), "-"], all.as_bytes());
    let mut states = BTreeMap::new();
    for room in &t.rooms {
        let params = json!({ "room_id": room }).to_string();
        states.insert(room.clone(), c.result("state", &params));
        assert_eq!(
            states[room],
            cli_json(&["state", "--db", s(&reference), "--room", room], b""),
            "{room}"
        );
    }
    drop(c);
    server.stop();
}

/// TCP: loopback only, and the first request must be `hello` with the token.
#[test]
fn tcp_requires_the_token() {
    let dir = tempfile::tempdir().expect("tempdir");
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "s3cret-token\n").expect("token");
    let out = cli(
        &[
            "serve",
            "--socket",
            s(&dir.path().join("x.sock")),
            "--tcp",
            "0.0.0.0:0",
            "--token-file",
            s(&token_file),
        ],
        b"",
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("loopback"));

    let server = Server::start(
        dir.path(),
        &["--tcp", "127.0.0.1:0", "--token-file", s(&token_file)],
    );
    let addr = server.ready["tcp"]
        .as_str()
        .expect("tcp address")
        .to_owned();
    let tcp = || Client::new(TcpStream::connect(&addr).expect("connect"));

    let mut c = tcp();
    assert_eq!(c.error_code("ping", "{}"), "unauthorized");
    assert!(c.recv().is_none(), "closed");
    let mut c = tcp();
    assert_eq!(
        c.error_code("hello", r#"{"token":"wrong"}"#),
        "unauthorized"
    );
    assert!(c.recv().is_none(), "closed");
    let mut c = tcp();
    assert_eq!(c.error_code("hello", "{}"), "unauthorized");
    let mut c = tcp();
    let hello = c.result("hello", r#"{"token":"s3cret-token"}"#);
    assert_eq!(hello["store"], false);
    assert_eq!(c.result("ping", "{}"), "pong");
    let doc = &resolve_requests()[0];
    assert_eq!(
        c.result("resolve", doc),
        cli_json(&["resolve"], doc.as_bytes())
    );
    // The Unix socket needs no token.
    assert_eq!(server.connect().result("ping", "{}"), "pong");
    drop(c);
    server.stop();
}

/// The Python client (`ffi/python/`, standard library only) against a real server.
#[test]
fn python_client_against_a_real_server() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = Command::new("python3")
        .args(["-m", "unittest", "-v", "test_roomgraph_client"])
        .current_dir(root.join("ffi/python"))
        .env("ROOMGRAPH_BIN", bin())
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .expect("python3 runs (scripts/setup.sh installs it)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "python client tests failed:\n{stderr}"
    );
    assert!(stderr.contains("Ran 6 tests"), "{stderr}");
}

/// `resolve_begin` / `resolve_supply`: a client that ships nothing up front and answers each `need`
/// from the request document's events gets what `resolve` (and `roomgraph resolve`) answers for the
/// whole document; sessions are closed when done, and unknown sessions and bad params are errors that
/// leave the connection usable.
#[test]
fn host_driven_resolution_over_the_socket() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), &[]);
    let mut c = server.connect();
    let methods = c.result("hello", "{}")["methods"].to_string();
    assert!(methods.contains("resolve_begin") && methods.contains("resolve_supply"));
    for doc in resolve_requests() {
        let request: Value = serde_json::from_str(&doc).expect("request json");
        let events: HashMap<String, Value> = request["events"]
            .as_array()
            .expect("events")
            .iter()
            .map(|pdu| {
                let line = pdu.to_string();
                let id = cli_text(
                    &[
                        "event-id",
                        "--room-version",
                        request["room_version"].as_str().expect("version"),
                    ],
                    line.as_bytes(),
                );
                (id.trim().to_owned(), pdu.clone())
            })
            .collect();
        let begin = serde_json::json!({
            "room_version": request["room_version"],
            "state_sets": request["state_sets"],
        });
        let mut answer = c.result("resolve_begin", &begin.to_string());
        let session = answer["session"].as_u64().expect("a session id");
        let mut rounds = 0;
        while let Some(need) = answer.get("need") {
            rounds += 1;
            let ids = need["events"].as_array().expect("ids");
            assert!(!ids.is_empty());
            let pdus: Vec<&Value> = ids
                .iter()
                .map(|id| &events[id.as_str().expect("id")])
                .collect();
            let supply = serde_json::json!({ "session": session, "events": pdus });
            answer = c.result("resolve_supply", &supply.to_string());
            assert_eq!(answer["session"].as_u64(), Some(session));
        }
        assert!(rounds >= 1);
        assert_eq!(answer["done"], c.result("resolve", &doc));
        assert_eq!(answer["done"], cli_json(&["resolve"], doc.as_bytes()));
        // Done closes the session.
        let again = serde_json::json!({ "session": session, "events": [] });
        assert_eq!(
            c.error_code("resolve_supply", &again.to_string()),
            "unknown_session"
        );
    }
    // Shipped whole, the session is done at once.
    let doc = &resolve_requests()[2];
    let request: Value = serde_json::from_str(doc).expect("request json");
    let whole = c.result("resolve_begin", doc);
    assert!(whole.get("need").is_none());
    assert_eq!(whole["done"], c.result("resolve", doc));
    // Bad params, then a withheld event: clear errors, and the connection goes on.
    assert_eq!(c.error_code("resolve_begin", "{}"), "invalid_params");
    assert_eq!(
        c.error_code("resolve_begin", r#"{"room_version":"99","state_sets":[]}"#),
        "invalid_params"
    );
    let begin = serde_json::json!({
        "room_version": request["room_version"],
        "state_sets": request["state_sets"],
    });
    let answer = c.result("resolve_begin", &begin.to_string());
    let supply = serde_json::json!({ "session": answer["session"], "events": [] });
    let refused = c.call("resolve_supply", &supply.to_string());
    assert_eq!(refused["error"]["code"], "invalid_params", "{refused}");
    assert!(
        refused["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("is not in `events`") || m.contains("names event")),
        "{refused}"
    );
    assert_eq!(c.result("ping", "{}"), "pong");
    server.stop();
}

/// Host-driven resolution over the socket on the differential rooms of every room version (forks,
/// power changes, rejected events flagged): each session, shipping nothing or half the events up
/// front, ends in exactly what `resolve` answers for the whole document.
#[test]
fn host_driven_resolution_over_the_socket_on_the_differential_rooms() {
    use roomgraph::canonical_json::{JsonValue, to_canonical_string};
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), &[]);
    let mut c = server.connect();
    let mut sessions = 0;
    for version in RoomVersion::all() {
        for seed in 0..2 {
            let room = generate_room(&RoomConfig::small(version, seed));
            let pdus: HashMap<&str, String> = room
                .events
                .iter()
                .map(|p| {
                    let json = to_canonical_string(&JsonValue::Object(p.json.clone()));
                    (&*p.event_id, json)
                })
                .collect();
            let rejected: Vec<&str> = room
                .events
                .iter()
                .zip(&room.rejected)
                .filter(|(_, r)| **r)
                .map(|(p, _)| &*p.event_id)
                .collect();
            let ship = |ids: &[&str]| -> String {
                let events: Vec<&str> = ids.iter().map(|id| pdus[id].as_str()).collect();
                let flagged: Vec<&&str> = ids.iter().filter(|id| rejected.contains(id)).collect();
                format!(
                    r#""events":[{}],"rejected":{}"#,
                    events.join(","),
                    json!(flagged)
                )
            };
            let all: Vec<&str> = room.events.iter().map(|p| &*p.event_id).collect();
            let head = format!(
                r#""room_version":{},"state_sets":{}"#,
                json!(version.id),
                json!(room.fork_states)
            );
            let expected = c.result("resolve", &format!("{{{head},{}}}", ship(&all)));
            // Begins a session, answers every `need`; the answer and how many events were asked.
            let mut drive = |begin: &str| -> (Value, usize) {
                let mut answer = c.result("resolve_begin", begin);
                let session = answer["session"].as_u64().expect("a session id");
                let mut asked = 0;
                while let Some(need) = answer.get("need") {
                    let ids: Vec<&str> = need["events"]
                        .as_array()
                        .expect("ids")
                        .iter()
                        .map(|id| id.as_str().expect("id"))
                        .collect();
                    asked += ids.len();
                    let supply = format!(r#"{{"session":{session},{}}}"#, ship(&ids));
                    answer = c.result("resolve_supply", &supply);
                }
                (answer["done"].clone(), asked)
            };
            for up_front in [0, all.len() / 2] {
                let (done, _) = drive(&format!("{{{head},{}}}", ship(&all[..up_front])));
                assert_eq!(
                    done, expected,
                    "v{} seed {seed}, {up_front} up front",
                    version.id
                );
                sessions += 1;
            }
            if version.id == "1" {
                continue;
            }
            // A host with its own auth-chain index begins from the full conflicted set and the
            // unconflicted state, and is asked only for what the conflict reads.
            let (unconflicted, full) = room.conflicted_set();
            let mut base: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
            for (t, k, id) in unconflicted {
                base.entry(t).or_default().insert(k, id);
            }
            let begins = [
                json!({
                    "room_version": version.id,
                    "full_conflicted_set": full,
                    "base_state": base,
                }),
                json!({
                    "room_version": version.id,
                    "state_sets": room.fork_states,
                    "auth_difference": full,
                }),
            ];
            for begin in begins {
                let (done, asked) = drive(&begin.to_string());
                assert_eq!(
                    done, expected,
                    "v{} seed {seed}, begun with {begin}",
                    version.id
                );
                assert!(asked <= all.len(), "{asked} asked of {}", all.len());
                sessions += 1;
            }
        }
    }
    assert!(sessions >= 90, "{sessions}");
    server.stop();
}
