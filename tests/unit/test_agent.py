"""The agent's protocol, request serving and the front's forwarding, without root or kernel."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from cni_bridge_py.agent import client as agent_client
from cni_bridge_py.agent import server as agent
from cni_bridge_py.agent.protocol import (
    AgentRequest,
    ProtocolError,
    encode_answer,
    netns_identity,
    read_frame,
)
from cni_bridge_py.agent.server import NetworkLocks, serve_request
from cni_bridge_py.answer import Answer
from cni_bridge_py.request import Notes, Request

CONFIG = b'{"cniVersion":"1.0.0","name":"net1","type":"cni-bridge-py"}'
ENV = {
    "CNI_COMMAND": "ADD",
    "CNI_CONTAINERID": "c1",
    "CNI_NETNS": "/var/run/netns/x",
    "CNI_IFNAME": "eth0",
    "CNI_PATH": "/opt/cni/bin",
}


def pair() -> tuple[socket.socket, socket.socket]:
    return socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)


def test_request_round_trips_through_a_frame() -> None:
    a, b = pair()
    with a, b:
        a.sendall(AgentRequest(ENV, b"\x00stdin\xff", [1, 2]).encode())
        decoded = AgentRequest.decode(read_frame(b))
    assert decoded == AgentRequest(ENV, b"\x00stdin\xff", [1, 2])


@pytest.mark.parametrize(
    "body",
    [
        {"version": 2, "env": {}, "stdin": "", "netns": [1, 2]},
        {"version": 1, "env": {"A": 1}, "stdin": "", "netns": [1, 2]},
        {"version": 1, "env": {}, "stdin": "not base64!", "netns": [1, 2]},
        {"version": 1, "env": {}},
    ],
)
def test_malformed_requests_are_protocol_errors(body: dict[str, object]) -> None:
    with pytest.raises(ProtocolError):
        AgentRequest.decode(body)


def test_oversized_and_truncated_frames_are_refused() -> None:
    a, b = pair()
    with a, b:
        a.sendall((1000).to_bytes(4, "big"))
        with pytest.raises(ProtocolError, match="limit"):
            read_frame(b, limit=10)
    a, b = pair()
    with b:
        a.sendall((10).to_bytes(4, "big") + b"{}")
        a.close()
        with pytest.raises(ProtocolError, match="closed"):
            read_frame(b)


def test_serve_request_runs_the_same_front_and_locks_per_network() -> None:
    seen: list[str] = []
    locks = NetworkLocks()

    def run(request: Request, notes: Notes) -> str:
        assert locks.for_network("net1").locked()
        seen.append(request.command)
        return "result"

    reply = serve_request(AgentRequest(ENV, CONFIG, [7, 8]), [7, 8], run, locks)
    assert reply == Answer(stdout="result")
    assert seen == ["ADD"]
    assert not locks.for_network("net1").locked()


def test_serve_request_refuses_another_namespace_and_answers_errors_as_cni_errors() -> None:
    def run(request: Request, notes: Notes) -> str:
        raise AssertionError("must not run")

    locks = NetworkLocks()
    assert serve_request(AgentRequest(ENV, CONFIG, [1, 1]), [2, 2], run, locks) is None
    bad = serve_request(AgentRequest(ENV, b"{", [2, 2]), [2, 2], run, locks)
    assert bad is not None
    assert bad.exit_code == 1 and json.loads(bad.stdout)["code"] == 6


def test_forward_without_an_agent_is_none(tmp_path: Path) -> None:
    assert agent_client.forward({"CNI_BRIDGE_PY_AGENT": str(tmp_path / "none")}, b"") is None
    assert agent_client.forward({"CNI_BRIDGE_PY_AGENT": "off"}, b"") is None
    stale = tmp_path / "stale.sock"
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(stale))
    listener.close()  # the file stays, nobody listens: a crashed agent
    assert agent_client.forward({"CNI_BRIDGE_PY_AGENT": str(stale)}, b"") is None


@pytest.mark.parametrize("relative", [{"CNI_NETNS": "netns/red"}, {"CNI_PATH": "/opt/cni/bin:bin"}])
def test_relative_paths_are_served_here_not_by_the_agent(
    fake_agent: Path, relative: dict[str, str]
) -> None:
    """The agent's working directory is not the caller's: a relative path names another file
    there, so the front does not forward such a request."""
    env = {**ENV, "CNI_BRIDGE_PY_AGENT": str(fake_agent)}
    assert agent_client.forward(env, CONFIG) is not None
    assert agent_client.forward({**env, **relative}, CONFIG) is None


@pytest.fixture
def fake_agent(tmp_path: Path) -> Iterator[Path]:
    """Answers every request with a canned result, as the agent would."""
    path = tmp_path / "agent.sock"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    server.listen(8)

    def loop() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                request = AgentRequest.decode(read_frame(conn))
                assert request.netns == netns_identity()
                conn.sendall(encode_answer(Answer(stdout='{"from":"agent"}')))

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    yield path
    server.close()


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
    env = {"CNI_BRIDGE_PY_AGENT": str(path)}
    lost_add = agent_client.forward({**env, "CNI_COMMAND": "ADD"}, b"{}")
    assert lost_add is not None and json.loads(lost_add.stdout)["code"] == 11
    assert agent_client.forward({**env, "CNI_COMMAND": "DEL"}, b"{}") is None
    thread.join(5)
    server.close()


def test_the_front_forwards_without_loading_pyroute2(fake_agent: Path) -> None:
    script = (
        "import sys\n"
        "from cni_bridge_py.cli import plugin_main\n"
        "code = plugin_main()\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('pyroute2', 'iptc')"
        " or m in ('subprocess', 'cni_bridge_py.verbs'))\n"
        "print('\\nLOADED', loaded, code)\n"
    )
    env = {**ENV, "CNI_BRIDGE_PY_AGENT": str(fake_agent), "PATH": os.environ.get("PATH", "")}
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


def test_a_caller_that_sends_nothing_is_dropped_and_others_are_served(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A connection that never sends its request does not keep a thread forever."""
    monkeypatch.setattr(agent, "REQUEST_READ_TIMEOUT_S", 0.2)
    path = str(tmp_path / "run" / "agent.sock")
    server = agent.AgentServer(path, lambda request, notes: "served")
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        with socket.socket(socket.AF_UNIX) as idle:
            idle.settimeout(5)
            idle.connect(server.path)
            assert idle.recv(1) == b""  # closed by the agent once the read timed out
        env = {"CNI_BRIDGE_PY_AGENT": server.path}
        answer = agent_client.forward({**env, **ENV}, CONFIG)
        assert answer is not None and answer.stdout == "served"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
