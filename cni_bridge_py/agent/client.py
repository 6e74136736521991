"""The thin front's side of the agent: hand one invocation over, or say there is no agent.

The invocation goes over as it came (environment and stdin bytes), before anything is
parsed: the agent runs the same front code, so VERSION, argument and config errors get the
same answers byte for byte, and this process imports only os, _socket, struct, base64 and json.
Correctness never depends on the agent: no socket, a refused connection, a refusal (another
namespace) or a dead agent before it took the request all mean "run it here" (None).
"""

from __future__ import annotations

# The C module itself: socket.py would build its enums on every plugin run (~5 ms).
import _socket
import os
from collections.abc import Mapping

from cni_bridge_py.agent.path import listening_socket
from cni_bridge_py.agent.protocol import (
    AgentRequest,
    ProtocolError,
    decode_reply,
    netns_identity,
    read_frame,
)
from cni_bridge_py.answer import Answer

CONNECT_TIMEOUT_S = 0.25
# ADD may wait seconds for a bridge port; a runtime's own timeout is longer still.
REPLY_TIMEOUT_S = 120.0


def forward(env: Mapping[str, str], stdin: bytes) -> Answer | None:
    path = listening_socket(env)
    if path is None or not _paths_are_absolute(env):
        return None
    try:
        sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    except OSError:
        return None
    try:  # _socket's socket has no context manager
        try:
            sock.settimeout(CONNECT_TIMEOUT_S)
            sock.connect(path)
            sock.settimeout(REPLY_TIMEOUT_S)
            sock.sendall(AgentRequest(dict(env), stdin, netns_identity()).encode())
        except OSError:
            return None  # nobody took the request: doing it here is safe
        try:
            return decode_reply(read_frame(sock))  # None: refused, run it here
        except (OSError, ProtocolError):
            return _lost(env, stdin)
    finally:
        sock.close()


def _paths_are_absolute(env: Mapping[str, str]) -> bool:
    """The agent has its own working directory: a relative CNI_NETNS or CNI_PATH entry would
    name another file there, so such a request is served here, where it means what it says."""
    netns = env.get("CNI_NETNS", "")
    plugin_dirs = [d for d in env.get("CNI_PATH", "").split(":") if d]
    return (not netns or os.path.isabs(netns)) and all(os.path.isabs(d) for d in plugin_dirs)


def _lost(env: Mapping[str, str], stdin: bytes) -> Answer | None:
    """The agent took the request and died. DEL, CHECK, GC and STATUS are safe to redo here;
    an ADD may have been half done, so the runtime must DEL and retry, as after any failure."""
    if env.get("CNI_COMMAND") != "ADD":
        return None
    from cni_bridge_py.errors import TryAgainLater  # noqa: PLC0415 - the rare path only
    from cni_bridge_py.front import error_version  # noqa: PLC0415

    error = TryAgainLater(
        "the cni-bridge-py agent stopped while handling this ADD",
        "retry after DEL; the agent's restart (or the one-shot path) will serve it",
    )
    return Answer(stdout=error.to_json(error_version(stdin)) + "\n", stderr="", exit_code=1)
