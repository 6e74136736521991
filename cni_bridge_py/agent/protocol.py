"""The front <-> agent wire format: one binary frame each way, one exchange per connection.

Every plugin run pays for what this module imports, so it imports nothing that is not loaded at
start: integers go through int.to_bytes (struct would load _struct, ~0.4 ms), and the
environment and stdin travel as the bytes the process got (no json, base64 or decoding on the
front's side).

A frame is the body's length (4 bytes, big-endian), then the body; every body starts with the
protocol version, so either side can tell a peer of another version and step aside.

    request   version u8 | netns device u64 | netns inode u64 | env length u32 | env | stdin
              env: KEY=VALUE entries separated by NUL, as /proc/<pid>/environ holds them
    answer    version u8 | ANSWER u8 | exit code u8 | stdout length u32 | stdout | stderr
    refusal   version u8 | REFUSAL u8 | why (UTF-8): the agent did nothing; the caller runs it
"""

from posix import stat  # built in and loaded at start: free, unlike os

DEFAULT_SOCKET = "/run/cni-bridge-py/agent.sock"
# Where the front looks for the agent; empty or "off" disables it.
SOCKET_ENV = "CNI_BRIDGE_PY_AGENT"

VERSION = 2  # 1 was length-prefixed JSON with base64 stdin
MAX_FRAME = 8 * 1024 * 1024
ANSWER = 0
REFUSAL = 1
_LENGTH = 4
_REQUEST_HEAD = 1 + 8 + 8 + 4
_ANSWER_HEAD = 1 + 1 + 1 + 4

TYPE_CHECKING = False  # not typing's: importing typing costs every plugin run
if TYPE_CHECKING:
    from _socket import socket  # the base of socket.socket: both sides' sockets fit
    from collections.abc import Mapping

# (exit code, stdout, stderr) as the front writes them.
Reply = tuple[int, bytes, bytes]


class ProtocolError(Exception):
    """A frame that is truncated, oversized or not what this version sends."""


class OtherVersion(ProtocolError):
    """The peer speaks another protocol version: nothing was done for it."""


class Oversized(ProtocolError):
    """A frame over the limit: refused before reading it, so nothing was done for it."""


def netns_identity() -> tuple[int, int]:
    """(device, inode) of our network namespace: equal only for the same namespace."""
    st = stat("/proc/self/ns/net")
    return st.st_dev, st.st_ino


class AgentRequest:
    """One invocation as the front got it: its environment and stdin (bytes, undecoded) and
    the (device, inode) of its network namespace."""

    __slots__ = ("env", "netns", "stdin")

    def __init__(self, env: dict[bytes, bytes], stdin: bytes, netns: tuple[int, int]) -> None:
        self.env = env
        self.stdin = stdin
        self.netns = netns

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, AgentRequest):
            return NotImplemented
        return (self.env, self.stdin, self.netns) == (other.env, other.stdin, other.netns)

    __hash__ = None  # type: ignore[assignment]  # mutable, compared by value

    def text_env(self) -> dict[str, str]:
        """The environment as os.environ would show it to the front (surrogateescape)."""
        return {
            k.decode("utf-8", "surrogateescape"): v.decode("utf-8", "surrogateescape")
            for k, v in self.env.items()
        }


def encode_request(env: "Mapping[bytes, bytes]", stdin: bytes, netns: tuple[int, int]) -> bytes:
    block = b"\0".join([k + b"=" + v for k, v in env.items()])
    return _frame(
        VERSION.to_bytes(1, "big")
        + netns[0].to_bytes(8, "big")
        + netns[1].to_bytes(8, "big")
        + len(block).to_bytes(4, "big")
        + block
        + stdin
    )


def decode_request(body: bytes) -> AgentRequest:
    _check_version(body)
    if len(body) < _REQUEST_HEAD:
        raise ProtocolError(f"a request of {len(body)} bytes is shorter than its header")
    device = int.from_bytes(body[1:9], "big")
    inode = int.from_bytes(body[9:17], "big")
    env_end = _REQUEST_HEAD + int.from_bytes(body[17:21], "big")
    if env_end > len(body):
        raise ProtocolError("the environment runs past the end of the request")
    env: dict[bytes, bytes] = {}
    block = body[_REQUEST_HEAD:env_end]
    for entry in block.split(b"\0") if block else ():
        # From the second byte: like the C library, a name may start with "=".
        cut = entry.find(b"=", 1)
        if cut < 0:
            raise ProtocolError(f"environment entry {entry[:64]!r} has no '='")
        env[entry[:cut]] = entry[cut + 1 :]
    return AgentRequest(env, body[env_end:], (device, inode))


def encode_answer(exit_code: int, stdout: bytes, stderr: bytes) -> bytes:
    return _frame(
        bytes((VERSION, ANSWER, exit_code)) + len(stdout).to_bytes(4, "big") + stdout + stderr
    )


def encode_refusal(why: str) -> bytes:
    return _frame(bytes((VERSION, REFUSAL)) + why.encode("utf-8", "backslashreplace"))


def decode_reply(body: bytes) -> Reply | None:
    """The agent's answer, or None when it did nothing for us (a refusal, or an agent of
    another version: an agent acts only on requests of its own version)."""
    if not body or body[0] != VERSION:
        return None
    if len(body) < 2:
        raise ProtocolError("a reply without its kind")
    if body[1] == REFUSAL:
        return None
    if body[1] != ANSWER or len(body) < _ANSWER_HEAD:
        raise ProtocolError(f"a reply of kind {body[1]} and {len(body)} bytes")
    stdout_end = _ANSWER_HEAD + int.from_bytes(body[3:7], "big")
    if stdout_end > len(body):
        raise ProtocolError("stdout runs past the end of the reply")
    return body[2], body[_ANSWER_HEAD:stdout_end], body[stdout_end:]


def read_frame(sock: "socket", limit: int = MAX_FRAME) -> bytes:
    length = int.from_bytes(_read_exactly(sock, _LENGTH), "big")
    if length > limit:
        raise Oversized(f"a frame of {length} bytes is over the {limit}-byte limit")
    return _read_exactly(sock, length)


def _check_version(body: bytes) -> None:
    if not body:
        raise ProtocolError("an empty frame")
    if body[0] != VERSION:
        raise OtherVersion(f"protocol version {body[0]}, this agent speaks {VERSION}")


def _frame(body: bytes) -> bytes:
    return len(body).to_bytes(_LENGTH, "big") + body


def _read_exactly(sock: "socket", count: int) -> bytes:
    buffer = bytearray(count)
    view = memoryview(buffer)
    done = 0
    while done < count:
        got = sock.recv_into(view[done:])
        if not got:
            raise ProtocolError(f"the connection closed after {done} of {count} bytes")
        done += got
    return bytes(buffer)
