"""Synapse's state resolver against roomgraph's drop-in (``roomgraph.synapse``), on the same inputs.

    cargo build --release -p roomgraph-python
    cargo run --release -p roomgraph-python --example dump_rooms -- bench ROOMS 100 1000 3000
    PYTHONPATH=PKG python bench_synapse.py SYNAPSE_SRC ROOMS [REPEATS]

PKG is a directory holding the ``roomgraph`` package (ffi/python/native/python/roomgraph) with the
release ``libroomgraph_python.so`` copied in as ``roomgraph/_native.abi3.so``; SYNAPSE_SRC is
Synapse 1.163.2's unpacked source distribution (its ``tests`` package provides the in-memory store
Synapse's own tests use); the Python running this has matrix-synapse 1.163.2 installed. See
docs/synapse-dropin.md.

Each room's fork states are resolved together by both, from a fresh in-memory store and
``event_map=None`` each time, without a conflict cache; the answers must be equal. Prints a Markdown
table of the median wall and CPU (process) time per resolution: the drop-in cold (its caches of PDU
JSON and parsed events emptied first: every event serialised, parsed and its id hashed) and warm (the
room resolved before, as a homeserver resolves a room again and again). Both sides fetch events from
the same dict and get the auth chain difference from a table made before timing (`IndexedStore`), so
database time is not in the figures. The last columns time each resolver's own half alone:
Synapse's `_resolve_conflicted_set` (power sort, iterative auth checks, mainline) against the drop-in's
engine session that replaces it (begun with the full conflicted set, driven with the events it asks
for, PDU JSON handed over); the rest of a call (Synapse's `_seperate`-equivalent, its auth chain
difference helper, fetching) is common ground.
"""

import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.append(sys.argv.pop(1))

import synapse.event_auth  # noqa: E402,F401  (before synapse.state: Synapse's import cycle)
from synapse.api.room_versions import KNOWN_ROOM_VERSIONS  # noqa: E402
from synapse.events import make_event_from_dict  # noqa: E402
from tests.state.test_v2 import TestStateResolutionStore  # noqa: E402
from twisted.internet import defer  # noqa: E402
from twisted.python.failure import Failure  # noqa: E402

import roomgraph._native as native  # noqa: E402
import roomgraph.synapse as dropin  # noqa: E402


class IndexedStore(TestStateResolutionStore):  # type: ignore[misc]
    """Synapse's test store with the auth chain difference answered from a table made before the
    clock starts, as a database answers it from its chain cover index; the test store's own answer
    walks both auth chains in Python, which in a 20 000-event room costs more than the resolution
    and is not what production Synapse pays. Events come from the same dict for both resolvers."""

    def __init__(self, events: dict[str, Any], differences: dict[Any, Any]) -> None:
        super().__init__(events)
        self._differences = differences

    async def get_auth_chain_difference(self, room_id: str, state_sets: Any, *rest: Any) -> Any:
        key = (tuple(frozenset(s) for s in state_sets),
               tuple(frozenset(r) if r else None for r in rest))
        if key not in self._differences:
            self._differences[key] = await super().get_auth_chain_difference(
                room_id, state_sets, *rest)
        return self._differences[key]


class Clock:
    async def sleep(self, duration: Any) -> None:
        return None


def run(coroutine: Any) -> Any:
    results: list[Any] = []
    defer.ensureDeferred(coroutine).addBoth(results.append)
    if isinstance(results[0], Failure):
        results[0].raiseException()
    return results[0]


def cold() -> None:
    dropin._PDU_CACHE.clear()
    native.set_event_cache_capacity(50_000)


def timed(resolve: Any, repeats: int, before: Any = None) -> tuple[float, float, Any]:
    walls, cpus = [], []
    answer = None
    for _ in range(repeats):
        if before is not None:
            before()
        wall, cpu = time.perf_counter(), time.process_time()
        answer = resolve()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return statistics.median(walls) * 1e3, statistics.median(cpus) * 1e3, answer


# CPU seconds inside the half each resolver does differently: Synapse's `_resolve_conflicted_set`
# and the drop-in's engine session (begun, then driven with the events it asks for).
HALF = {"synapse": 0.0, "roomgraph": 0.0}


