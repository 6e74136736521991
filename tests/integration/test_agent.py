"""The resident agent: same results as one-shot, concurrent, and never needed for correctness."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import stat
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from cni_bridge_py.agent.protocol import VERSION, decode_reply, read_frame
from cni_bridge_py.firewall.layout import chain_name, masq_comment
from tests.support.agent import SOCKET_ACTIVATE, Agent
from tests.support.netns import Namespace, NamespaceFactory, sh
from tests.support.plugin import Outcome, Plugin, reservations
from tests.support.preconditions import require_root


def agent_in(host: Namespace, launcher: Path, workdir: Path) -> Agent:
    """The agent with its socket straight in `workdir`, a directory the test can open up."""
    return Agent(host, launcher, workdir, socket=workdir / "agent.sock")


@pytest.fixture
def agent(plugin: Plugin, tmp_path: Path) -> Iterator[Agent]:
    with agent_in(plugin.host, plugin.executable, tmp_path) as running:
        yield running


def test_requests_go_through_the_agent_and_change_the_kernel_as_one_shot(
    plugin: Plugin,
    agent: Agent,
    namespaces: NamespaceFactory,
    netconf: dict[str, Any],
    data_dir: Path,
) -> None:
    red = namespaces.new("red")
    env = agent.env()
    result = plugin.run("ADD", netconf, container_id="red", netns=red.path, extra_env=env).ok().json
    assert result["ips"][0]["address"] == "192.168.15.1/24"
    assert red.addresses("eth0") == ["192.168.15.1/24"]
    assert len(plugin.host.nat_rules()) == 4
    check = {**netconf, "prevResult": result}
    plugin.run("CHECK", check, container_id="red", netns=red.path, extra_env=env).ok()
    plugin.run("DEL", netconf, container_id="red", netns=red.path, extra_env=env).ok()
    assert red.link("eth0") is None and plugin.host.nat_rules() == []
    assert reservations(data_dir, netconf["name"]) == {}
    served = agent.served()
    assert [line.split()[0] for line in served] == ["ADD", "CHECK", "DEL"]
    assert all("exit=0" in line for line in served)


def test_errors_through_the_agent_are_byte_for_byte_the_one_shot_answers(
    plugin: Plugin, agent: Agent, namespaces: NamespaceFactory, netconf: dict[str, Any]
) -> None:
    red = namespaces.new("red")
    cases: list[tuple[dict[str, Any] | bytes, str]] = [
        ({**netconf, "mtu": "1500"}, "red"),  # config error: code 7
        (b"{not json", "red"),  # decoding error: code 6
        ({**netconf, "cniVersion": "9.9.9"}, "red"),  # version error: code 1
        (netconf, "bad/id"),  # environment error: code 4
    ]
    for config, container_id in cases:
        via_agent = plugin.run(
            "ADD", config, container_id=container_id, netns=red.path, extra_env=agent.env()
        )
        alone = plugin.run("ADD", config, container_id=container_id, netns=red.path)
        assert via_agent.code == alone.code == 1
        assert via_agent.stdout == alone.stdout
    assert [line.split()[0] for line in agent.served()] == ["ADD"] * len(cases)
    assert plugin.host.links("veth") == [] and red.link("eth0") is None
    # VERSION is answered by the front alone: the agent never sees it.
    plugin.run("VERSION", b"", extra_env=agent.env()).ok()
    assert len(agent.served()) == len(cases)


def test_socket_is_root_only(agent: Agent) -> None:
    mode = os.stat(agent.socket).st_mode
    assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o600


def test_twenty_concurrent_adds_through_the_agent(
    plugin: Plugin,
    agent: Agent,
    namespaces: NamespaceFactory,
    netconf: dict[str, Any],
    data_dir: Path,
) -> None:
    spaces = [namespaces.new(f"c{i}") for i in range(20)]
    env = agent.env()

    def add(i: int) -> str:
        outcome = plugin.run(
            "ADD", netconf, container_id=f"c{i}", netns=spaces[i].path, extra_env=env
        )
        return str(outcome.ok().json["ips"][0]["address"])

    with ThreadPoolExecutor(max_workers=20) as pool:
        addresses = list(pool.map(add, range(20)))
    assert len(set(addresses)) == 20
    for ns, address in zip(spaces, addresses, strict=True):
        assert ns.addresses("eth0") == [address]
    assert len(agent.served()) == 20

    def delete(i: int) -> None:
        plugin.run("DEL", netconf, container_id=f"c{i}", netns=spaces[i].path, extra_env=env).ok()

    with ThreadPoolExecutor(max_workers=20) as pool:
        list(pool.map(delete, range(20)))
    assert plugin.host.links("veth") == [] and plugin.host.nat_rules() == []
    assert reservations(data_dir, netconf["name"]) == {}


def test_check_through_two_workers_sees_rules_changed_since_their_add(
    plugin: Plugin, namespaces: NamespaceFactory, netconf: dict[str, Any], tmp_path: Path
) -> None:
    """Workers take the rules they wrote as written until anyone else commits (nft_ledger,
    shared by the workers): a rule deleted by hand after the ADDs is missing for CHECK, and
    found again once put back, whichever worker made the ADD or answers the CHECK."""
    with Agent(plugin.host, plugin.executable, tmp_path, workers=2) as agent:
        env = agent.env()
        spaces = [namespaces.new(f"w{i}") for i in range(4)]
        checks = []
        for i, ns in enumerate(spaces):
            added = plugin.run("ADD", netconf, container_id=f"w{i}", netns=ns.path, extra_env=env)
            checks.append({**netconf, "prevResult": added.ok().json})

        def check(i: int) -> Outcome:
            return plugin.run(
                "CHECK", checks[i], container_id=f"w{i}", netns=spaces[i].path, extra_env=env
            )

        def failing() -> list[int]:
            # Each twice: both workers answer some.
            return [i for i in [*range(4), *range(4)] if check(i).code != 0]

        assert failing() == []
        chain, comment = chain_name(netconf["name"], "w2"), masq_comment(netconf["name"], "w2")
        masquerade = ["!", "-d", "224.0.0.0/4", "-m", "comment", "--comment", comment]
        plugin.host.exec("iptables", "-t", "nat", "-D", chain, *masquerade, "-j", "MASQUERADE")
        assert failing() == [2, 2]
        assert "masquerade rule missing" in check(2).cni_error()["msg"]
        plugin.host.exec("iptables", "-t", "nat", "-A", chain, *masquerade, "-j", "MASQUERADE")
        assert failing() == []
        assert len(agent.served()) == 4 + 8 * 3 + 1


def test_a_killed_agent_loses_nothing_and_the_front_works_alone(
    plugin: Plugin,
    agent: Agent,
    namespaces: NamespaceFactory,
    netconf: dict[str, Any],
    data_dir: Path,
) -> None:
    red, blue = namespaces.new("red"), namespaces.new("blue")
    env = agent.env()
    plugin.run("ADD", netconf, container_id="red", netns=red.path, extra_env=env).ok()
    # SIGKILL the agent itself (the child of `ip netns exec`, which execs it: same pid).
    os.kill(agent.pid, signal.SIGKILL)
    agent.wait_exit()
    assert agent.socket.exists()  # a stale socket: connecting to it is refused
    plugin.run("ADD", netconf, container_id="blue", netns=blue.path, extra_env=env).ok()
    assert blue.addresses("eth0") == ["192.168.15.2/24"]
    plugin.run("DEL", netconf, container_id="red", netns=red.path, extra_env=env).ok()
    plugin.run("DEL", netconf, container_id="blue", netns=blue.path, extra_env=env).ok()
    assert plugin.host.links("veth") == [] and plugin.host.nat_rules() == []
    assert reservations(data_dir, netconf["name"]) == {}


def test_an_agent_in_another_namespace_is_not_used(
    plugin: Plugin,
    namespaces: NamespaceFactory,
    netconf: dict[str, Any],
    tmp_path: Path,
) -> None:
    elsewhere = namespaces.new("other")
    red = namespaces.new("red")
    with agent_in(elsewhere, plugin.executable, tmp_path) as foreign:
        plugin.run("ADD", netconf, container_id="red", netns=red.path, extra_env=foreign.env()).ok()
        assert foreign.served() == []  # refused, and the front did the work in its own namespace
    assert elsewhere.links("bridge") == []
    assert plugin.host.link(netconf["bridge"]) is not None


def test_a_non_root_caller_is_refused(plugin: Plugin) -> None:
    # The socket's 0600 mode already stops other users; open it up (in a directory of the
    # test's own that they can reach) to show SO_PEERCRED, the second line of defence.
    workdir = Path(tempfile.mkdtemp(prefix="cbpt-agent-"))
    try:
        with agent_in(plugin.host, plugin.executable, workdir) as running:
            workdir.chmod(0o755)
            running.socket.chmod(0o666)
            # The reply as bytes: length, then version, kind (1: a refusal) and the reason.
            script = (
                "import socket;"
                f"s=socket.socket(socket.AF_UNIX);s.connect({str(running.socket)!r});"
                "n=int.from_bytes(s.recv(4),'big');print(s.recv(n))"
            )
            out = sh(
                "setpriv",
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                "/usr/bin/python3",
                "-I",
                "-c",
                script,
            )
            assert out.startswith(f"b'\\x0{VERSION}\\x01") and "root" in out, out
            assert running.served() == []
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def exchange(path: Path, payload: bytes) -> bytes:
    """One raw exchange with the agent: the reply's body."""
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(20)
        s.connect(str(path))
        s.sendall(payload)
        return read_frame(s)


