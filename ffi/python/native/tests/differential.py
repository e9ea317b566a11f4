"""Synapse's resolver against roomgraph's drop-in, on identical inputs.

    python differential.py SYNAPSE_SRC ROOMS_DIR

ROOMS_DIR holds the generated rooms of tests/support/rooms.rs (forks, power-level and membership
changes, events that fail auth flagged rejected). Each room's events become Synapse events
(``make_event_from_dict``, rejected ones with a ``rejected_reason``) in an in-memory store (Synapse's
test store, completed with v2.1's conflicted subgraph); its fork states are resolved
all together and two by two, by Synapse 1.163.2's own ``resolve_events_with_store`` (v1 for room
version 1, v2 otherwise) and by ``roomgraph.synapse``'s, each from a fresh store and
``event_map=None``; for v2 the drop-in runs twice more with one conflict cache (a miss, then a
hit). Every answer must equal Synapse's, and no resolution may fall back to Synapse. Prints the
counts per room version; exits 1 on any difference.
"""

import itertools
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.append(sys.argv.pop(1))

import synapse.event_auth  # noqa: E402,F401  (before synapse.state: Synapse's import cycle)
from synapse.api.room_versions import KNOWN_ROOM_VERSIONS, StateResolutionVersions  # noqa: E402
from synapse.events import make_event_from_dict  # noqa: E402
from synapse.storage.databases.main.event_federation import StateDifference  # noqa: E402
from tests.state.test_v2 import TestStateResolutionStore as SynapseTestStore  # noqa: E402
from twisted.internet import defer  # noqa: E402
from twisted.python.failure import Failure  # noqa: E402

import roomgraph.synapse as dropin  # noqa: E402


class TestStateResolutionStore(SynapseTestStore):
    """Synapse's in-memory test store, with the conflicted subgraph of state resolution v2.1
    (MSC4297) that Synapse's database computes and the test store leaves empty: the events that are
    both ancestors and descendants (along auth events) of a conflicted event."""

    def get_auth_chain_difference(
        self,
        room_id: str,
        auth_sets: list[set[str]],
        conflicted_state: set[str] | None,
        additional_backwards_reachable_conflicted_events: set[str] | None,
    ) -> "defer.Deferred[StateDifference]":
        chains = [set(self._get_auth_chain(a)) for a in auth_sets]
        difference = set().union(*chains) - set.intersection(*chains)
        if conflicted_state is None:
            return defer.succeed(StateDifference(auth_difference=difference,
                                                 conflicted_subgraph=None))
        starts = set(conflicted_state) | set(additional_backwards_reachable_conflicted_events or ())
        ancestors = set(self._get_auth_chain(starts))
        reaches: dict[str, bool] = {}

        def reaches_conflicted(event_id: str) -> bool:
            # Iterative: auth chains can be long.
            stack = [event_id]
            while stack:
                top = stack[-1]
                if top in reaches:
                    stack.pop()
                    continue
                parents = self.event_map[top].auth_event_ids()
                pending = [p for p in parents if p not in reaches]
                if pending:
                    stack.extend(pending)
                    continue
                reaches[top] = top in conflicted_state or any(reaches[p] for p in parents)
                stack.pop()
            return reaches[event_id]

        subgraph = {e for e in ancestors if reaches_conflicted(e)}
        return defer.succeed(StateDifference(auth_difference=difference,
                                             conflicted_subgraph=subgraph))


class Clock:
    async def sleep(self, duration: Any) -> None:
        return None


def run(coroutine: Any) -> Any:
    """The result of a coroutine whose awaits all complete at once (the test store's)."""
    results: list[Any] = []
    defer.ensureDeferred(coroutine).addBoth(results.append)
    if not results:
        raise RuntimeError("the resolution did not complete synchronously")
    if isinstance(results[0], Failure):
        results[0].raiseException()
    return results[0]


def load(path: Path) -> tuple[dict, Any, dict, list[dict]]:
    doc = json.loads(path.read_text())
    version = KNOWN_ROOM_VERSIONS[doc["room_version"]]
    rejected = set(doc["rejected"])
    events = {}
    for pdu in doc["events"]:
        event = make_event_from_dict(pdu, version)
        if event.event_id in rejected:
            event = make_event_from_dict(pdu, version, rejected_reason="auth_error")
        events[event.event_id] = event
    forks = []
    for fork in doc["forks"]:
        state = {(t, k): i for t, k, i in fork}
        missing = [i for i in state.values() if i not in events]
        if missing:
            raise SystemExit(f"{path.name}: Synapse computes other event ids ({missing[:3]})")
        forks.append(state)
    return doc, version, events, forks


def main() -> int:
    rooms = sorted(Path(sys.argv[1]).glob("*.json"))
    synapse_v1, synapse_v2 = dropin._synapse("v1"), dropin._synapse("v2")
    from immutabledict import immutabledict
    from synapse.state import v2 as synapse_state_v2

    import roomgraph._native as native
    counts: Counter[str] = Counter()
    conflicted: Counter[str] = Counter()
    differences = []
    for path in rooms:
        doc, version, events, forks = load(path)
        room_id = doc["room_id"]
        combos = [forks] if len(forks) > 1 else []
        combos += [list(pair) for pair in itertools.combinations(forks, 2)] if len(forks) > 2 else []
        for sets in combos:
            if version.state_res == StateResolutionVersions.V1:
                theirs = run(synapse_v1(room_id, version, sets, None,
                                        TestStateResolutionStore(events).get_events))
                ours = [run(dropin.resolve_events_with_store_v1(
                    room_id, version, sets, None, TestStateResolutionStore(events).get_events))]
            else:
                theirs = run(synapse_v2(Clock(), room_id, version, sets, None,
                                        TestStateResolutionStore(events)))
                cache: dict = {}
                ours = [
                    run(dropin.resolve_events_with_store(
                        Clock(), room_id, version, sets, None, TestStateResolutionStore(events),
                        conflict_cache=c))
                    for c in (None, cache, cache)
                ]
            # The native split is Synapse's, on dicts and on Synapse's immutable maps.
            expected_split = synapse_state_v2._seperate(sets)
            for maps in (sets, [immutabledict(s) for s in sets]):
                if native.separate(maps) != expected_split:
                    differences.append((path.name, len(sets), ["separate"]))
            counts[version.identifier] += 1
            conflicted[version.identifier] += any(
                len({s.get(k) for s in sets}) > 1 for k in set().union(*sets))
            for answer in ours:
                if dict(answer) != dict(theirs):
                    keys = {k for k in set(answer) | set(theirs) if answer.get(k) != theirs.get(k)}
                    differences.append((path.name, len(sets), sorted(keys)[:5]))
                    break
    print("room version | resolutions | with conflicts")
    for v in sorted(counts, key=lambda v: (len(v), v)):
        print(f"{v:>12} | {counts[v]:>11} | {conflicted[v]:>14}")
    print(f"total: {sum(counts.values())} resolutions over {len(rooms)} rooms, "
          f"{len(differences)} differences; drop-in: {dropin.resolutions} by roomgraph "
          f"({dropin.cache_hits} conflict-cache hits), {dropin.fallbacks} fallbacks "
          f"{dict(dropin.fallback_reasons)}")
    for name, n, keys in differences[:20]:
        print(f"DIFFERENT: {name} ({n} state sets): {keys}")
    return 1 if differences or dropin.fallbacks or not counts else 0


if __name__ == "__main__":
    sys.exit(main())
