//! `pdu`: parse + canonicalise + event id per PDU, roomgraph beside ruma in the same run.
//!
//! Inputs: a realistic ~1.5 KB member event (canonical, and the same event pretty-printed), and a
//! ~60 KB power-levels event (1 500 users), room v11. roomgraph: `Pdu::parse` (JSON reader, format
//! checks, reference hash over the redacted form — copied from the input where it was canonical) plus
//! `Pdu::canonical_json` (the input itself when it is canonical, the input without whitespace when it
//! is canonical but pretty-printed, else a serialisation). ruma: `CanonicalJsonObject` parse (which
//! enforces canonical-JSON value rules), canonical serialisation and `ruma_signatures::reference_hash`.
//! A third member-event input has its top-level keys in reverse order: not canonical in any way the
//! reader can reuse, so it measures the serialising path. After the criterion group, each input is also
//! raced in alternating batches (`interleaved`), whose printed ratio holds up better on a loaded machine.

use std::time::Instant;

use criterion::{BenchmarkId, Criterion, Throughput, black_box, criterion_group, criterion_main};
use roomgraph::JsonValue;
use roomgraph::NumberPolicy;
use roomgraph::canonical_json::{parse_object, to_canonical_vec, write_object};
use roomgraph::hashes::reference_hash;
use roomgraph::pdu::Pdu;
use roomgraph::redaction::redact;
use roomgraph::room_version::RoomVersion;
use roomgraph_testkit::builder::EventBuilder;
use ruma::CanonicalJsonObject;
use ruma::room_version_rules::RoomVersionRules;

fn member_event(version: &'static RoomVersion) -> String {
    let bio = "Long-time Matrix user; ".repeat(30);
    EventBuilder::with_json_content(
        version,
        "m.room.member",
        "@alice.wonderland:matrix.example.org",
        &format!(
            r#"{{"membership":"join","displayname":"Alice in Wonderland 🐇","avatar_url":"mxc://matrix.example.org/AbCdEfGhIjKlMnOpQrStUvWx","io.element.bio":"{bio}","reason":"joining from the space directory"}}"#
        ),
    )
    .state_key("@alice.wonderland:matrix.example.org")
    .room_id("!OGEhHVWSdvArJzumhm:matrix.org")
    .depth(1_234_567)
    .origin_server_ts(1_732_000_000_000)
    .prev_events(&["$Rmx3gB5tWUJ2FYBD8sCWRWcgAAHtpv1HwuY7IXr8sP4", "$9mE0Xh4Pl3TgGufJ9LE-GJ3OkOjHBvzEtGaE7IoPQQI"])
    .auth_events(&[
        "$Co8oumrR4Y1vhrgdCj1kxgGnIYCSNkW66HZwSp14Tvk",
        "$Zp2HRmVYPD2Obt2BA1gIYQBpVRKNDmKh41MHTOQsEH0",
        "$dkFJFYYNP2ie2MCm3PbfoGLsl5F95X42JjJDITfHL2M",
        "$x0EFLTX5vQeK2cRw31dRbT4vs8H6gxbgi0ceHcWwJxs",
    ])
    .build_json_line()
}