def time_halves() -> None:
    from synapse.state import v2 as synapse_state_v2

    resolve_conflicted = synapse_state_v2._resolve_conflicted_set

    async def timed_resolve_conflicted(*args: Any) -> Any:
        start = time.process_time()
        try:
            return await resolve_conflicted(*args)
        finally:
            HALF["synapse"] += time.process_time() - start

    synapse_state_v2._resolve_conflicted_set = timed_resolve_conflicted
    drive, session = dropin._drive, dropin.ResolveSession

    class TimedSession:
        @staticmethod
        def conflicted(*args: Any) -> Any:
            start = time.process_time()
            try:
                return session.conflicted(*args)
            finally:
                HALF["roomgraph"] += time.process_time() - start

    async def timed_drive(*args: Any) -> Any:
        start = time.process_time()
        try:
            return await drive(*args)
        finally:
            HALF["roomgraph"] += time.process_time() - start

    dropin.ResolveSession = TimedSession
    dropin._drive = timed_drive


def timed_half(which: str, resolve: Any, repeats: int, before: Any = None) -> float:
    """Median CPU ms per resolution inside `which`'s own half."""
    halves = []
    for _ in range(repeats):
        if before is not None:
            before()
        HALF[which] = 0.0
        resolve()
        halves.append(HALF[which])
    return statistics.median(halves) * 1e3


def main() -> int:
    rooms = sorted(Path(sys.argv[1]).glob("*.json"), key=lambda p: (len(p.name), p.name))
    repeats = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    synapse_v2 = dropin._synapse("v2")
    print("| room | room version | events | state sets | conflicted keys | Synapse wall ms "
          "| Synapse CPU ms | roomgraph cold wall ms | cold CPU ms | roomgraph warm wall ms "
          "| warm CPU ms | speed-up cold / warm (CPU) | own half: Synapse / roomgraph warm CPU ms "
          "| own half speed-up |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    time_halves()
    for path in rooms:
        doc = json.loads(path.read_text())
        version = KNOWN_ROOM_VERSIONS[doc["room_version"]]
        rejected = set(doc["rejected"])
        events = {}
        for pdu in doc["events"]:
            event = make_event_from_dict(
                pdu, version, rejected_reason=None
            )
            if event.event_id in rejected:
                event = make_event_from_dict(pdu, version, rejected_reason="auth_error")
            events[event.event_id] = event
        sets = [{(t, k): i for t, k, i in fork} for fork in doc["forks"]]
        conflicted = sum(len({s.get(k) for s in sets}) > 1 for k in set().union(*sets))
        room_id = doc["room_id"]

        differences: dict[Any, Any] = {}

        def theirs() -> Any:
            return run(synapse_v2(Clock(), room_id, version, sets, None,
                                  IndexedStore(events, differences)))

        def ours() -> Any:
            return run(dropin.resolve_events_with_store(
                Clock(), room_id, version, sets, None, IndexedStore(events, differences)))

        theirs()  # fills `differences`, untimed
        s_wall, s_cpu, s_answer = timed(theirs, repeats)
        c_wall, c_cpu, c_answer = timed(ours, repeats, before=cold)
        w_wall, w_cpu, w_answer = timed(ours, repeats)
        s_half = timed_half("synapse", theirs, repeats)
        w_half = timed_half("roomgraph", ours, repeats)
        if not dict(s_answer) == dict(c_answer) == dict(w_answer):
            print(f"{path.name}: the answers differ", file=sys.stderr)
            return 1
        print(f"| {doc['label']} | {version.identifier} | {len(events)} | {len(sets)} "
              f"| {conflicted} | {s_wall:.1f} | {s_cpu:.1f} | {c_wall:.1f} | {c_cpu:.1f} "
              f"| {w_wall:.1f} | {w_cpu:.1f} | {s_cpu / c_cpu:.1f}x / {s_cpu / w_cpu:.1f}x "
              f"| {s_half:.1f} / {w_half:.2f} | {s_half / w_half:.0f}x |")
    if dropin.fallbacks:
        print(f"fallbacks: {dict(dropin.fallback_reasons)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
