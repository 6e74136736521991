"""The resident agent: `cni-bridge-py agent [--socket PATH]`.

It runs the very same request handling as the one-shot plugin (front.handle and the verbs),
but with pyroute2 and the firewall modules already imported, so a request skips the ~150 ms
of imports. Requests run concurrently, also those of one network: they hold only the locks
the reference holds (the store's flock around allocation, the firewall's lock around the rule
write), and a bridge or address two requests create at once is "already there" (EEXIST).

Only root (SO_PEERCRED) may talk to it, over a 0600 socket in a 0700 directory, and it acts
only for callers in its own network namespace: a front elsewhere gets a refusal and does the
work itself. All state lives in the kernel and the store, so a crash loses nothing. Under
systemd the socket is passed in (agent.activation) and the first plugin call starts the agent.

One process serves at most one CPU's worth of Python (the GIL), so the agent forks workers
(agent.workers) that accept on the same socket: the kernel hands each connection to one of
them. They share nothing but the kernel and the store, which is why a request may not rely on
another's memory (a DEL's pending veth deletion renames the interface out of the way first).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import struct
import sys
import time
from collections.abc import Callable

from cni_bridge_py.agent.acceptors import Acceptors
from cni_bridge_py.agent.activation import (
    ActivationError,
    inherited_listener,
    open_to_others,
    socket_path,
)
from cni_bridge_py.agent.background import BackgroundWork
from cni_bridge_py.agent.protocol import (
    DEFAULT_SOCKET,
    AgentRequest,
    OtherVersion,
    Oversized,
    ProtocolError,
    decode_request,
    encode_answer,
    encode_refusal,
    netns_identity,
    read_frame,
)
from cni_bridge_py.agent.workers import Workers, default_count
from cni_bridge_py.answer import Answer
from cni_bridge_py.errors import DecodingFailure
from cni_bridge_py.front import handle
from cni_bridge_py.log import AGENT_LOG_ENV, agent_line, append_line
from cni_bridge_py.request import Handler

_PEERCRED = struct.Struct("3i")  # pid, uid, gid
# How long a caller may take to send its whole request (the front sends it at once).
REQUEST_READ_TIMEOUT_S = 10.0
# On SIGTERM, requests in flight get this long to finish before the process exits.
DRAIN_TIMEOUT_S = 10.0
# A burst of container starts must queue in the kernel, not fail over to one-shot runs.
BACKLOG = 512


def serve_request(request: AgentRequest, own_netns: tuple[int, int], run: Handler) -> Answer | None:
    """One request, as the one-shot plugin would answer it; None: not ours to serve (the
    caller is in another network namespace)."""
    if request.netns != own_netns:
        return None
    return handle(request.text_env(), request.stdin, run)


def _decoding_error(text: str) -> Answer:
    error = DecodingFailure("the agent could not read the request", text)
    return Answer(stdout=error.to_json("1.1.0") + "\n", exit_code=1)


def _encode(answer: Answer) -> bytes:
    return encode_answer(answer.exit_code, _bytes(answer.stdout), _bytes(answer.stderr))


def _bytes(text: str) -> bytes:
    """As the one-shot front's stdout would write it (a lone surrogate cannot go out whole)."""
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace")


