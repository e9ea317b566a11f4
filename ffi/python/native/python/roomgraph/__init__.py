"""roomgraph: Matrix state resolution of every room version, for Python hosts.

`roomgraph.ResolveSession` drives one resolution: start it with the state sets and the events at
hand, answer each ``("need", ids)`` with those events' PDU JSON, and read the resolved state from
``("done", {(type, state_key): event_id})``. `roomgraph.synapse` uses it as Synapse's resolver.
"""

from roomgraph._native import ResolveError, ResolveSession

__all__ = ["ResolveError", "ResolveSession"]
