from typing import Literal, Union

StateMap = dict[tuple[str, str], str]
Step = Union[tuple[Literal["need"], list[str]], tuple[Literal["done"], StateMap]]

class ResolveError(Exception):
    """A resolution the engine refused (malformed PDU, unknown room version, missing event)."""

class ResolveSession:
    """One host-driven resolution. Not to be used by two threads at once."""

    def __init__(
        self,
        room_version: str,
        state_sets: list[list[str]],
        events: list[bytes],
        rejected: list[str],
        event_ids: list[str] | None = None,
    ) -> None: ...
    @staticmethod
    def conflicted(
        room_version: str,
        full_conflicted_set: list[str],
        base_state: StateMap,
        events: list[bytes],
        rejected: list[str],
        event_ids: list[str] | None = None,
    ) -> ResolveSession:
        """The second half of a v2/v2.1 resolution from the host's full conflicted set (conflicted
        events, auth difference, v2.1 conflicted subgraph) and base state; asks only for the events
        the algorithm reads, and is done with the base state plus the conflicted events that pass."""
    @property
    def step(self) -> Step:
        """The latest step: the constructor's, then each `supply`'s."""
    @property
    def finished(self) -> bool:
        """Whether the session is over (done, or failed)."""
    def supply(
        self,
        events: list[bytes],
        rejected: list[str],
        event_ids: list[str] | None = None,
    ) -> Step: ...

def separate(
    state_sets: list[StateMap],
) -> tuple[StateMap, dict[tuple[str, str], set[str]]]:
    """Synapse's ``_seperate``: the unconflicted state and the conflicted state (key -> events)."""

def set_event_cache_capacity(capacity: int) -> None:
    """How many parsed events are kept across resolutions (0: none; default 50 000); empties it."""

def event_cache_len() -> int:
    """How many parsed events are kept now."""
