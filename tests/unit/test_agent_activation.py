"""Socket activation: the agent takes the listening socket systemd passes (LISTEN_FDS,
LISTEN_PID, fd 3) instead of binding its own, and the call that started it is served."""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from cni_bridge_py.agent.activation import (
    ActivationError,
    inherited_listener,
    open_to_others,
    socket_path,
)
from cni_bridge_py.agent.protocol import decode_reply, encode_request, netns_identity, read_frame

ROOT = Path(__file__).resolve().parents[2]
PID = 4242  # the pid a test's LISTEN_PID names as "this process"
ERROR_ENV = {
    b"CNI_COMMAND": b"ADD",
    b"CNI_CONTAINERID": b"c1",
    b"CNI_NETNS": b"/var/run/netns/x",
    b"CNI_IFNAME": b"eth0",
    b"CNI_PATH": b"/opt/cni/bin",
}


def passed(environ: dict[str, str], fd: int) -> socket.socket | None:
    return inherited_listener(environ, pid=PID, first_fd=fd)


@pytest.fixture
def listening(tmp_path: Path) -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(tmp_path / "a.sock"))
    sock.listen(8)
    with sock:
        yield sock


def test_nothing_passed_is_none() -> None:
    environ = {"PATH": "/bin"}
    assert passed(environ, 0) is None
    assert environ == {"PATH": "/bin"}


def test_sockets_passed_to_another_process_are_not_ours_and_the_variables_go(
    listening: socket.socket,
) -> None:
    """LISTEN_PID names the process systemd started; a child of it must not take them, nor
    pass them on to the commands the agent runs."""
    environ = {"LISTEN_PID": str(PID + 1), "LISTEN_FDS": "1", "LISTEN_FDNAMES": "x", "A": "b"}
    assert passed(environ, listening.fileno()) is None
    assert environ == {"A": "b"}


def test_a_passed_listening_unix_stream_socket_is_served(listening: socket.socket) -> None:
    environ = {"LISTEN_PID": str(PID), "LISTEN_FDS": "1"}
    taken = passed(environ, os.dup(listening.fileno()))
    assert taken is not None and environ == {}
    with taken:
        assert not taken.get_inheritable()  # the commands the agent runs do not hold it
        assert socket_path(taken) == listening.getsockname()
        with socket.socket(socket.AF_UNIX) as caller:
            caller.connect(listening.getsockname())
            conn, _ = taken.accept()
            conn.close()


def test_more_than_one_socket_is_refused(listening: socket.socket) -> None:
    with pytest.raises(ActivationError, match="exactly one"):
        passed({"LISTEN_PID": str(PID), "LISTEN_FDS": "2"}, listening.fileno())


@pytest.mark.parametrize("kind", ["datagram", "not-listening", "tcp", "file"])
def test_anything_but_a_listening_unix_stream_socket_is_refused(kind: str, tmp_path: Path) -> None:
    if kind == "datagram":
        thing: socket.socket | None = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    elif kind == "not-listening":
        thing = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    elif kind == "tcp":
        thing = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        thing.bind(("127.0.0.1", 0))
        thing.listen(1)
    else:
        thing = None
    fd = thing.fileno() if thing is not None else os.open(tmp_path / "f", os.O_CREAT | os.O_RDWR)
    try:
        with pytest.raises(ActivationError):
            passed({"LISTEN_PID": str(PID), "LISTEN_FDS": "1"}, fd)
        os.fstat(fd)  # left open, as it came
    finally:
        if thing is not None:
            thing.close()
        else:
            os.close(fd)


def test_a_socket_open_to_other_users_is_noticed(listening: socket.socket) -> None:
    path = listening.getsockname()
    os.chmod(path, 0o600)
    assert not open_to_others(path)
    os.chmod(path, 0o666)
    assert open_to_others(path)


def test_the_agent_started_on_a_passed_socket_serves_the_call_that_started_it(
    listening: socket.socket,
) -> None:
    """What systemd does: the socket exists first; the call that connects waits in its queue
    while the agent starts (here it connects even before the agent process exists), the agent
    finds it as fd 3 with LISTEN_PID set to its own pid, and on SIGTERM it leaves the socket
    file to systemd."""
    path = listening.getsockname()
    os.chmod(path, 0o600)
    with socket.socket(socket.AF_UNIX) as first_call:
        first_call.settimeout(60)
        first_call.connect(path)  # queued: nobody accepts yet
        first_call.sendall(encode_request(ERROR_ENV, b"{not json", netns_identity()))
        agent = _activated_agent(listening)
        try:
            reply = decode_reply(read_frame(first_call))
        finally:
            agent.send_signal(signal.SIGTERM)
            log = agent.communicate(timeout=30)[0].decode()
    assert reply is not None and reply[0] == 1, log
    assert json.loads(reply[1])["code"] == 6
    assert agent.returncode == 0, log
    assert f"listening on {path} (passed by systemd)" in log, log
    assert "ADD container=c1" in log
    assert stat.S_ISSOCK(os.stat(path).st_mode)  # systemd's to keep or remove


def _activated_agent(listening: socket.socket) -> subprocess.Popen[bytes]:
    """`python -m cni_bridge_py agent` with the socket as fd 3, LISTEN_FDS=1 and LISTEN_PID
    set by a process that then execs it (same pid), as systemd does between fork and exec;
    --socket names a path it must not bind."""
    exec_activated = (
        "import os, sys; os.dup2(int(sys.argv[1]), 3);"
        " os.environ.update(LISTEN_PID=str(os.getpid()), LISTEN_FDS='1');"
        " os.execv(sys.argv[2], sys.argv[2:])"
    )
    fd = listening.fileno()
    agent = [sys.executable, "-m", "cni_bridge_py", "agent", "--socket", "/nonexistent/a.sock"]
    return subprocess.Popen(
        [sys.executable, "-c", exec_activated, str(fd), *agent],
        pass_fds=(fd,),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
