"""The thin front's side of the agent: hand one invocation over, or say there is no agent.

The invocation goes over as it came (environment and stdin bytes), before anything is
parsed: the agent runs the same front code, so argument and config errors get the same
answers byte for byte, and this process loads only _socket and the protocol module.
Correctness never depends on the agent: no socket, a refused connection, a refusal (another
namespace, another protocol version, a request too big) or an agent that went away before it
read the whole request all mean "run it here" (None).
"""

# The C module itself: socket.py would build its enums on every plugin run (~5 ms).
import _socket
from posix import stat  # built in and loaded at start: free, unlike os

from cni_bridge_py.agent.protocol import (
    DEFAULT_SOCKET,
    MAX_FRAME,
    SOCKET_ENV,
    ProtocolError,
    Reply,
    decode_reply,
    encode_request,
    read_frame,
)

TYPE_CHECKING = False  # not typing's: importing typing costs every plugin run
if TYPE_CHECKING:
    from collections.abc import Mapping

CONNECT_TIMEOUT_S = 0.25
# ADD may wait seconds for a bridge port, and a socket-activated agent starts first; a
# runtime's own timeout is longer still.
REPLY_TIMEOUT_S = 120.0


def listening_socket(env: "Mapping[bytes, bytes]") -> str | None:
    """The agent's socket path when one is configured and present, else None; `env` is the
    process's environment as bytes (posix.environ)."""
    configured = env.get(SOCKET_ENV.encode())
    path = DEFAULT_SOCKET if configured is None else configured.decode("utf-8", "surrogateescape")
    if path in ("", "off"):
        return None
    try:
        stat(path)
    except (OSError, ValueError):  # ValueError: a NUL in the name
        return None
    return path


def forward(
    path: str, env: "Mapping[bytes, bytes]", stdin: bytes, netns: tuple[int, int]
) -> Reply | None:
    """The agent's (exit code, stdout, stderr) for this invocation, or None: run it here."""
    if not _paths_are_absolute(env):
        return None
    request = encode_request(env, stdin, netns)
    if len(request) > MAX_FRAME:
        return None  # the agent would refuse it unread
    try:
        sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    except OSError:
        return None
    try:  # _socket's socket has no context manager
        return _exchange(sock, path, request, env, stdin)
    finally:
        sock.close()


def _exchange(
    sock: "_socket.socket", path: str, request: bytes, env: "Mapping[bytes, bytes]", stdin: bytes
) -> Reply | None:
    try:
        sock.settimeout(CONNECT_TIMEOUT_S)
        sock.connect(path)
        sock.settimeout(REPLY_TIMEOUT_S)
        sock.sendall(request)
    except OSError:
        return None  # nobody took the request: doing it here is safe
    try:
        return decode_reply(read_frame(sock))
    except ConnectionResetError:
        # A unix socket is reset, rather than closed, when the agent went away with our
        # request unread (never accepted: a socket-activated agent that failed to start;
        # or killed before reading it all). It acts only on a whole request: nothing done.
        return None
    except (OSError, ProtocolError):
        return _lost(env, stdin)


def _paths_are_absolute(env: "Mapping[bytes, bytes]") -> bool:
    """The agent has its own working directory: a relative CNI_NETNS or CNI_PATH entry would
    name another file there, so such a request is served here, where it means what it says."""
    netns = env.get(b"CNI_NETNS", b"")
    plugin_dirs = [d for d in env.get(b"CNI_PATH", b"").split(b":") if d]
    return (not netns or netns[:1] == b"/") and all(d[:1] == b"/" for d in plugin_dirs)


def _lost(env: "Mapping[bytes, bytes]", stdin: bytes) -> Reply | None:
    """The agent took the request and died. DEL, CHECK, GC and STATUS are safe to redo here;
    an ADD may have been half done, so the runtime must DEL and retry, as after any failure."""
    if env.get(b"CNI_COMMAND") != b"ADD":
        return None
    from cni_bridge_py.errors import TryAgainLater  # noqa: PLC0415 - the rare path only
    from cni_bridge_py.front import error_version  # noqa: PLC0415

    error = TryAgainLater(
        "the cni-bridge-py agent stopped while handling this ADD",
        "retry after DEL; the agent's restart (or the one-shot path) will serve it",
    )
    return 1, (error.to_json(error_version(stdin)) + "\n").encode(), b""
