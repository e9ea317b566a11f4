#!/usr/bin/env python3
"""Writes datasets/sample-room-v11.ndjson: a small, valid room version 11 room in federation format.

Hashes and event ids are computed with the spec's algorithms (canonical JSON, SHA-256, v11 redaction);
signatures are placeholders, as roomgraph does not verify signatures. Run from the repository root.
"""
import base64, hashlib, json

ORIGIN = "example.org"
ROOM = "!sample:example.org"
TOP_KEEP = {"event_id", "type", "room_id", "sender", "state_key", "content", "hashes", "signatures",
            "depth", "prev_events", "auth_events", "origin_server_ts"}
CONTENT_KEEP = {"m.room.member": {"membership", "join_authorised_via_users_server"},
                "m.room.join_rules": {"join_rule", "allow"},
                "m.room.power_levels": {"ban", "events", "events_default", "kick", "redact", "state_default",
                                        "users", "users_default", "invite"},
                "m.room.history_visibility": {"history_visibility"}}

def canonical(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()

def b64(data, urlsafe=False):
    enc = base64.urlsafe_b64encode if urlsafe else base64.b64encode
    return enc(data).decode().rstrip("=")

def redact(ev):
    out = {k: v for k, v in ev.items() if k in TOP_KEEP}
    if ev["type"] == "m.room.create":
        return out
    keep = CONTENT_KEEP.get(ev["type"], set())
    out["content"] = {k: v for k, v in ev["content"].items() if k in keep}
    return out

events, state, ts = [], {}, [1_700_000_000_000]
def emit(sender, etype, content, state_key=None, auth=()):
    ts[0] += 1000
    prev = [events[-1][1]] if events else []
    ev = {"type": etype, "sender": sender, "content": content, "room_id": ROOM, "depth": len(events) + 1,
          "origin_server_ts": ts[0], "prev_events": prev,
          "auth_events": [state[k] for k in auth if k in state]}
    if state_key is not None:
        ev["state_key"] = state_key
    ev["hashes"] = {"sha256": b64(hashlib.sha256(canonical(ev)).digest())}
    ev["signatures"] = {ORIGIN: {"ed25519:1": b64(hashlib.sha256(b"sig" + canonical(ev)).digest() * 2)}}
    red = redact(ev); red.pop("signatures", None)
    event_id = "$" + b64(hashlib.sha256(canonical(red)).digest(), urlsafe=True)
    events.append((ev, event_id))
    if state_key is not None:
        state[(etype, state_key)] = event_id
    return event_id

A, B, C = "@alice:example.org", "@bob:example.org", "@carol:example.org"
CR, PL, JR = ("m.room.create", ""), ("m.room.power_levels", ""), ("m.room.join_rules", "")
M = lambda u: ("m.room.member", u)
emit(A, "m.room.create", {"room_version": "11"}, "")
emit(A, "m.room.member", {"membership": "join", "displayname": "Alice"}, A, [CR])
emit(A, "m.room.power_levels", {"users": {A: 100}, "users_default": 0, "events_default": 0, "state_default": 50,
     "ban": 50, "kick": 50, "redact": 50, "invite": 0, "events": {"m.room.name": 50, "m.room.power_levels": 100}},
     "", [CR, M(A)])
emit(A, "m.room.join_rules", {"join_rule": "public"}, "", [CR, PL, M(A)])
emit(A, "m.room.history_visibility", {"history_visibility": "shared"}, "", [CR, PL, M(A)])
emit(A, "m.room.name", {"name": "Sample room"}, "", [CR, PL, M(A)])
emit(B, "m.room.member", {"membership": "join", "displayname": "Bob"}, B, [CR, PL, JR])
emit(B, "m.room.message", {"msgtype": "m.text", "body": "Hello, world! — ünïcødé ✓"}, None, [CR, PL, M(B)])
emit(A, "m.room.topic", {"topic": "A small room for trying roomgraph"}, "", [CR, PL, M(A)])
emit(C, "m.room.member", {"membership": "join"}, C, [CR, PL, JR])
emit(A, "m.room.power_levels", {"users": {A: 100, B: 50}, "users_default": 0, "events_default": 0,
     "state_default": 50, "ban": 50, "kick": 50, "redact": 50, "invite": 0,
     "events": {"m.room.name": 50, "m.room.power_levels": 100}}, "", [CR, PL, M(A)])
emit(B, "m.room.member", {"membership": "leave"}, C, [CR, PL, M(B), M(C)])
emit(A, "m.room.message", {"msgtype": "m.text", "body": "Bye, Carol."}, None, [CR, PL, M(A)])

with open("datasets/sample-room-v11.ndjson", "w", encoding="utf-8") as f:
    for ev, _ in events:
        f.write(json.dumps(ev, separators=(",", ":"), ensure_ascii=False) + "\n")
with open("datasets/sample-room-v11.ids", "w") as f:
    for _, event_id in events:
        f.write(event_id + "\n")
