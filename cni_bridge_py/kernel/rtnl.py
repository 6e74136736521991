"""rtnetlink on a plain blocking socket: pyroute2 encodes and decodes the messages, we send
and receive them ourselves.

pyroute2's IPRoute runs every request through an asyncio event loop and opens a namespace's
socket from a forked child; a plugin makes a dozen requests per container, so that transport
cost more than the kernel's work (~2 ms per round trip against ~0.1 ms here). Only pyroute2's
message classes are imported (see messages()), not its package __init__.

A socket is bound to the network namespace of the thread that creates it, for its whole life:
a container's is created by a thread inside its namespace (nsenter.in_netns).
"""

from __future__ import annotations

import errno
import os
import socket
import struct
import sys
import threading
import types
from collections.abc import Callable
from typing import Any, TypeVar

# linux/netlink.h
NLM_F_REQUEST = 0x1
NLM_F_MULTI = 0x2
NLM_F_ACK = 0x4
NLM_F_DUMP_INTR = 0x10  # the dumped table changed while it was read: ask again
NLM_F_DUMP = 0x300  # NLM_F_ROOT | NLM_F_MATCH
NLM_F_EXCL = 0x200
NLM_F_CREATE = 0x400
NLM_F_ACK_TLVS = 0x200  # on an error: extended-ack attributes follow
NLMSG_ERROR = 2
NLMSG_DONE = 3
NLMSGERR_ATTR_MSG = 1  # the kernel's text for the error
SOL_NETLINK = 270
NETLINK_CAP_ACK = 10  # errors do not echo the whole request back
NETLINK_EXT_ACK = 11  # errors carry the kernel's explanation
# Dumps honour the request's filters (an address dump of one link, a route dump of one table
# and link) instead of listing everything: the cost of a request stays flat however many
# containers the host has.
NETLINK_GET_STRICT_CHK = 12
# linux/rtnetlink.h
RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK, RTM_SETLINK = 16, 17, 18, 19
RTM_NEWADDR, RTM_DELADDR, RTM_GETADDR = 20, 21, 22
RTM_NEWROUTE, RTM_DELROUTE, RTM_GETROUTE = 24, 25, 26
RTM_NEWNEIGH, RTM_DELNEIGH, RTM_GETNEIGH = 28, 29, 30

_HEADER = struct.Struct("=IHHII")  # nlmsghdr: length, type, flags, sequence, port id
_ERROR = struct.Struct("=i")
_ATTR = struct.Struct("=HH")  # nlattr: length, type
RECV_BUFFER = 1 << 16


class RtnlError(Exception):
    """The kernel refused a request: `code` is the errno, `text` its explanation if any."""

    def __init__(self, code: int, text: str = "") -> None:
        super().__init__(text or os.strerror(code))
        self.code = code
        self.text = text


class DumpInterrupted(Exception):
    """A dump raced with a change of what it lists (NLM_F_DUMP_INTR): it must be asked again."""


M = TypeVar("M")


def _messages() -> tuple[Any, Any, Any]:
    """pyroute2's ifinfmsg, ifaddrmsg and rtmsg, without running pyroute2/__init__.py (it
    imports NDB, IPDB, asyncio and ~160 modules a plugin never needs)."""
    if "pyroute2" not in sys.modules:
        import importlib.util  # noqa: PLC0415 - only on the first import

        spec = importlib.util.find_spec("pyroute2")
        if spec is None or spec.submodule_search_locations is None:
            raise ImportError("pyroute2 is not installed")
        package = types.ModuleType("pyroute2")
        package.__path__ = list(spec.submodule_search_locations)
        package.__spec__ = spec
        package.__file__ = spec.origin
        sys.modules["pyroute2"] = package
        if "pyroute2.config" not in sys.modules:
            package.config = _lazy_config()  # type: ignore[attr-defined]
    from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg  # noqa: PLC0415
    from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg  # noqa: PLC0415
    from pyroute2.netlink.rtnl.rtmsg import rtmsg  # noqa: PLC0415

    return ifinfmsg, ifaddrmsg, rtmsg


def _lazy_config() -> types.ModuleType:
    """pyroute2.config as the message classes see it: their import reads AF_BRIDGE and the
    (empty) plugin lists, while the real module imports multiprocessing, platform, pickle and
    re and runs uname (~5 ms of every one-shot run). Any other name asked of it runs the real
    module in place first, so the rest of pyroute2, if ever imported, sees it whole."""
    import importlib.util  # noqa: PLC0415 - loaded by _messages already

    spec = importlib.util.find_spec("pyroute2.config")
    if spec is None or spec.loader is None:
        raise ImportError("pyroute2.config is missing")
    module = importlib.util.module_from_spec(spec)
    loader = spec.loader
    lock = threading.Lock()

    def load_whole(name: str) -> Any:
        with lock:
            if "__getattr__" in module.__dict__:
                del module.__dict__["__getattr__"]
                loader.exec_module(module)
        try:
            return module.__dict__[name]
        except KeyError:
            raise AttributeError(f"module 'pyroute2.config' has no attribute {name!r}") from None

    module.__dict__.update(
        AF_BRIDGE=getattr(socket, "AF_BRIDGE", 7),
        data_plugins_pkgs=[],
        data_plugins_path=[],
        __getattr__=load_whole,
    )
    sys.modules["pyroute2.config"] = module
    return module


