"""The roomgraph C API from Python with ctypes (standard library only): an event id, a resolution and
a store. Run it with the path of ``libroomgraph.so``::

    cargo build -p roomgraph-c
    python3 ffi/python/ctypes_example.py target/debug/libroomgraph.so

The functions and their contracts are in ``ffi/include/roomgraph.h``.
"""

from __future__ import annotations

import ctypes
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OK, BUFFER_TOO_SMALL = 0, 4


class Buffer(ctypes.Structure):
    """``roomgraph_buffer``: bytes roomgraph allocated; free them with ``roomgraph_buffer_free``."""

    _fields_ = [("ptr", ctypes.POINTER(ctypes.c_uint8)), ("len", ctypes.c_size_t)]


class RoomgraphError(Exception):
    pass


def load(path: str) -> ctypes.CDLL:
    lib = ctypes.CDLL(path)
    u8p, size = ctypes.c_char_p, ctypes.c_size_t
    lib.roomgraph_event_id.argtypes = [u8p, size, u8p, size, ctypes.c_char_p, size, ctypes.POINTER(size)]
    lib.roomgraph_resolve_json.argtypes = [u8p, size, ctypes.POINTER(Buffer)]
    lib.roomgraph_buffer_free.argtypes = [ctypes.POINTER(Buffer)]
    lib.roomgraph_buffer_free.restype = None
    lib.roomgraph_last_error.argtypes = [ctypes.c_char_p, size, ctypes.POINTER(size)]
    lib.roomgraph_engine_open.argtypes = [u8p, size, ctypes.POINTER(ctypes.c_void_p)]
    lib.roomgraph_engine_ingest_json.argtypes = [ctypes.c_void_p, u8p, size, ctypes.POINTER(Buffer)]
    lib.roomgraph_engine_state_json.argtypes = [ctypes.c_void_p, u8p, size, ctypes.POINTER(Buffer)]
    lib.roomgraph_engine_close.argtypes = [ctypes.c_void_p]
    lib.roomgraph_engine_close.restype = None
    for name in ("roomgraph_event_id", "roomgraph_resolve_json", "roomgraph_last_error",
                 "roomgraph_engine_open", "roomgraph_engine_ingest_json", "roomgraph_engine_state_json"):
        getattr(lib, name).restype = ctypes.c_uint32
    return lib


def last_error(lib: ctypes.CDLL) -> str:
    buf = ctypes.create_string_buffer(4096)
    n = ctypes.c_size_t()
    lib.roomgraph_last_error(buf, len(buf), ctypes.byref(n))
    return buf.raw[: n.value].decode()


def check(lib: ctypes.CDLL, code: int) -> None:
    if code != OK:
        raise RoomgraphError(f"roomgraph error {code}: {last_error(lib)}")


def take(lib: ctypes.CDLL, buf: Buffer) -> str:
    """The text of a roomgraph buffer, which is then freed."""
    try:
        return ctypes.string_at(buf.ptr, buf.len).decode()
    finally:
        lib.roomgraph_buffer_free(ctypes.byref(buf))


def event_id(lib: ctypes.CDLL, room_version: str, pdu: bytes) -> str:
    out = ctypes.create_string_buffer(256)
    n = ctypes.c_size_t()
    v = room_version.encode()
    check(lib, lib.roomgraph_event_id(v, len(v), pdu, len(pdu), out, len(out), ctypes.byref(n)))
    return out.raw[: n.value].decode()


def resolve(lib: ctypes.CDLL, document: dict) -> dict:
    req = json.dumps(document).encode()
    buf = Buffer()
    check(lib, lib.roomgraph_resolve_json(req, len(req), ctypes.byref(buf)))
    return json.loads(take(lib, buf))


def main(path: str) -> None:
    lib = load(path)
    lines = [l for l in (ROOT / "datasets/sample-room-v11.ndjson").read_bytes().splitlines() if l.strip()]
    ids = [event_id(lib, "11", line) for line in lines]
    print("event ids:", ids[0], "...", ids[-1])

    pdus = [json.loads(line) for line in lines]
    latest = {}
    for eid, pdu in zip(ids, pdus):
        if "state_key" in pdu:
            latest[(pdu["type"], pdu["state_key"])] = eid
    state = resolve(lib, {"room_version": "11", "events": pdus,
                          "state_sets": [ids[:4], sorted(latest.values())]})
    print("resolved:", sorted(state))

    try:
        resolve(lib, {"room_version": "11"})
    except RoomgraphError as e:
        print("refused:", e)

    with tempfile.TemporaryDirectory() as tmp:
        engine = ctypes.c_void_p()
        p = str(Path(tmp) / "store").encode()
        check(lib, lib.roomgraph_engine_open(p, len(p), ctypes.byref(engine)))
        try:
            doc = json.dumps({"pdus": pdus}).encode()
            buf = Buffer()
            check(lib, lib.roomgraph_engine_ingest_json(engine, doc, len(doc), ctypes.byref(buf)))
            print("ingest summary:", json.loads(take(lib, buf))["summary"])
            room = pdus[0]["room_id"].encode()
            check(lib, lib.roomgraph_engine_state_json(engine, room, len(room), ctypes.byref(buf)))
            current = json.loads(take(lib, buf))
            assert current == state, "the store's current state is the resolution of the sample"
            print("current state matches the resolution")
        finally:
            lib.roomgraph_engine_close(engine)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(f"usage: {sys.argv[0]} PATH/TO/libroomgraph.so")
    main(sys.argv[1])
