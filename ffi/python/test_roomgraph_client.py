"""Tests of roomgraph_client against a real ``roomgraph serve`` process.

Run by ``engine/cli/tests/cli/serve.rs`` (``cargo test``), which sets ``ROOMGRAPH_BIN`` to the binary it
built; by hand: ``ROOMGRAPH_BIN=target/debug/roomgraph python3 -m unittest ffi/python/test_roomgraph_client.py``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path
from typing import Any, List, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))

from roomgraph_client import Client, ProtocolError, RoomgraphError  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "datasets" / "sample-room-v11.ndjson"


def binary() -> str:
    path = os.environ.get("ROOMGRAPH_BIN")
    if not path:
        raise unittest.SkipTest("ROOMGRAPH_BIN is not set")
    return path


def sample() -> List[Any]:
    return [json.loads(line) for line in SAMPLE.read_text().splitlines() if line.strip()]


class Server:
    """A ``roomgraph serve`` in a temporary directory."""

    def __init__(self, *extra: str) -> None:
        self.dir = tempfile.TemporaryDirectory()
        self.socket = os.path.join(self.dir.name, "rg.sock")
        args = [binary(), "serve", "--socket", self.socket, *extra]
        self.proc = subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
        )
        assert self.proc.stdout is not None
        self.ready = json.loads(self.proc.stdout.readline())

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=30)
        self.dir.cleanup()
        return code


class ClientTest(unittest.TestCase):
    server: Optional[Server] = None

    @classmethod
    def setUpClass(cls) -> None:
        cls.db = tempfile.TemporaryDirectory()
        cls.token = "python-token"
        token_file = os.path.join(cls.db.name, "token")
        Path(token_file).write_text(cls.token)
        cls.server = Server(
            "--db", os.path.join(cls.db.name, "db"),
            "--tcp", "127.0.0.1:0",
            "--token-file", token_file,
        )

    @classmethod
    def tearDownClass(cls) -> None:
        assert cls.server is not None
        assert cls.server.stop() == 0
        cls.db.cleanup()

    def client(self) -> Client:
        assert self.server is not None
        return Client.unix(self.server.socket, timeout=60)

    def test_hello_and_ping(self) -> None:
        with self.client() as rg:
            hello = rg.hello()
            self.assertTrue(hello["store"])
            self.assertIn("ingest", hello["methods"])
            self.assertEqual(rg.ping(), "pong")

    def test_pdu_methods_answer_as_the_cli(self) -> None:
        pdu = sample()[0]
        line = json.dumps(pdu).encode()
        cli = subprocess.run(
            [binary(), "event-id", "--room-version", "11"],
            input=line, capture_output=True, check=True,
        )
        with self.client() as rg:
            self.assertEqual(rg.event_id("11", pdu), cli.stdout.decode().strip())
            redacted = subprocess.run(
                [binary(), "redact", "--room-version", "11"],
                input=line, capture_output=True, check=True,
            )
            self.assertEqual(rg.redact("11", pdu), json.loads(redacted.stdout))
            self.assertIsInstance(rg.content_hash("11", pdu), str)

    def test_ingest_then_queries(self) -> None:
        pdus = sample()
        with self.client() as rg:
            answer = rg.ingest(pdus)
            self.assertGreater(answer["summary"]["accepted"], 0)
            room = pdus[0]["room_id"]
            state = rg.state(room_id=room)
            self.assertIn("m.room.create", state)
            extremities = rg.extremities(room)
            self.assertTrue(extremities)
            event = rg.event(extremities[0])
            self.assertEqual(event["event_id"], extremities[0])
            self.assertEqual(rg.state(event_id=extremities[0]), state)
            self.assertGreater(rg.stats()["events"], 0)

    def test_host_driven_resolution_matches_resolve(self) -> None:
        pdus = sample()
        with self.client() as rg:
            ids = [rg.event_id("11", p) for p in pdus]
            by_id = dict(zip(ids, pdus))
            # Two views of the sample room: its first four (state) events, and the last event of
            # each state key.
            latest = {}
            for eid, p in zip(ids, pdus):
                if "state_key" in p:
                    latest[(p["type"], p["state_key"])] = eid
            sets = [ids[:4], sorted(latest.values())]
            asked = []

            def fetch(need):
                asked.append(list(need))
                return [by_id[i] for i in need], []

            hosted = rg.resolve_hosted("11", sets, fetch)
            whole = rg.call("resolve", {"room_version": "11", "events": pdus, "state_sets": sets})
            self.assertEqual(hosted, whole)
            self.assertTrue(asked)
            flat = [i for batch in asked for i in batch]
            self.assertEqual(len(flat), len(set(flat)), "no id is asked twice")

    def test_pipeline_and_errors(self) -> None:
        pdus = sample()
        with self.client() as rg:
            results = rg.pipeline(
                [("event_id", {"room_version": "11", "pdu": p}) for p in pdus]
                + [("nope", None), ("ping", None)]
            )
            self.assertEqual(len(results), len(pdus) + 2)
            self.assertTrue(all(isinstance(r, dict) for r in results[: len(pdus)]))
            self.assertIsInstance(results[-2], RoomgraphError)
            self.assertEqual(results[-2].code, "unknown_method")
            self.assertEqual(results[-1], "pong")
            with self.assertRaises(RoomgraphError) as err:
                rg.call("resolve", {})
            self.assertEqual(err.exception.code, "invalid_params")
            with self.assertRaises(RoomgraphError) as err:
                rg.event("$missing")
            self.assertEqual(err.exception.code, "not_found")

    def test_tcp_needs_the_token(self) -> None:
        assert self.server is not None
        host, port = self.server.ready["tcp"].rsplit(":", 1)
        with Client.tcp(host, int(port), self.token, timeout=60) as rg:
            self.assertEqual(rg.ping(), "pong")
        with self.assertRaises(RoomgraphError) as err:
            Client.tcp(host, int(port), "wrong", timeout=60)
        self.assertEqual(err.exception.code, "unauthorized")


if __name__ == "__main__":
    unittest.main()