ifinfmsg, ifaddrmsg, rtmsg = _messages()
# Which class decodes an answer of each type.
_DECODERS = {RTM_NEWLINK: ifinfmsg, RTM_NEWADDR: ifaddrmsg, RTM_NEWROUTE: rtmsg}


def register_decoder(kind: int, decoder: Callable[[bytes], Any]) -> None:
    """Decode answers of another message type too (kernel/overlay.py: neighbours and FDB
    entries): loaded by their only user, so the plugin's path imports no more of pyroute2."""
    _DECODERS[kind] = decoder


def link_message(**fields: Any) -> Any:
    return _build(ifinfmsg, fields)


def address_message(**fields: Any) -> Any:
    return _build(ifaddrmsg, fields)


def route_message(**fields: Any) -> Any:
    return _build(rtmsg, fields)


def _build(cls: Callable[[], Any], fields: dict[str, Any]) -> Any:
    msg = cls()
    for key, value in fields.items():
        msg[key] = value
    return msg


class RtnlSocket:
    """One NETLINK_ROUTE socket: requests one at a time, answers decoded. Not shared between
    threads (each request of the agent has its own)."""

    def __init__(self) -> None:
        self._sock = socket.socket(
            socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, socket.NETLINK_ROUTE
        )
        try:
            self._sock.bind((0, 0))
            self._sock.setsockopt(SOL_NETLINK, NETLINK_CAP_ACK, 1)
            self._sock.setsockopt(SOL_NETLINK, NETLINK_EXT_ACK, 1)
            self._sock.setsockopt(SOL_NETLINK, NETLINK_GET_STRICT_CHK, 1)
        except OSError:
            self._sock.close()
            raise
        self._sequence = 0

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> RtnlSocket:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def request(self, msg: Any, kind: int, flags: int = NLM_F_ACK) -> list[Any]:
        """Send `msg` as a `kind` request and collect the answer: the messages the kernel
        returned (a get, a dump), or none (an acknowledged change). RtnlError on refusal."""
        sequence = self._next_sequence()
        header = msg["header"]
        header["type"] = kind
        header["flags"] = NLM_F_REQUEST | flags
        header["sequence_number"] = sequence
        msg.encode()
        self._sock.send(msg.data)
        return self._collect(sequence, flags, _decode_pyroute2)

    def query(
        self, kind: int, flags: int, body: bytes, answer: int, parse: Callable[[bytes, int, int], M]
    ) -> list[M]:
        """A read packed by the caller (rtmsg.py): `body` is what follows nlmsghdr; each
        answer of type `answer` is parsed from its whole message, the others are skipped."""
        sequence = self._next_sequence()
        header = _HEADER.pack(_HEADER.size + len(body), kind, NLM_F_REQUEST | flags, sequence, 0)
        self._sock.send(header + body)

        def decode(data: bytes, mtype: int, offset: int, end: int) -> M | None:
            return parse(data, offset, end) if mtype == answer else None

        return self._collect(sequence, flags, decode)

    def _next_sequence(self) -> int:
        self._sequence += 1
        return self._sequence

    def _collect(
        self, sequence: int, flags: int, decode: Callable[[bytes, int, int, int], M | None]
    ) -> list[M]:
        dumping = flags & NLM_F_DUMP == NLM_F_DUMP
        wants_ack = bool(flags & NLM_F_ACK)
        answers: list[M] = []
        interrupted = False
        while True:
            data = self._sock.recv(RECV_BUFFER)
            offset = 0
            while offset + _HEADER.size <= len(data):
                length, mtype, mflags, seq, _port = _HEADER.unpack_from(data, offset)
                if length < _HEADER.size:
                    raise RtnlError(errno.EPROTO, "malformed netlink answer")
                end = offset + length
                if seq == sequence:
                    if mtype == NLMSG_ERROR:
                        _raise_if_error(data, offset, mflags)
                        return answers  # an acknowledgement
                    if mtype == NLMSG_DONE:
                        if interrupted:
                            raise DumpInterrupted
                        return answers
                    interrupted |= bool(mflags & NLM_F_DUMP_INTR)
                    answer = decode(data, mtype, offset, end)
                    if answer is not None:
                        answers.append(answer)
                    if not dumping and not wants_ack and not mflags & NLM_F_MULTI:
                        return answers  # a get: one answer, no acknowledgement
                offset = (end + 3) & ~3


def _decode_pyroute2(data: bytes, mtype: int, offset: int, end: int) -> Any:
    decoder = _DECODERS.get(mtype)
    if decoder is None:
        return None
    answer = decoder(data[offset:end])
    answer.decode()
    return answer


def _raise_if_error(data: bytes, offset: int, flags: int) -> None:
    (code,) = _ERROR.unpack_from(data, offset + _HEADER.size)
    if code == 0:
        return
    text = ""
    if flags & NLM_F_ACK_TLVS:
        # With NETLINK_CAP_ACK the echoed request is only its header.
        attrs = offset + _HEADER.size + _ERROR.size + _HEADER.size
        text = _ack_text(data, attrs, offset + _HEADER.unpack_from(data, offset)[0])
    raise RtnlError(-code, text)


def _ack_text(data: bytes, offset: int, end: int) -> str:
    while offset + _ATTR.size <= end:
        length, kind = _ATTR.unpack_from(data, offset)
        if length < _ATTR.size:
            break
        if kind == NLMSGERR_ATTR_MSG:
            raw = data[offset + _ATTR.size : offset + length]
            return raw.rstrip(b"\0").decode(errors="replace")
        offset += (length + 3) & ~3
    return ""
