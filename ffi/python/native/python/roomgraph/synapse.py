"""roomgraph as Synapse's state resolver: a drop-in for ``resolve_events_with_store``.

Enable it with one entry under ``modules:`` in homeserver.yaml::

    modules:
      - module: roomgraph.synapse.Module

or call `install()` before Synapse resolves state. `resolve_events_with_store` (state resolution v2
and v2.1, room versions 2-12) and `resolve_events_with_store_v1` (room version 1) take the arguments
of Synapse 1.163.2's ``synapse.state.v2`` and ``synapse.state.v1`` functions and return what they
return. For v2 and v2.1 the cheap half stays Synapse's own — the auth chain difference from its
store's index (with, in v2.1, the conflicted subgraph), the full conflicted set and the base state, by
Synapse's helpers — and the expensive half (`_resolve_conflicted_set`: power ordering, iterative auth
checks, mainline) is roomgraph's engine (``roomgraph._native.ResolveSession.conflicted``), with the
GIL released. The engine asks only for the events that half reads (the full conflicted set, its auth
events, the base events at the keys its auth rules look up, the power-levels chains), taken from
``event_map`` first and then from Synapse's store, one store call per batch. Room version 1 is
resolved from the state sets and their auth chains.

What is not the engine's to decide goes to Synapse's own function, unchanged, and is counted in
`fallbacks` (reason in `fallback_reasons`): a room version the engine does not know (the
``org.matrix.msc3757.*`` ones), an event the store does not have (Synapse then resolves without it),
events not in their room version's format in a room of version 12, and any event the engine refuses
to parse. `resolutions` counts the resolutions the engine did.
"""

from __future__ import annotations

import itertools
import json
import logging
import sys
import weakref
from collections import ChainMap, Counter
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from roomgraph._native import ResolveError, ResolveSession, separate

if TYPE_CHECKING:
    from synapse.api.room_versions import RoomVersion
    from synapse.events import EventBase

logger = logging.getLogger(__name__)

StateKey = tuple[str, str]
StateMap = Mapping[StateKey, str]

#: Resolutions computed by roomgraph since the process started.
resolutions = 0
#: Resolutions handed to Synapse's own resolver, and why (reason -> count).
fallbacks = 0
fallback_reasons: Counter[str] = Counter()
#: Conflict-cache hits served (see `_CachedResolution`).
cache_hits = 0

# Room versions whose rules the engine implements, by Synapse's identifier. Unstable versions that
# resolve exactly as a stable one map to it: org.matrix.hydra.11 differs from 12 only in stripped
# state (MSC4311), which resolution never reads.
_ENGINE_VERSION = {str(n): str(n) for n in range(1, 13)} | {"org.matrix.hydra.11": "12"}

# Synapse's event formats (synapse.api.room_versions.EventFormatVersions): only the first puts the
# event id in the event and references events as [id, hashes] pairs; the fourth is room version
# 12's, whose create event has no room id.
_FORMAT_V1 = 1
_FORMAT_V12 = 4


class _Delegate(Exception):
    """This input is Synapse's resolver's to answer (the reason is the message)."""


# Each event's PDU JSON, made once per event object: Synapse keeps the events it resolves with in
# its event cache, and the same auth chains come back resolution after resolution. Entries go with
# the events.
_PDU_CACHE: weakref.WeakKeyDictionary[Any, tuple[int, bytes]] = weakref.WeakKeyDictionary()


def _pdu_json(event: EventBase, room_format: int) -> bytes:
    """The event's PDU JSON as the engine reads it (`_PDU_CACHE`, else `_pdu_json_of`)."""
    cached = _PDU_CACHE.get(event)
    if cached is not None and cached[0] == room_format:
        return cached[1]
    pdu = _pdu_json_of(event, room_format)
    _PDU_CACHE[event] = (room_format, pdu)
    return pdu


def _pdu_json_of(event: EventBase, room_format: int) -> bytes:
    """The event's PDU JSON as the engine reads it.

    Synapse's events are stored in their room version's format with their hashes and signatures, and
    go as they are. Test fixtures are often neither (events of format 1 in a room of version 11,
    no ``hashes.sha256``); those are rewritten into the room's format, the id being passed apart.
    """
    pdu = event.get_pdu_json()
    hashes = pdu.get("hashes")
    if (
        event.format_version != room_format
        or not isinstance(hashes, dict)
        or "sha256" not in hashes
        or "signatures" not in pdu
    ):
        if event.format_version != room_format and room_format == _FORMAT_V12:
            # Room version 12 derives the room id from the create event's id: a fixture of another
            # format cannot be rewritten into it.
            raise _Delegate("events of another format in a room of version 12")
        pdu = dict(pdu)
        if not isinstance(hashes, dict) or "sha256" not in hashes:
            pdu["hashes"] = {"sha256": ""}
        pdu.setdefault("signatures", {})
        for refs in ("auth_events", "prev_events"):
            ids = [r[0] if isinstance(r, (list, tuple)) else r for r in pdu.get(refs, ())]
            # Resolution never reads prev_events; fixtures fill them with labels, not ids.
            ids = [i for i in ids if isinstance(i, str) and i.startswith("$")]
            pdu[refs] = [[i, {}] for i in ids] if room_format == _FORMAT_V1 else ids
        if room_format == _FORMAT_V1:
            pdu["event_id"] = event.event_id
        else:
            pdu.pop("event_id", None)
    return json.dumps(pdu, separators=(",", ":"), ensure_ascii=False).encode()


