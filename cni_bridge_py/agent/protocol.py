"""The front <-> agent wire format (standard library only).

One request per connection: a 4-byte big-endian length, then UTF-8 JSON. The request carries
the invocation exactly (environment, stdin bytes) plus the caller's network namespace, so the
agent can refuse to act for a caller in another namespace.
"""

from __future__ import annotations

import base64
import json
import os
import struct

# Not typing/dataclasses/socket.py: each front run pays for what it imports (typing ~5 ms,
# dataclasses pulls inspect ~8 ms, socket.py builds enums ~5 ms); mypy honours the name.
from cni_bridge_py.agent.path import DEFAULT_SOCKET, SOCKET_ENV
from cni_bridge_py.answer import Answer

TYPE_CHECKING = False
if TYPE_CHECKING:
    from _socket import socket  # the base of socket.socket: both sides' sockets fit
    from typing import Any

PROTOCOL_VERSION = 1
__all__ = ["DEFAULT_SOCKET", "SOCKET_ENV", "AgentRequest", "ProtocolError", "read_frame"]
MAX_FRAME = 8 * 1024 * 1024
_LENGTH = struct.Struct(">I")


class ProtocolError(Exception):
    """A frame that is truncated, oversized or not the JSON we expect."""


def netns_identity() -> list[int]:
    """(device, inode) of our network namespace: equal only for the same namespace."""
    st = os.stat("/proc/self/ns/net")
    return [st.st_dev, st.st_ino]


class AgentRequest:
    __slots__ = ("env", "netns", "stdin")

    def __init__(self, env: dict[str, str], stdin: bytes, netns: list[int]) -> None:
        self.env = env
        self.stdin = stdin
        self.netns = netns

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, AgentRequest):
            return NotImplemented
        return (self.env, self.stdin, self.netns) == (other.env, other.stdin, other.netns)

    __hash__ = None  # type: ignore[assignment]  # mutable, like the dataclass it replaces

    def encode(self) -> bytes:
        return _frame(
            {
                "version": PROTOCOL_VERSION,
                "env": self.env,
                "stdin": base64.b64encode(self.stdin).decode(),
                "netns": self.netns,
            }
        )

    @classmethod
    def decode(cls, body: dict[str, Any]) -> AgentRequest:
        try:
            if body.get("version") != PROTOCOL_VERSION:
                raise ProtocolError(
                    f"protocol version {body.get('version')!r} is not {PROTOCOL_VERSION}"
                )
            env = body["env"]
            if not isinstance(env, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in env.items()
            ):
                raise ProtocolError("env must map strings to strings")
            netns = [int(x) for x in body["netns"]]
            return cls(env, base64.b64decode(body["stdin"], validate=True), netns)
        except (KeyError, TypeError, ValueError) as exc:
            raise ProtocolError(f"malformed request: {exc}") from exc


def encode_answer(answer: Answer) -> bytes:
    return _frame({"stdout": answer.stdout, "stderr": answer.stderr, "exit_code": answer.exit_code})


def encode_refusal(why: str) -> bytes:
    """The agent will not act for this caller: it runs the request itself."""
    return _frame({"refused": why})


def decode_reply(body: dict[str, Any]) -> Answer | None:
    """The agent's Answer, or None when it refused."""
    if "refused" in body:
        return None
    try:
        return Answer(str(body["stdout"]), str(body["stderr"]), int(body["exit_code"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise ProtocolError(f"malformed reply: {exc}") from exc


def _frame(body: dict[str, Any]) -> bytes:
    data = json.dumps(body).encode()
    return _LENGTH.pack(len(data)) + data


def read_frame(sock: socket, limit: int = MAX_FRAME) -> dict[str, Any]:
    header = _read_exactly(sock, _LENGTH.size)
    (length,) = _LENGTH.unpack(header)
    if length > limit:
        raise ProtocolError(f"frame of {length} bytes is over the {limit}-byte limit")
    try:
        body = json.loads(_read_exactly(sock, length))
    except ValueError as exc:
        raise ProtocolError(f"frame is not JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise ProtocolError("frame is not a JSON object")
    return body


def _read_exactly(sock: socket, count: int) -> bytes:
    chunks: list[bytes] = []
    while count:
        chunk = sock.recv(min(count, 1 << 16))
        if not chunk:
            raise ProtocolError("connection closed mid-frame")
        chunks.append(chunk)
        count -= len(chunk)
    return b"".join(chunks)