class AgentServer:
    """The listening socket and the threads that serve it."""

    def __init__(self, listener: socket.socket, run: Handler, owned_path: str | None) -> None:
        """`owned_path`: the socket file this process bound and removes on close; None for
        a socket systemd passed (systemd keeps it, and its queue, for the next start)."""
        self.listener = listener
        self.run = run
        self.owned_path = owned_path
        self.path = owned_path or socket_path(listener)
        self.own_netns = netns_identity()
        # The agent's own JSON line per request goes there too ("" = only the stderr line).
        self.log_path = os.environ.get(AGENT_LOG_ENV, "")
        self.stopping = False
        self.acceptors = Acceptors(listener, self.serve_connection)

    @classmethod
    def bind(cls, path: str, run: Handler) -> AgentServer:
        _prepare_socket_path(path)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old_umask = os.umask(0o177)  # the socket is born 0600: no window for other users
        try:
            listener.bind(path)
        finally:
            os.umask(old_umask)
        listener.listen(BACKLOG)
        return cls(listener, run, owned_path=path)

    def start(self) -> None:
        self.acceptors.start()

    def serve_connection(self, conn: socket.socket, accepted: float) -> None:
        if not self.peer_allowed(conn):
            _send(conn, encode_refusal("only root may use the agent"))
            return
        if self.stopping:
            _send(conn, encode_refusal("the agent is stopping"))
            return
        # The front sends its request as soon as it is connected: a caller that sends
        # nothing (or half a frame) must not hold a thread forever.
        conn.settimeout(REQUEST_READ_TIMEOUT_S)
        try:
            request = decode_request(read_frame(conn))
        except (OtherVersion, Oversized) as exc:
            _send(conn, encode_refusal(str(exc)))  # nothing done: the caller runs it itself
            return
        except ProtocolError as exc:
            _send(conn, _encode(_decoding_error(str(exc))))
            return
        except OSError as exc:  # timed out, or reset by the caller
            _log(f"dropped a connection before a whole request arrived: {exc}")
            return
        conn.settimeout(None)
        answer = serve_request(request, self.own_netns, self.run)
        if answer is None:
            _send(conn, encode_refusal("the caller is in another network namespace"))
            return
        reply = _encode(answer)
        seconds = time.monotonic() - accepted
        _log_request(request, answer, seconds)
        if self.log_path:
            self.write_log(request, answer, seconds)
        _send(conn, reply)

    def write_log(self, request: AgentRequest, answer: Answer, seconds: float) -> None:
        line = agent_line(request.env, request.stdin, answer.exit_code, answer.stdout, seconds)
        if problem := append_line(self.log_path, line):
            _log(f"warning: request log not written: {problem}")

    def peer_allowed(self, conn: socket.socket) -> bool:
        creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size)
        _pid, uid, _gid = _PEERCRED.unpack(creds)
        return uid in (0, os.geteuid())

    def close(self, drain: float = DRAIN_TIMEOUT_S) -> None:
        """Refuse new requests, let those in flight finish (up to `drain` seconds), and remove
        the socket file this process bound. The threads blocked in accept() end with the
        process: shutting the socket down would take a passed socket from systemd too."""
        self.stopping = True
        self.acceptors.wait_idle(drain)
        if self.owned_path is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.owned_path)
            self.listener.close()


def _send(conn: socket.socket, reply: bytes) -> None:
    with contextlib.suppress(OSError):
        conn.sendall(reply)


def _log_request(request: AgentRequest, answer: Answer, seconds: float) -> None:
    """One line per request on the agent's stderr (the journal, under systemd): the time is
    the agent's whole, from accept to the reply."""
    env = request.env
    _log(
        f"{_text(env.get(b'CNI_COMMAND', b'?'))} container={_text(env.get(b'CNI_CONTAINERID'))}"
        f" ifname={_text(env.get(b'CNI_IFNAME'))} exit={answer.exit_code}"
        f" {seconds * 1000:.2f}ms"
    )


def _text(value: bytes | None) -> str:
    return (value or b"").decode("utf-8", "backslashreplace")


def _log(line: str) -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


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


def _warm_up(background: BackgroundWork) -> Handler:
    """Import what every request needs, once; slow work a request leaves (a DEL's veth
    deletion) goes to `background`; lookups of the IPAM data dirs use a copy that inotify
    keeps current (made in each worker on its first request); configs parsed once are kept
    (each worker its own), and so is where the host's tools are, until their directories
    change; the workers share one ledger of the nf_tables rules they wrote."""
    from cni_bridge_py.config_memo import ParsedConfigs  # noqa: PLC0415
    from cni_bridge_py.firewall.nft_netlink import share_ledger  # noqa: PLC0415
    from cni_bridge_py.ipam.dirwatch import WatchedDirs  # noqa: PLC0415
    from cni_bridge_py.ipam.disk import watched_entry  # noqa: PLC0415
    from cni_bridge_py.lookup_memo import KeptLookups  # noqa: PLC0415
    from cni_bridge_py.verbs import system  # noqa: F401, PLC0415 - pyroute2 and the firewall
    from cni_bridge_py.verbs.dispatch import dispatch_with  # noqa: PLC0415

    share_ledger()  # the workers write one namespace's rules: one ledger of what they wrote
    return dispatch_with(background, WatchedDirs(watched_entry), ParsedConfigs(), KeptLookups())