fn power_levels_event(version: &'static RoomVersion, users: usize) -> String {
    let users: Vec<String> = (0..users)
        .map(|i| format!(r#""@user{i:05}:server{}.example.org":{}"#, i % 97, i % 100))
        .collect();
    EventBuilder::with_json_content(
        version,
        "m.room.power_levels",
        "@admin:matrix.example.org",
        &format!(
            r#"{{"users":{{{}}},"users_default":0,"events":{{"m.room.name":50,"m.room.power_levels":100,"m.room.history_visibility":100,"m.room.canonical_alias":50,"m.room.avatar":50,"m.room.tombstone":100,"m.room.server_acl":100,"m.room.encryption":100}},"events_default":0,"state_default":50,"ban":50,"kick":50,"redact":50,"invite":0,"notifications":{{"room":50}}}}"#,
            users.join(",")
        ),
    )
    .state_key("")
    .room_id("!OGEhHVWSdvArJzumhm:matrix.org")
    .depth(99_999)
    .origin_server_ts(1_732_000_000_000)
    .prev_events(&["$Rmx3gB5tWUJ2FYBD8sCWRWcgAAHtpv1HwuY7IXr8sP4"])
    .auth_events(&["$Co8oumrR4Y1vhrgdCj1kxgGnIYCSNkW66HZwSp14Tvk", "$Zp2HRmVYPD2Obt2BA1gIYQBpVRKNDmKh41MHTOQsEH0"])
    .build_json_line()
}

fn roomgraph_path(input: &[u8], version: &'static RoomVersion) -> usize {
    let pdu = Pdu::parse(input, version).expect("valid pdu");
    // The input's own bytes when it is canonical already, otherwise a fresh serialisation.
    let canonical = pdu.canonical_json();
    pdu.event_id.len() + canonical.len()
}

fn ruma_path(input: &[u8], rules: &RoomVersionRules) -> usize {
    let obj: CanonicalJsonObject = serde_json::from_slice(input).expect("valid json");
    // A `CanonicalJsonObject` is a sorted map, so plain serde_json serialisation is its canonical form.
    let canonical = serde_json::to_vec(&obj).expect("serialises");
    let id = ruma::signatures::reference_hash(&obj, rules).expect("hash");
    id.len() + canonical.len()
}

/// Alternates short batches of the roomgraph and the ruma path on one input and prints the fastest batch
/// of each. On a shared machine load comes in windows of seconds, so two criterion benchmarks run one
/// after the other can see different load; here both sides see the same windows, which makes the
/// ratio steadier. (Printed, not a criterion benchmark: criterion times one function at a time.)
fn interleaved(name: &str, input: &[u8], version: &'static RoomVersion, rules: &RoomVersionRules) {
    let time_batch = |iters: u32, path: &dyn Fn() -> usize| {
        let start = Instant::now();
        for _ in 0..iters {
            black_box(path());
        }
        start.elapsed().as_secs_f64() / f64::from(iters)
    };
    let ours = || roomgraph_path(black_box(input), version);
    let theirs = || ruma_path(black_box(input), rules);
    // Batches of about 4 ms of the slower side.
    let once = time_batch(3, &theirs).max(time_batch(3, &ours));
    let iters = ((4e-3 / once) as u32).max(1);
    let (mut best_ours, mut best_theirs) = (f64::MAX, f64::MAX);
    for _ in 0..60 {
        best_ours = best_ours.min(time_batch(iters, &ours));
        best_theirs = best_theirs.min(time_batch(iters, &theirs));
    }
    println!(
        "interleaved {name}: roomgraph {:.3} µs, ruma {:.3} µs, ratio {:.2}",
        best_ours * 1e6,
        best_theirs * 1e6,
        best_theirs / best_ours
    );
}

fn bench(c: &mut Criterion) {
    let version = RoomVersion::from_id("11").expect("v11");
    let rules = RoomVersionRules::V11;
    let member = member_event(version);
    // The same event pretty-printed (serde_json keeps the sorted key order): canonical but for
    // whitespace.
    let member_pretty = {
        let value: serde_json::Value = serde_json::from_str(&member).expect("json");
        serde_json::to_string_pretty(&value).expect("serialises")
    };
    // The same event, compact, with its top-level keys in reverse order.
    let member_unsorted = {
        let obj = parse_object(member.as_bytes(), NumberPolicy::Strict).expect("valid");
        let mut entries: Vec<String> = obj
            .iter()
            .map(|(k, v)| {
                let key = to_canonical_vec(&JsonValue::String(k.into()));
                let value = to_canonical_vec(v);
                format!(
                    "{}:{}",
                    String::from_utf8_lossy(&key),
                    String::from_utf8_lossy(&value)
                )
            })
            .collect();
        entries.reverse();
        format!("{{{}}}", entries.join(","))
    };
    let inputs = [
        ("member_1.5k", member),
        ("member_1.5k_noncanonical", member_pretty),
        ("member_1.5k_unsorted", member_unsorted),
        ("power_levels_60k", power_levels_event(version, 1_500)),
    ];
    let mut group = c.benchmark_group("pdu");
    for (name, input) in &inputs {
        assert!(input.len() <= 65_536, "{name} is {} bytes", input.len());
        group.throughput(Throughput::Elements(1));
        group.bench_with_input(
            BenchmarkId::new("roomgraph", format!("{name}/{}B", input.len())),
            input,
            |b, input| b.iter(|| roomgraph_path(black_box(input.as_bytes()), version)),
        );
        group.bench_with_input(
            BenchmarkId::new("ruma", format!("{name}/{}B", input.len())),
            input,
            |b, input| b.iter(|| ruma_path(black_box(input.as_bytes()), &rules)),
        );
    }
    group.finish();
    for (name, input) in &inputs {
        interleaved(name, input.as_bytes(), version, &rules);
    }

    // Stages of the roomgraph path on the member event, to see where the time goes.
    // - `parse`: the JSON reader alone (tree, number policy), no PDU checks, no hash.
    // - `pdu_parse`: `Pdu::parse` (reader, format checks, reference hash over entries copied from the
    //   canonical input, event id, freeing the PDU); the whole path minus `canonical_json`.
    // - `sha256_redacted`: SHA-256 of the redacted form alone, the floor of the reference hash.
    // - `reference_hash_tree` / `canonical_write`: serialising from the tree, which is what input
    //   that is not canonical (keys out of order, optional escapes) costs.
    let input = inputs[0].1.as_bytes();
    let obj = parse_object(input, NumberPolicy::Strict).expect("valid");
    let redacted_for_hash = {
        let mut redacted = redact(&obj, version.redaction);
        redacted.remove("signatures");
        to_canonical_vec(&JsonValue::Object(redacted))
    };
    let mut stages = c.benchmark_group("pdu_stages");
    stages.bench_function("parse", |b| {
        b.iter(|| parse_object(black_box(input), NumberPolicy::Strict).map(|o| o.len()))
    });
    stages.bench_function("pdu_parse", |b| {
        b.iter(|| Pdu::parse(black_box(input), version).map(|p| p.event_id.len()))
    });
    stages.bench_function("sha256_redacted", |b| {
        b.iter(|| <sha2::Sha256 as sha2::Digest>::digest(black_box(&redacted_for_hash)))
    });
    stages.bench_function("reference_hash_tree", |b| {
        b.iter(|| reference_hash(black_box(&obj), version))
    });
    let mut buf = Vec::with_capacity(4096);
    stages.bench_function("canonical_write", |b| {
        b.iter(|| {
            buf.clear();
            write_object(black_box(&obj), &mut buf);
            buf.len()
        })
    });
    stages.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
