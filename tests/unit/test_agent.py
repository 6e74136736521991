"""The agent's request serving and the front's forwarding, without root or kernel."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from cni_bridge_py.agent import client as agent_client
from cni_bridge_py.agent import server as agent
from cni_bridge_py.agent.acceptors import Acceptors
from cni_bridge_py.agent.protocol import (
    MAX_FRAME,
    VERSION,
    AgentRequest,
    netns_identity,
    read_frame,
)
from cni_bridge_py.agent.server import AgentServer, serve_request
from cni_bridge_py.answer import Answer
from cni_bridge_py.request import Handler, Notes, Request
from tests.doubles.agent import FakeAgent

CONFIG = b'{"cniVersion":"1.0.0","name":"net1","type":"cni-bridge-py"}'
ENV = {
    "CNI_COMMAND": "ADD",
    "CNI_CONTAINERID": "c1",
    "CNI_NETNS": "/var/run/netns/x",
    "CNI_IFNAME": "eth0",
    "CNI_PATH": "/opt/cni/bin",
}
BENV = {k.encode(): v.encode() for k, v in ENV.items()}
HERE = netns_identity()


def forward(
    path: Path | str, stdin: bytes = CONFIG, env: dict[str, str] | None = None
) -> tuple[int, bytes, bytes] | None:
    """The front's hand-over, as cli does it, for a caller in this namespace."""
    full = {**BENV, **{k.encode(): v.encode() for k, v in (env or {}).items()}}
    return agent_client.forward(str(path), full, stdin, HERE)


@contextmanager
def serving(tmp_path: Path, run: Handler) -> Iterator[AgentServer]:
    server = AgentServer.bind(str(tmp_path / "run" / "agent.sock"), run)
    server.start()
    try:
        yield server
    finally:
        server.close(drain=5)


def test_serve_request_runs_the_same_front_on_the_callers_environment() -> None:
    seen: list[tuple[str, str]] = []

    def run(request: Request, notes: Notes) -> str:
        seen.append((request.command, request.container_id))
        return "result"

    reply = serve_request(AgentRequest(BENV, CONFIG, (7, 8)), (7, 8), run)
    assert reply == Answer(stdout="result")
    assert seen == [("ADD", "c1")]


def test_serve_request_refuses_another_namespace_and_answers_errors_as_cni_errors() -> None:
    def run(request: Request, notes: Notes) -> str:
        raise AssertionError("must not run")

    assert serve_request(AgentRequest(BENV, CONFIG, (1, 1)), (2, 2), run) is None
    bad = serve_request(AgentRequest(BENV, b"{", (2, 2)), (2, 2), run)
    assert bad is not None
    assert bad.exit_code == 1 and json.loads(bad.stdout)["code"] == 6


def test_requests_of_one_network_run_at_the_same_time(tmp_path: Path) -> None:
    """No per-network lock: two ADDs of net1 are inside the verbs together (each waits for
    the other at the barrier; serialised, the first would time out there)."""
    both_inside = threading.Barrier(2, timeout=10)

    def run(request: Request, notes: Notes) -> str:
        both_inside.wait()
        return f'{{"container":"{request.container_id}"}}'

    with serving(tmp_path, run) as server:
        replies: dict[str, tuple[int, bytes, bytes] | None] = {}

        def add(container: str) -> None:
            replies[container] = forward(server.path, env={"CNI_CONTAINERID": container})

        threads = [threading.Thread(target=add, args=(c,)) for c in ("red", "blue")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(20)
    assert replies == {
        "red": (0, b'{"container":"red"}', b""),
        "blue": (0, b'{"container":"blue"}', b""),
    }


def test_forward_without_an_agent_is_none(tmp_path: Path) -> None:
    assert agent_client.listening_socket({b"CNI_BRIDGE_PY_AGENT": b"off"}) is None
    assert agent_client.listening_socket({b"CNI_BRIDGE_PY_AGENT": b""}) is None
    missing = str(tmp_path / "none")
    assert agent_client.listening_socket({b"CNI_BRIDGE_PY_AGENT": missing.encode()}) is None
    assert forward(missing) is None
    stale = tmp_path / "stale.sock"
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(stale))
    listener.close()  # the file stays, nobody listens: a crashed agent
    assert agent_client.listening_socket({b"CNI_BRIDGE_PY_AGENT": bytes(stale)}) == str(stale)
    assert forward(stale) is None


