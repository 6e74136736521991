"""The resident agent: `cni-bridge-py agent [--socket PATH]`.

It runs the very same request handling as the one-shot plugin (front.handle and the verbs),
but with pyroute2 and the firewall modules already imported, so a request skips the ~150 ms
of imports. Requests are served concurrently, one thread each, serialised per network.

Only root (SO_PEERCRED) may talk to it, over a 0600 socket in a 0700 directory, and it acts
only for callers in its own network namespace: a front elsewhere gets a refusal and does the
work itself. All state lives in the kernel and the store, so a crash loses nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import socketserver
import struct
import sys
import threading
import time

from cni_bridge_py.agent.protocol import (
    DEFAULT_SOCKET,
    AgentRequest,
    ProtocolError,
    encode_answer,
    encode_refusal,
    netns_identity,
    read_frame,
)
from cni_bridge_py.answer import Answer
from cni_bridge_py.errors import DecodingFailure
from cni_bridge_py.front import handle
from cni_bridge_py.request import Handler, Notes, Request

_PEERCRED = struct.Struct("3i")  # pid, uid, gid
# How long a caller may take to send its whole request (the front sends it at once).
REQUEST_READ_TIMEOUT_S = 10.0


class NetworkLocks:
    """One lock per network name: requests for one network run one at a time."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}

    def for_network(self, name: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(name, threading.Lock())


def serve_request(
    request: AgentRequest, own_netns: list[int], run: Handler, locks: NetworkLocks
) -> Answer | None:
    """One request, as the one-shot plugin would answer it; None: not ours to serve (the
    caller is in another network namespace)."""
    if request.netns != own_netns:
        return None

    def locked(parsed: Request, notes: Notes) -> str:
        with locks.for_network(str(parsed.config.get("name", ""))):
            return run(parsed, notes)

    started = time.monotonic()
    answer = handle(request.env, request.stdin, locked)
    _log(request, answer, time.monotonic() - started)
    return answer


def _log(request: AgentRequest, response: Answer, seconds: float) -> None:
    """One line per request on the agent's stderr (the journal, under systemd)."""
    env = request.env
    sys.stderr.write(
        f"{env.get('CNI_COMMAND', '?')} container={env.get('CNI_CONTAINERID', '')}"
        f" ifname={env.get('CNI_IFNAME', '')} exit={response.exit_code}"
        f" {seconds * 1000:.1f}ms\n"
    )
    sys.stderr.flush()


def _decoding_error(text: str) -> Answer:
    error = DecodingFailure("the agent could not read the request", text)
    return Answer(stdout=error.to_json("1.1.0") + "\n", exit_code=1)


class _Handler(socketserver.BaseRequestHandler):
    server: AgentServer

    def handle(self) -> None:
        sock: socket.socket = self.request
        if not self.server.peer_allowed(sock):
            with contextlib.suppress(OSError):
                sock.sendall(encode_refusal("only root may use the agent"))
            return
        # The front sends its request as soon as it is connected: a caller that sends
        # nothing (or half a frame) must not hold a thread forever.
        sock.settimeout(REQUEST_READ_TIMEOUT_S)
        try:
            request = AgentRequest.decode(read_frame(sock))
        except ProtocolError as exc:
            reply = encode_answer(_decoding_error(str(exc)))
        except OSError as exc:  # timed out, or reset by the caller
            sys.stderr.write(f"dropped a connection before a whole request arrived: {exc}\n")
            sys.stderr.flush()
            return
        else:
            sock.settimeout(None)
            answer = serve_request(
                request, self.server.own_netns, self.server.run, self.server.locks
            )
            refused = "the caller is in another network namespace"
            reply = encode_refusal(refused) if answer is None else encode_answer(answer)
        with contextlib.suppress(OSError):
            sock.sendall(reply)


class AgentServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    allow_reuse_address = False
    # A burst of container starts must queue in the kernel, not time out into one-shot runs.
    request_queue_size = 512

    def __init__(self, path: str, run: Handler) -> None:
        self.run = run
        self.locks = NetworkLocks()
        self.own_netns = netns_identity()
        self.path = path
        _prepare_socket_path(path)
        old_umask = os.umask(0o177)  # the socket is born 0600: no window for other users
        try:
            super().__init__(path, _Handler)
        finally:
            os.umask(old_umask)

    def peer_allowed(self, sock: socket.socket) -> bool:
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size)
        _pid, uid, _gid = _PEERCRED.unpack(creds)
        return uid in (0, os.geteuid())

    def server_close(self) -> None:
        super().server_close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)


def _prepare_socket_path(path: str) -> None:
    """A 0700 directory; a stale socket from a crashed agent is replaced, a live one is not."""
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, mode=0o700, exist_ok=True)
    if not os.path.exists(path):
        return
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except OSError:
        os.unlink(path)  # nobody listens: left by a crash
        return
    finally:
        probe.close()
    raise SystemExit(f"an agent already listens on {path}")


def _warm_up() -> Handler:
    """Import what every request needs, once."""
    from cni_bridge_py.verbs import system  # noqa: F401, PLC0415 - pyroute2 and the firewall
    from cni_bridge_py.verbs.dispatch import dispatch  # noqa: PLC0415

    return dispatch


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="cni-bridge-py agent", description=__doc__)
    parser.add_argument("--socket", default=DEFAULT_SOCKET, help=f"default {DEFAULT_SOCKET}")
    args = parser.parse_args(argv)
    server = AgentServer(args.socket, _warm_up())

    def stop(_signum: int, _frame: object) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    sys.stderr.write(f"cni-bridge-py agent listening on {args.socket}\n")
    sys.stderr.flush()
    try:
        server.serve_forever(poll_interval=0.5)
    finally:
        server.server_close()
    return 0


__all__ = ["AgentServer", "NetworkLocks", "main", "serve_request"]