def test_malformed_and_oversized_requests_get_answers_and_the_agent_keeps_serving(
    plugin: Plugin, agent: Agent
) -> None:
    short = bytes([VERSION]) + b"nope"  # shorter than a request's header
    reply = decode_reply(exchange(agent.socket, len(short).to_bytes(4, "big") + short))
    assert reply is not None and json.loads(reply[1])["code"] == 6
    # Over the limit: refused unread, so a front would serve it itself.
    oversized = exchange(agent.socket, (100 * 1024 * 1024).to_bytes(4, "big"))
    assert oversized[:2] == bytes([VERSION, 1]) and decode_reply(oversized) is None
    plugin.run("VERSION", b"", extra_env=agent.env()).ok()
    assert agent.alive()


def test_a_socket_activated_agent_is_started_by_the_first_call_and_serves_it(
    plugin: Plugin,
    namespaces: NamespaceFactory,
    netconf: dict[str, Any],
    data_dir: Path,
    tmp_path: Path,
) -> None:
    """systemd's way, with systemd-socket-activate: the socket exists (root-only) before any
    agent; the first ADD connects, which starts the agent on that socket, and it is served by
    the agent (its log names the request) with the same result as one-shot."""
    require_root("socket activation", (SOCKET_ACTIVATE,))
    red = namespaces.new("red")
    activated = Agent(plugin.host, plugin.executable, tmp_path, activated=True)
    with activated:
        mode = os.stat(activated.socket).st_mode
        assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o600
        assert not activated.started()
        env = activated.env()
        add = plugin.run("ADD", netconf, container_id="red", netns=red.path, extra_env=env)
        assert add.ok().json["ips"][0]["address"] == "192.168.15.1/24"
        assert activated.started() and "(passed by systemd)" in activated.log.read_text()
        assert red.addresses("eth0") == ["192.168.15.1/24"]
        plugin.run("DEL", netconf, container_id="red", netns=red.path, extra_env=env).ok()
        assert [line.split()[0] for line in activated.served()] == ["ADD", "DEL"]
        pid = activated.pid
    assert activated.proc is not None and activated.proc.returncode == 0  # SIGTERM: a clean stop
    assert not os.path.exists(f"/proc/{pid}")
    assert red.link("eth0") is None and plugin.host.nat_rules() == []
    assert reservations(data_dir, netconf["name"]) == {}


def test_a_socket_whose_agent_cannot_start_leaves_the_work_to_the_front(
    plugin: Plugin,
    namespaces: NamespaceFactory,
    netconf: dict[str, Any],
    tmp_path: Path,
) -> None:
    """The socket is there but the agent it starts fails at once: the ADD that connected was
    never read, so the front does it itself (not "try again later")."""
    require_root("socket activation", (SOCKET_ACTIVATE,))
    broken = tmp_path / "broken-agent"
    broken.write_text("#!/bin/sh\nexit 3\n")
    broken.chmod(0o755)
    red = namespaces.new("red")
    with Agent(plugin.host, broken, tmp_path, activated=True) as activated:
        env = activated.env()
        plugin.run("ADD", netconf, container_id="red", netns=red.path, extra_env=env).ok()
        assert red.addresses("eth0") == ["192.168.15.1/24"]
        activated.wait_exit()
    plugin.run("DEL", netconf, container_id="red", netns=red.path).ok()