@pytest.fixture
def fake_agent(tmp_path: Path) -> Iterator[tuple[Path, list[AgentRequest]]]:
    with FakeAgent(tmp_path / "agent.sock") as fake:
        yield fake.path, fake.seen


@pytest.mark.parametrize("relative", [{"CNI_NETNS": "netns/red"}, {"CNI_PATH": "/opt/cni/bin:bin"}])
def test_relative_paths_are_served_here_not_by_the_agent(
    fake_agent: tuple[Path, list[AgentRequest]], relative: dict[str, str]
) -> None:
    """The agent's working directory is not the caller's: a relative path names another file
    there, so the front does not forward such a request."""
    path, seen = fake_agent
    assert forward(path) == (0, b'{"from":"agent"}', b"")
    assert forward(path, env=relative) is None
    assert len(seen) == 1


def test_a_request_over_the_frame_limit_is_served_here_without_connecting(
    fake_agent: tuple[Path, list[AgentRequest]],
) -> None:
    path, seen = fake_agent
    assert forward(path, stdin=b" " * MAX_FRAME) is None
    assert forward(path) is not None
    assert len(seen) == 1  # only the second one reached the agent


def test_the_front_hands_over_exactly_what_it_got(
    fake_agent: tuple[Path, list[AgentRequest]],
) -> None:
    path, seen = fake_agent
    forward(path, stdin=b"\x00raw\xff", env={"ODD": "caf\u00e9"})
    assert seen == [AgentRequest({**BENV, b"ODD": "café".encode()}, b"\x00raw\xff", HERE)]


def test_an_agent_that_dies_mid_add_is_try_again_but_mid_del_is_redone_here(
    tmp_path: Path,
) -> None:
    path = tmp_path / "dying.sock"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    server.listen(8)

    def die_after_reading() -> None:
        for _ in range(2):
            conn, _ = server.accept()
            read_frame(conn)
            conn.close()

    thread = threading.Thread(target=die_after_reading, daemon=True)
    thread.start()
    lost_add = forward(path, env={"CNI_COMMAND": "ADD"})
    assert lost_add is not None and lost_add[0] == 1
    assert json.loads(lost_add[1])["code"] == 11
    assert forward(path, env={"CNI_COMMAND": "DEL"}) is None
    thread.join(5)
    server.close()


def test_an_agent_gone_before_reading_the_request_leaves_even_an_add_to_the_front(
    tmp_path: Path,
) -> None:
    """Never accepted (a socket-activated agent that could not start), or closed with the
    request unread: the agent did nothing, so the front serves the ADD itself."""
    path = tmp_path / "gone.sock"
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(path))
    listener.listen(8)

    def accept_and_close_unread() -> None:
        conn, _ = listener.accept()
        conn.close()

    thread = threading.Thread(target=accept_and_close_unread, daemon=True)
    thread.start()
    assert forward(path, env={"CNI_COMMAND": "ADD"}) is None
    thread.join(5)
    never_accepted = threading.Timer(0.3, listener.close)
    never_accepted.start()
    assert forward(path, env={"CNI_COMMAND": "ADD"}) is None
    never_accepted.join()


def test_an_agent_of_another_protocol_version_leaves_the_request_to_the_front(
    tmp_path: Path,
) -> None:
    """A front newer than the running agent (upgraded code, agent not restarted): the agent
    refuses, and the front serves the request itself."""
    with serving(tmp_path, lambda request, notes: "served") as server:
        assert forward(server.path) == (0, b"served", b"")
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(10)
            s.connect(server.path)
            s.sendall((3).to_bytes(4, "big") + bytes([VERSION + 1, 0, 0]))
            reply = read_frame(s)
        assert reply[:2] == bytes([VERSION, 1]) and b"version" in reply  # a refusal