def _check_room(room_id: str, events: Collection[EventBase]) -> None:
    """Synapse's check that every event is in the room being resolved (same exception)."""
    for event in events:
        if event.room_id != room_id:
            raise Exception(
                "Attempting to state-resolve for room %s with event %s which is in %s"
                % (room_id, event.event_id, event.room_id)
            )


def _engine_version(room_version: RoomVersion) -> str:
    version = _ENGINE_VERSION.get(room_version.identifier)
    if version is None:
        raise _Delegate(f"room version {room_version.identifier} unknown to the engine")
    return version


def _supplied(
    events: Collection[EventBase], room_format: int
) -> tuple[list[bytes], list[str], list[str]]:
    """The arguments a session takes for `events`: PDU JSON, rejected ids, ids."""
    return (
        [_pdu_json(e, room_format) for e in events],
        [e.event_id for e in events if e.rejected_reason is not None],
        [e.event_id for e in events],
    )


async def _drive(
    room_id: str,
    room_version: RoomVersion,
    session: ResolveSession,
    held: dict[str, EventBase],
    fetch: Callable[[list[str]], Awaitable[Mapping[str, EventBase]]],
) -> dict[StateKey, str]:
    """Runs an engine session to its end: events from `held` first, the rest from `fetch` (one
    call per batch the engine asks for), each added to `held`."""
    room_format = room_version.event_format
    step = session.step
    while step[0] == "need":
        ids: list[str] = step[1]
        missing = [i for i in ids if i not in held]
        if missing:
            fetched = await fetch(missing)
            held.update(fetched)
            if any(i not in fetched for i in missing):
                raise _Delegate("an event missing from the store")
        events = [held[i] for i in ids]
        _check_room(room_id, events)
        try:
            step = session.supply(*_supplied(events, room_format))
        except ResolveError as e:
            raise _Delegate(f"the engine refused an event: {e}") from e
    return step[1]


def _fell_back(reason: str, room_id: str) -> None:
    global fallbacks
    fallbacks += 1
    fallback_reasons[reason] += 1
    logger.debug("roomgraph: %s in %s: Synapse's resolver answers", reason, room_id)


def _counted(room_id: str, version: str, size: int) -> None:
    global resolutions
    resolutions += 1
    logger.debug(
        "roomgraph resolved %d state sets in %s (room version %s)", size, room_id, version
    )


async def resolve_events_with_store(
    clock: Any,
    room_id: str,
    room_version: RoomVersion,
    state_sets: Sequence[StateMap],
    event_map: dict[str, EventBase] | None,
    state_res_store: Any,
    conflict_cache: Any = None,
) -> StateMap:
    """``synapse.state.v2.resolve_events_with_store``, by roomgraph: same arguments, same answer.

    ``event_map`` is used as Synapse uses it, a cache of events that is filled from the store as the
    resolution goes. A ``conflict_cache`` is used as Synapse uses it: the same key (the full
    conflicted set and the base state) and the same value (the conflicted set resolved over the
    base state), so entries made by either resolver serve both. The answer is, as Synapse's, the
    unconflicted state laid over that value (a ``ChainMap``, no copy of the room's state).
    """
    from synapse import event_auth
    from synapse.api.constants import EventTypes
    from synapse.api.room_versions import StateResolutionVersions
    from synapse.state import v2 as synapse_v2

    if event_map is None:
        event_map = {}
    # Synapse's `_seperate`, natively: in a big room it is the costliest Python step left.
    unconflicted, conflicted = separate(list(state_sets))
    if not conflicted:
        return unconflicted

    async def fetch(ids: list[str]) -> Mapping[str, EventBase]:
        return await state_res_store.get_events(ids, allow_rejected=True)

    try:
        version = _engine_version(room_version)
        # The cheap half is Synapse's own: the auth chain difference (with, in v2.1, the conflicted
        # subgraph) from its store's index, the full conflicted set and the base state.
        conflicted_ids = set(itertools.chain.from_iterable(conflicted.values()))
        v21 = room_version.state_res == StateResolutionVersions.V2_1
        auth_diff = await synapse_v2._get_auth_chain_difference(
            room_id, state_sets, event_map, state_res_store, conflicted_ids if v21 else None
        )
        full = conflicted_ids | set(auth_diff)
        missing = [i for i in full if i not in event_map]
        if missing:
            event_map.update(await fetch(missing))
        _check_room(room_id, event_map.values())
        # As Synapse does, events of the full conflicted set the store does not have are left out.
        full = {i for i in full if i in event_map}
        base: dict[StateKey, str] = {}
        if not v21:
            keys = {(EventTypes.PowerLevels, "")}
            for event_id in full:
                keys.update(event_auth.auth_types_for_event(room_version, event_map[event_id]))
            base = {k: unconflicted[k] for k in keys if k in unconflicted}

        cache_key = None
        if conflict_cache is not None:
            # Synapse's key and Synapse's value (the conflicted set resolved over the base state):
            # an entry either resolver made serves the other.
            cache_key = synapse_v2._conflict_cache_key(room_id, room_version, full, base)
            cached = conflict_cache.get(cache_key)
            if cached is not None:
                global cache_hits
                cache_hits += 1
                _counted(room_id, room_version.identifier, len(state_sets))
                return ChainMap(unconflicted, cached)

        ordered = sorted(full)
        session = ResolveSession.conflicted(
            version,
            ordered,
            base,
            *_supplied([event_map[i] for i in ordered], room_version.event_format),
        )
        resolved = await _drive(room_id, room_version, session, event_map, fetch)
    except _Delegate as why:
        _fell_back(str(why), room_id)
        return await _ORIGINAL_V2(
            clock, room_id, room_version, state_sets, event_map, state_res_store, conflict_cache
        )
    if cache_key is not None:
        conflict_cache[cache_key] = resolved
    _counted(room_id, room_version.identifier, len(state_sets))
    # Synapse's answer is this same overlay (a ChainMap, not a copy of the room's state).
    return ChainMap(unconflicted, resolved)


