#!/usr/bin/env python3
"""Checks the committed recorded traces and scripts/synapse-export (issue #17).

    python3 scripts/tests/test_synapse_export.py

Standard library only. For every trace under datasets/traces/: the manifest's SHA-256 digests (and
BLAKE3 ones when the `blake3` package is importable), and the format's invariants (datasets/README.md,
"Trace format"): every PDU line is canonical JSON of its room; meta lines match PDU lines one to one;
expected.json has every field, and the ids it names are in that server's PDU file. Then it exports
the small Synapse database in fixtures/ again and compares with the committed export beside it
(regenerate both with `scripts/record-trace --fixture`, see datasets/README.md).
"""

import hashlib
import json
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TRACES = ROOT / "datasets" / "traces"
FIXTURES = Path(__file__).resolve().parent / "fixtures"
EXPECTED_FIELDS = {"room_version", "room_id", "server_name", "current_state", "forward_extremities",
                   "rejected", "soft_failed", "outliers", "state_before_samples"}
META_FIELDS = {"event_id", "stream_ordering", "received_ts", "outlier", "rejected", "soft_failed",
               "missing_prev_events"}
OPTIONAL_META = {"out_of_band_membership", "censored", "deoutlier"}


def canonical(value) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def read(path: Path) -> bytes:
    data = path.read_bytes()
    if path.suffix == ".zst":
        import zstandard  # compressed traces need it; skipped by the caller otherwise
        data = zstandard.ZstdDecompressor().decompress(data)
    return data


def zstd_available() -> bool:
    try:
        import zstandard  # noqa: F401
        return True
    except ImportError:
        return False


def traces():
    return sorted(p.parent for p in TRACES.glob("*/manifest.json"))


def ids_in(state_map: dict):
    return [e for keys in state_map.values() for e in keys.values()]