def test_a_caller_that_sends_nothing_is_dropped_and_others_are_served(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A connection that never sends its request does not keep a thread forever."""
    monkeypatch.setattr(agent, "REQUEST_READ_TIMEOUT_S", 0.2)
    with serving(tmp_path, lambda request, notes: "served") as server:
        with socket.socket(socket.AF_UNIX) as idle:
            idle.settimeout(5)
            idle.connect(server.path)
            assert idle.recv(1) == b""  # closed by the agent once the read timed out
        assert forward(server.path) == (0, b"served", b"")


def test_stopping_finishes_requests_in_flight_and_refuses_new_ones(tmp_path: Path) -> None:
    inside, release = threading.Event(), threading.Event()

    def run(request: Request, notes: Notes) -> str:
        inside.set()
        release.wait(10)
        return "finished"

    server = AgentServer.bind(str(tmp_path / "run" / "agent.sock"), run)
    server.start()
    replies: list[tuple[int, bytes, bytes] | None] = []
    caller = threading.Thread(target=lambda: replies.append(forward(server.path)))
    caller.start()
    assert inside.wait(10)
    closing = threading.Thread(target=server.close, kwargs={"drain": 10})
    closing.start()
    time.sleep(0.2)
    assert closing.is_alive()  # waiting for the request in flight
    assert forward(server.path) is None  # a new request is refused: the front serves it
    release.set()
    closing.join(10)
    caller.join(10)
    assert replies == [(0, b"finished", b"")]
    assert not os.path.exists(server.path)  # the socket this process bound is removed


def test_a_failing_connection_does_not_stop_the_acceptors() -> None:
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind("\0cbp-acceptors-test-" + str(os.getpid()))
    listener.listen(8)
    served: list[bytes] = []

    def serve(conn: socket.socket, accepted: float) -> None:
        data = conn.recv(16)
        if data == b"boom":
            raise RuntimeError("a request's bug")
        served.append(data)
        conn.sendall(b"ok")

    acceptors = Acceptors(listener, serve)
    acceptors.start()
    try:
        for payload in (b"boom", b"after", b"again"):
            with socket.socket(socket.AF_UNIX) as s:
                s.settimeout(10)
                s.connect(listener.getsockname())
                s.sendall(payload)
                s.recv(2)
        assert served == [b"after", b"again"]
        assert acceptors.wait_idle(10)
    finally:
        listener.close()


def test_the_front_forwards_without_loading_pyroute2(
    fake_agent: tuple[Path, list[AgentRequest]],
) -> None:
    path, _ = fake_agent
    script = (
        "import sys\n"
        "from cni_bridge_py.cli import plugin_main\n"
        "code = plugin_main()\n"
        "sys.stdout.flush()\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('pyroute2', 'iptc')"
        " or m in ('subprocess', 'cni_bridge_py.verbs', 'json', 'struct'))\n"
        "print('\\nLOADED', loaded, code)\n"
    )
    env = {**ENV, "CNI_BRIDGE_PY_AGENT": str(path), "PATH": os.environ.get("PATH", "")}
    proc = subprocess.run(
        [sys.executable, "-c", script],
        input=CONFIG,
        capture_output=True,
        env=env,
        check=False,
        timeout=60,
    )
    out = proc.stdout.decode()
    assert out.startswith('{"from":"agent"}'), out + proc.stderr.decode()
    assert "LOADED [] 0" in out


def test_sigterm_stops_the_agent_but_a_fork_of_it_dies_as_without_a_handler() -> None:
    """A library that forks the agent may end the fork with SIGTERM: the fork
    must die there, not raise the agent's stop into the request it was forked from (which
    would leave its parent waiting for it)."""
    stop = agent._stop_handler(os.getpid())
    with pytest.raises(agent._Stop):
        stop(signal.SIGTERM, None)
    pid = os.fork()
    if pid == 0:  # the fork: only os._exit may leave it
        try:
            signal.signal(signal.SIGTERM, stop)
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # the handler runs at the next instruction; never gets here
        finally:
            os._exit(7)
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGTERM
