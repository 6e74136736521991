"""The listening socket systemd passes on socket activation (sd_listen_fds(3)).

systemd (or `systemd-socket-activate`) binds the socket, starts the agent on the first
connection and hands the socket over as fd 3 with LISTEN_FDS=1 and LISTEN_PID=<the agent's
pid>. The connection that started the agent waits in the socket's queue meanwhile, so the
first plugin call is served by the agent it started.
"""

from __future__ import annotations

import os
import socket
import stat
from collections.abc import MutableMapping

LISTEN_FDS_START = 3  # SD_LISTEN_FDS_START
_VARIABLES = ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES")


class ActivationError(Exception):
    """systemd passed something the agent cannot serve on."""


def inherited_listener(
    environ: MutableMapping[str, str] | None = None,
    pid: int | None = None,
    first_fd: int = LISTEN_FDS_START,
) -> socket.socket | None:
    """The passed listening socket, or None when nothing was passed to this process.
    (`environ`, `pid` and `first_fd` are this process's unless a test says otherwise.)

    The variables are removed either way, as sd_listen_fds(unset_environment=1) does: the
    processes the agent starts (iptables, IPAM plugins) must not take them for their own."""
    env = os.environ if environ is None else environ
    values = {name: env.pop(name, None) for name in _VARIABLES}
    if values["LISTEN_FDS"] is None:
        return None
    # Set by the process that forked us for someone else (our parent's own activation).
    if values["LISTEN_PID"] != str(os.getpid() if pid is None else pid):
        return None
    if values["LISTEN_FDS"] != "1":
        raise ActivationError(
            f"LISTEN_FDS={values['LISTEN_FDS']}: the agent serves exactly one socket"
        )
    return _listener(first_fd)


def _listener(fd: int) -> socket.socket:
    try:
        mode = os.fstat(fd).st_mode
    except OSError as exc:
        raise ActivationError(f"fd {fd} was passed but is not open: {exc}") from exc
    if not stat.S_ISSOCK(mode):
        raise ActivationError(f"fd {fd} is not a socket")
    sock = socket.socket(fileno=fd)  # family and type are read from the socket itself
    if sock.family != socket.AF_UNIX or sock.type != socket.SOCK_STREAM:
        sock.detach()  # not ours to close: leave it as it came
        raise ActivationError(f"fd {fd} is {sock.family!r}/{sock.type!r}, not a unix stream socket")
    if not sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
        sock.detach()
        raise ActivationError(f"fd {fd} is a unix stream socket that is not listening")
    # The commands the agent runs must not hold the socket open after it exits.
    sock.set_inheritable(False)
    sock.setblocking(True)
    return sock


def socket_path(sock: socket.socket) -> str:
    """The path the socket is bound to ("" for an abstract or unnamed one)."""
    name = sock.getsockname()
    return name if isinstance(name, str) and not name.startswith("\0") else ""


def open_to_others(path: str) -> bool:
    """Whether users other than root could connect: systemd's SocketMode=0600 says no."""
    try:
        return bool(stat.S_IMODE(os.stat(path).st_mode) & 0o077)
    except OSError:
        return False