class TraceTest(unittest.TestCase):
    def check_trace(self, trace: Path, check_digests=True):
        manifest = json.loads((trace / "manifest.json").read_text())
        self.assertEqual(manifest["format"], "roomgraph-trace")
        for key in ("source", "recorder_version", "created", "servers", "rooms", "files"):
            self.assertIn(key, manifest)
        compressed = manifest.get("compression") == "zstd"
        if compressed and not zstd_available():
            self.skipTest("zstd trace and no zstandard package")
        suffix = ".zst" if compressed else ""
        if check_digests:
            try:
                import blake3
            except ImportError:
                blake3 = None
            listed = set(manifest["files"])
            on_disk = {str(p.relative_to(trace)) for p in trace.rglob("*") if p.is_file()} - {"manifest.json"}
            self.assertEqual(listed, on_disk, "manifest lists exactly the trace's files")
            for rel, digests in manifest["files"].items():
                data = (trace / rel).read_bytes()
                self.assertEqual(hashlib.sha256(data).hexdigest(), digests["sha256"], rel)
                if blake3 is not None and "blake3" in digests:
                    self.assertEqual(blake3.blake3(data).hexdigest(), digests["blake3"], rel)
        servers = {s["name"]: s["file"] for s in manifest["servers"]}
        total = 0
        for room in manifest["rooms"]:
            room_id, version = room["room_id"], room["room_version"]
            for server, counts in room["servers"].items():
                base = trace / room["dir"] / servers[server]
                lines = read(Path(f"{base}.ndjson{suffix}")).decode().splitlines()
                metas = [json.loads(m) for m in read(Path(f"{base}.meta.ndjson{suffix}")).decode().splitlines()]
                expected = json.loads(read(Path(f"{base}.expected.json{suffix}")))
                self.assertEqual(len(lines), counts["events"])
                self.assertEqual(len(lines), len(metas))
                total += len(lines)
                ids, placed, placed_before, prevs = set(), set(), {}, {}
                first_outlier, deoutliered = set(), set()
                for n, (line, meta) in enumerate(zip(lines, metas)):
                    pdu = json.loads(line)
                    prevs[meta["event_id"]] = [p[0] if isinstance(p, list) else p for p in pdu["prev_events"]]
                    placed_before[meta["event_id"]] = set(placed)
                    if meta.get("deoutlier") or (not meta["outlier"] and meta["stream_ordering"] > 0
                                                 and not meta.get("out_of_band_membership")):
                        placed.add(meta["event_id"])
                    self.assertEqual(canonical(pdu), line, f"{base}.ndjson:{n + 1} is canonical JSON")
                    self.assertEqual(set(meta), META_FIELDS | (OPTIONAL_META & set(meta)))
                    for key in OPTIONAL_META & set(meta):
                        self.assertIs(meta[key], True, "optional meta keys are there only when true")
                    if version == "12" and pdu["type"] == "m.room.create":
                        self.assertNotIn("room_id", pdu)  # v12: the room id is the create event's
                        self.assertEqual("!" + meta["event_id"][1:], room_id)
                    else:
                        self.assertEqual(pdu["room_id"], room_id, f"{base}.ndjson:{n + 1}")
                    if version in ("1", "2"):
                        self.assertEqual(pdu["event_id"], meta["event_id"])
                    else:
                        self.assertNotIn("event_id", pdu)
                    if meta.get("deoutlier"):
                        # listed again where the server placed an outlier it had in the DAG
                        self.assertIn(meta["event_id"], first_outlier, "a deoutlier line follows an outlier line")
                        self.assertFalse(meta["outlier"])
                        self.assertGreater(meta["stream_ordering"], 0)
                        first_outlier.discard(meta["event_id"])
                        deoutliered.add(meta["event_id"])
                    else:
                        self.assertNotIn(meta["event_id"], ids, "an event's first line is its only other")
                        if meta["outlier"]:
                            first_outlier.add(meta["event_id"])
                    ids.add(meta["event_id"])
                self.assertEqual(set(expected), EXPECTED_FIELDS)
                self.assertEqual(expected["room_id"], room_id)
                self.assertEqual(expected["room_version"], version)
                self.assertEqual(expected["server_name"], server)
                for e in ids_in(expected["current_state"]):
                    self.assertIn(e, ids, "current state is in the PDUs")
                for e in expected["forward_extremities"] + expected["soft_failed"] + expected["outliers"]:
                    self.assertIn(e, ids)
                for r in expected["rejected"]:
                    self.assertIn(r["event_id"], ids)
                    self.assertIsInstance(r["reason"], str)
                by_id = {m["event_id"]: m for m in metas}
                self.assertEqual([r["event_id"] for r in expected["rejected"]],
                                 [m["event_id"] for m in metas if m["rejected"] is not None and not m.get("deoutlier")])
                firsts = [m for m in metas if not m.get("deoutlier")]
                self.assertEqual(expected["soft_failed"], [m["event_id"] for m in firsts if m["soft_failed"]])
                self.assertEqual(expected["outliers"], [m["event_id"] for m in firsts
                                                        if m["outlier"] and m["event_id"] not in deoutliered])
                self.assertEqual(len(deoutliered), counts.get("deoutliered", 0))
                for e, state in expected["state_before_samples"].items():
                    self.assertIn(e, by_id)
                    self.assertFalse(by_id[e]["outlier"])
                    for sid in ids_in(state):
                        self.assertIn(sid, ids, "sampled state is in the PDUs")
                        self.assertNotEqual(sid, e, "state before an event does not hold it")
                hints_file = Path(f"{base}.hints.ndjson{suffix}")
                hints = read(hints_file).decode().splitlines() if hints_file.exists() else []
                self.assertEqual(len(hints), counts.get("hints", 0))
                for line in hints:
                    hint = json.loads(line)
                    self.assertEqual(canonical(hint), line)
                    self.assertEqual(set(hint), {"event_id", "state_before"})
                    self.assertTrue(set(prevs[hint["event_id"]]) - placed_before[hint["event_id"]],
                                    "a hint is for an event with a prev event not placed before it")
                    self.assertFalse(by_id[hint["event_id"]]["outlier"])
                    for sid in hint["state_before"]:
                        self.assertIn(sid, ids, "hinted state is in the PDUs")
        self.assertEqual(total, manifest["events"])
        return manifest

    def test_committed_traces(self):
        found = traces()
        self.assertTrue(found, f"no trace under {TRACES}")
        for trace in found:
            with self.subTest(trace=trace.name):
                manifest = self.check_trace(trace)
                self.assertGreaterEqual(len(manifest["servers"]), 3)
                versions = {r["room_version"] for r in manifest["rooms"]}
                self.assertGreaterEqual(len(versions), 3, versions)

    def test_reexport_fixture(self):
        db = FIXTURES / "synapse-small.db"
        committed = FIXTURES / "synapse-small.trace"
        if not db.exists():
            self.skipTest("no fixture database")
        server = json.loads((committed / "manifest.json").read_text())["servers"][0]["name"]
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "trace"
            subprocess.run([sys.executable, str(ROOT / "scripts" / "synapse-export"), "--out", str(out),
                            "--sqlite", f"{db}={server}", "--source", "fixture"],
                           check=True, capture_output=True)
            fresh = self.check_trace(out)
            old = json.loads((committed / "manifest.json").read_text())
            self.check_trace(committed)
            for m in (fresh, old):
                m.pop("created")
                for d in m["files"].values():
                    d.pop("blake3", None)
                m.pop("digest_algorithms")
            self.assertEqual(fresh, old)
            for rel in fresh["files"]:
                self.assertEqual((out / rel).read_bytes(), (committed / rel).read_bytes(), rel)


if __name__ == "__main__":
    unittest.main(verbosity=2)