class _Stop(BaseException):
    """Raised by the SIGTERM/SIGINT handler in the main thread, which only waits for it."""


def _stop_handler(agent_pid: int) -> Callable[[int, object], None]:
    def stop(signum: int, _frame: object) -> None:
        if os.getpid() != agent_pid:
            # A fork of the agent (a library's helper process) that its parent ends with
            # SIGTERM: it must end as without our handler, not unwind the request it forked in.
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        raise _Stop

    return stop


def _wait_for_signals(each: Callable[[], None] | None = None) -> None:
    """Block the main thread until a handler raises, calling `each()` after every signal.
    signal.pause() is not enough: the kernel may deliver SIGTERM to any thread, and only the
    main thread runs Python's handlers; the wakeup fd is written whichever thread took it."""
    readable, writable = os.pipe()
    os.set_blocking(writable, False)
    signal.set_wakeup_fd(writable)
    while True:
        os.read(readable, 64)  # then the pending handler runs here, in the main thread
        if each is not None:
            each()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="cni-bridge-py agent", description=__doc__)
    parser.add_argument(
        "--socket",
        default=DEFAULT_SOCKET,
        help=f"default {DEFAULT_SOCKET}; unused when systemd passes the socket",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=default_count(),
        help="processes serving requests (default: one per CPU, at most 4)",
    )
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    try:
        passed = inherited_listener()
    except ActivationError as exc:
        raise SystemExit(f"cni-bridge-py agent: {exc}") from exc
    stop = _stop_handler(os.getpid())
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    server: AgentServer | None = None
    try:
        background = BackgroundWork()
        run = _warm_up(background)
        if passed is None:
            server = AgentServer.bind(args.socket, run)
        else:
            server = AgentServer(passed, run, owned_path=None)
            if open_to_others(server.path):
                _log(f"warning: {server.path} is open to other users (SocketMode=0600 is meant)")
        how = "passed by systemd" if passed is not None else "bound"
        _log(f"cni-bridge-py agent listening on {server.path} ({how}); {args.workers} processes")
        if args.workers == 1:
            _serve(server, background)
        else:
            _supervise(server, args.workers, background)
    except _Stop:  # before serving began
        if server is not None:
            server.close(drain=0)
    return 0


def _serve(server: AgentServer, background: BackgroundWork) -> None:
    """Serve in this process until SIGTERM, then finish what is in flight."""
    try:
        server.start()
        _wait_for_signals()
    except _Stop:
        # A second signal ends the process at once instead of waiting for the drain.
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
    finally:
        server.close()
        background.drain()  # a DEL answered must not leave its veth to the next start


def _supervise(server: AgentServer, count: int, background: BackgroundWork) -> None:
    """Fork `count` workers serving `server`, replace any that dies, stop them on SIGTERM.
    The socket file (when this process bound it) goes last, after every worker ended."""
    owned_path, server.owned_path = server.owned_path, None  # no worker removes it

    def serve_as_worker() -> None:
        stop = _stop_handler(os.getpid())
        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        _serve(server, background)

    workers = Workers(serve_as_worker, _log)
    # A handler of its own, so that a worker's end writes the wakeup fd.
    signal.signal(signal.SIGCHLD, lambda _signum, _frame: None)
    try:
        workers.start(count)
        _wait_for_signals(each=workers.replace_ended)
    except _Stop:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
    finally:
        workers.stop(DRAIN_TIMEOUT_S + 1.0)
        if owned_path is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(owned_path)


__all__ = ["AgentServer", "main", "serve_request"]