async def resolve_events_with_store_v1(
    room_id: str,
    room_version: RoomVersion,
    state_sets: Sequence[StateMap],
    event_map: dict[str, EventBase] | None,
    state_map_factory: Callable[[Collection[str]], Awaitable[dict[str, EventBase]]],
) -> StateMap:
    """``synapse.state.v1.resolve_events_with_store`` (room version 1), by roomgraph."""
    from synapse.state import v1 as synapse_v1

    if len(state_sets) == 1:
        return state_sets[0]
    unconflicted, conflicted = synapse_v1._seperate(state_sets)
    if not conflicted:
        return dict(unconflicted)
    held = dict(event_map) if event_map is not None else {}
    try:
        session = ResolveSession(
            _engine_version(room_version), [list(s.values()) for s in state_sets], [], []
        )
        resolved = await _drive(room_id, room_version, session, held, state_map_factory)
    except _Delegate as why:
        _fell_back(str(why), room_id)
        return await _ORIGINAL_V1(room_id, room_version, state_sets, event_map, state_map_factory)
    _counted(room_id, room_version.identifier, len(state_sets))
    return resolved


# Synapse's functions, kept by install() (until then, they are still in their modules).
_SYNAPSE: dict[str, Any] = {}
_NAME = "resolve_events_with_store"
#: (module, attribute, original) of every binding install() changed.
_PATCHED: list[tuple[Any, str, Any]] = []


def _synapse(which: str) -> Any:
    if which not in _SYNAPSE:
        from synapse.state import v1, v2

        return (v1 if which == "v1" else v2).resolve_events_with_store
    return _SYNAPSE[which]


def _ORIGINAL_V1(*args: Any) -> Any:
    return _synapse("v1")(*args)


def _ORIGINAL_V2(*args: Any) -> Any:
    return _synapse("v2")(*args)


def installed() -> bool:
    """Whether `install()` is in effect."""
    return bool(_PATCHED)


def install() -> None:
    """Makes Synapse resolve state with roomgraph: replaces ``resolve_events_with_store`` in
    ``synapse.state.v1`` and ``synapse.state.v2`` and in every imported module that bound that name
    to either function (``from synapse.state.v2 import resolve_events_with_store``). Modules imported
    afterwards find the drop-in in ``synapse.state.v1``/``v2``. Idempotent."""
    if _PATCHED:
        return
    # synapse.event_auth first: importing synapse.state on its own trips Synapse's import cycle.
    import synapse.event_auth  # noqa: F401
    from synapse.state import v1, v2

    _SYNAPSE.setdefault("v1", v1.resolve_events_with_store)
    _SYNAPSE.setdefault("v2", v2.resolve_events_with_store)
    replacements = (
        (_SYNAPSE["v1"], resolve_events_with_store_v1),
        (_SYNAPSE["v2"], resolve_events_with_store),
    )
    for module in list(sys.modules.values()):
        names = getattr(module, "__dict__", None)
        if not isinstance(names, dict) or module is sys.modules[__name__]:
            continue
        value = names.get(_NAME)
        for original, new in replacements:
            if value is original:
                _PATCHED.append((module, _NAME, value))
                setattr(module, _NAME, new)
    logger.info("roomgraph resolves state for Synapse (%d bindings replaced)", len(_PATCHED))


def uninstall() -> None:
    """Undoes `install()`: every binding it changed gets Synapse's function back. Idempotent."""
    while _PATCHED:
        module, name, original = _PATCHED.pop()
        setattr(module, name, original)


class Module:
    """A Synapse module whose only effect is `install()`: ``- module: roomgraph.synapse.Module``
    under ``modules:`` in homeserver.yaml."""

    def __init__(self, config: Any, api: Any) -> None:
        install()

    @staticmethod
    def parse_config(config: Any) -> Any:
        return config
