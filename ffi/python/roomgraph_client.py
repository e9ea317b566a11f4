"""A client for ``roomgraph serve`` (standard library only).

The wire contract is ``docs/protocol.md``: frames of a 4-byte big-endian length and UTF-8 JSON;
requests ``{"id", "method", "params"}``; responses ``{"id", "result"}`` or ``{"id", "error": {"code",
"message"}}``, possibly out of order. This client sends one request at a time per call, or many at once
with :meth:`Client.pipeline`.

Example::

    with Client.unix("/run/roomgraph.sock") as rg:
        print(rg.call("ping"))                       # "pong"
        state = rg.call("resolve", request_document)  # {"<type>": {"<state_key>": "<event_id>"}}
"""

from __future__ import annotations

import json
import socket
import struct
from types import TracebackType
from typing import Any, Callable, Iterable, Mapping, Optional, Sequence, Tuple, Type

__all__ = ["Client", "RoomgraphError", "ProtocolError"]

_HEADER = struct.Struct(">I")


class RoomgraphError(Exception):
    """An error answer: ``code`` is the snake_case code of ``docs/protocol.md``."""

    def __init__(self, code: str, message: str, request_id: Optional[int] = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.request_id = request_id


class ProtocolError(Exception):
    """The connection ended or carried something that is not a response."""


class Client:
    """One connection to a ``roomgraph serve`` process."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._next_id = 1

    @classmethod
    def unix(cls, path: str, timeout: Optional[float] = None) -> "Client":
        """Connects to the server's Unix socket."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        sock.connect(path)
        return cls(sock)

    @classmethod
    def tcp(
        cls, host: str, port: int, token: str, timeout: Optional[float] = None
    ) -> "Client":
        """Connects over TCP (loopback) and authenticates with ``hello`` and the token."""
        sock = socket.create_connection((host, port), timeout=timeout)
        client = cls(sock)
        client.call("hello", {"token": token})
        return client

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.close()

    # ----- frames -----

    def _send(self, method: str, params: Optional[Mapping[str, Any]]) -> int:
        request_id = self._next_id
        self._next_id += 1
        request: dict[str, Any] = {"id": request_id, "method": method}
        if params is not None:
            request["params"] = params
        body = json.dumps(request, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        self._sock.sendall(_HEADER.pack(len(body)) + body)
        return request_id

    def _read_exact(self, n: int) -> bytes:
        chunks = []
        while n > 0:
            chunk = self._sock.recv(min(n, 1 << 20))
            if not chunk:
                raise ProtocolError("the server closed the connection")
            chunks.append(chunk)
            n -= len(chunk)
        return b"".join(chunks)

    def _recv(self) -> Mapping[str, Any]:
        (length,) = _HEADER.unpack(self._read_exact(_HEADER.size))
        try:
            response = json.loads(self._read_exact(length))
        except ValueError as e:
            raise ProtocolError(f"a response that is not JSON: {e}") from e
        if not isinstance(response, dict) or "id" not in response:
            raise ProtocolError(f"not a response: {response!r}")
        return response

    @staticmethod
    def _outcome(response: Mapping[str, Any]) -> Any:
        error = response.get("error")
        if error is not None:
            raise RoomgraphError(
                str(error.get("code", "")), str(error.get("message", "")), response.get("id")
            )
        return response.get("result")

    # ----- requests -----

    def call(self, method: str, params: Optional[Mapping[str, Any]] = None) -> Any:
        """Sends one request and returns its result; an error answer raises :class:`RoomgraphError`."""
        request_id = self._send(method, params)
        while True:
            response = self._recv()
            if response["id"] == request_id:
                return self._outcome(response)
            if response["id"] is None:
                # A frame error about this connection: the server closes it.
                return self._outcome(response)

    def pipeline(
        self, requests: Iterable[Tuple[str, Optional[Mapping[str, Any]]]]
    ) -> Sequence[Any]:
        """Sends every request before reading any answer; returns the results (or the
        :class:`RoomgraphError` of each failed one) in request order."""
        ids = [self._send(method, params) for method, params in requests]
        answers: dict[int, Any] = {}
        while len(answers) < len(ids):
            response = self._recv()
            request_id = response["id"]
            if request_id is None:
                self._outcome(response)
            try:
                answers[request_id] = self._outcome(response)
            except RoomgraphError as e:
                answers[request_id] = e
        return [answers[i] for i in ids]

    # ----- methods (docs/protocol.md) -----

    def hello(self) -> Mapping[str, Any]:
        return self.call("hello", {})

    def ping(self) -> str:
        return self.call("ping")

    def resolve(self, document: Mapping[str, Any]) -> Mapping[str, Mapping[str, str]]:
        return self.call("resolve", document)

    def auth_check(self, document: Mapping[str, Any]) -> Mapping[str, Any]:
        return self.call("auth_check", document)

    def event_id(self, room_version: str, pdu: Mapping[str, Any]) -> str:
        return self.call("event_id", {"room_version": room_version, "pdu": pdu})["event_id"]

    def content_hash(self, room_version: str, pdu: Mapping[str, Any]) -> str:
        return self.call("content_hash", {"room_version": room_version, "pdu": pdu})[
            "content_hash"
        ]

    def redact(self, room_version: str, pdu: Mapping[str, Any]) -> Mapping[str, Any]:
        return self.call("redact", {"room_version": room_version, "pdu": pdu})

    def ingest(self, pdus: Sequence[Mapping[str, Any]]) -> Mapping[str, Any]:
        """Ingests PDUs; answered once durable: ``{"summary", "outcomes"}``."""
        return self.call("ingest", {"pdus": list(pdus)})

    def state(
        self,
        room_id: Optional[str] = None,
        event_id: Optional[str] = None,
        before: bool = False,
    ) -> Mapping[str, Mapping[str, str]]:
        if (room_id is None) == (event_id is None):
            raise ValueError("give exactly one of room_id and event_id")
        if room_id is not None:
            return self.call("state", {"room_id": room_id})
        return self.call("state", {"event_id": event_id, "before": before})

    def event(self, event_id: str) -> Mapping[str, Any]:
        return self.call("event", {"event_id": event_id})

    def extremities(self, room_id: str) -> Sequence[str]:
        return self.call("extremities", {"room_id": room_id})

    def stats(self) -> Mapping[str, Any]:
        return self.call("stats")

    def resolve_hosted(
        self,
        room_version: str,
        state_sets: Sequence[Sequence[str]],
        fetch: Callable[[Sequence[str]], Tuple[Sequence[Mapping[str, Any]], Sequence[str]]],
    ) -> Mapping[str, Mapping[str, str]]:
        """Host-driven resolution (``resolve_begin`` / ``resolve_supply``): the server asks for events
        in batches and ``fetch(ids)`` returns ``(pdus, rejected_ids)`` from the host's own store.
        Returns the resolved state map."""
        answer = self.call(
            "resolve_begin", {"room_version": room_version, "state_sets": state_sets}
        )
        while "need" in answer:
            pdus, rejected = fetch(answer["need"]["events"])
            answer = self.call(
                "resolve_supply",
                {"session": answer["session"], "events": list(pdus), "rejected": list(rejected)},
            )
        return answer["done"]
