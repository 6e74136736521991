"""Nothing outside the plugin's own: links, bridges, rules and chains it did not make, other
networks (even with the same container IDs) and paths outside the store survive every verb;
store and lock files have the reference's modes; the agent's socket is root's alone,
malformed requests get an error and those it cannot take a refusal while it keeps serving.

(tests/integration covers the basics these extend: ADD on a non-bridge link, the socket's
0600 mode, SO_PEERCRED against another uid, a bad frame and a huge length header.)
"""

from __future__ import annotations

import json
import os
import socket
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cni_bridge_py.agent.protocol import MAX_FRAME, VERSION, decode_reply, read_frame
from tests.reliability.figures import Figures
from tests.reliability.lab import VALID, network_config
from tests.reliability.profile import NFTABLES
from tests.support.agent import ONE_SHOT_ENV, Agent
from tests.support.netns import Namespace, NamespaceFactory
from tests.support.plugin import LAUNCHER, Plugin, reservations
from tests.support.state import namespace_state, settle

FOREIGN_CHAIN = "CNI-foreign"


def run(plugin: Plugin, command: str, conf: dict[str, Any], cid: str = "", netns: str = "") -> Any:
    return plugin.run(command, conf, container_id=cid, netns=netns, extra_env=ONE_SHOT_ENV)


def link_view(ns: Namespace, name: str) -> tuple[Any, ...]:
    """Everything about one link a plugin could change."""
    state = namespace_state(ns)
    return (
        [entry for entry in state["links"] if entry[0] == name],
        [entry for entry in state["addresses"] if entry[0] == name],
        [r for r in state["routes4"] + state["routes6"] if r[2] == name],
    )


def test_a_link_named_like_the_bridge_is_never_modified(
    plugin: Plugin, namespaces: NamespaceFactory, tmp_path: Path, figures: Figures
) -> None:
    """Whatever the verb: ADD and STATUS refuse it, CHECK reports it, DEL and GC pass it by."""
    host = plugin.host
    conf = network_config("safenet", "cbrplain", "10.127.9.0/24", tmp_path / "data")
    kind = host.add_plain_link("cbrplain")
    host.exec("ip", "addr", "add", "10.127.9.1/24", "dev", "cbrplain")
    host.exec("ip", "link", "set", "cbrplain", "mtu", "1400", "up")
    before = link_view(host, "cbrplain")
    red = namespaces.new("red")
    prev = {"cniVersion": "1.1.0", "interfaces": [{"name": "cbrplain"}], "ips": []}

    assert run(plugin, "ADD", conf, "red", red.path).cni_error()["code"] == 7
    assert run(plugin, "STATUS", conf).cni_error()["code"] == 50
    check = run(plugin, "CHECK", {**conf, "prevResult": prev}, "red", red.path)
    assert check.cni_error()["code"] == 3
    run(plugin, "DEL", conf, "red", red.path).ok()
    run(plugin, "GC", {**conf, VALID: []}).ok()

    violations = int(link_view(host, "cbrplain") != before)
    figures.add("safety", checks=1, violations=violations)
    assert link_view(host, "cbrplain") == before, kind
    assert red.link_names() == ["lo"]


NFT_TABLES = ("inet foreign", "inet cni_plugins_masquerade", "bridge nat")


def foreign_state(host: Namespace, others: list[Namespace], data_dir: Path) -> dict[str, Any]:
    """Everything that is not network A's: network B's store, namespace, bridge and nft rules
    (B masquerades with nftables and has macspoofchk), and the hand-made chain, nft table,
    bridge and veth port."""
    nat = host.exec("iptables-save", "-t", "nat")
    return {
        "b store": reservations(data_dir, "safenet-b"),
        "b namespaces": [namespace_state(ns) for ns in others],
        "hand-made nat": sorted(line for line in nat.splitlines() if "foreign" in line),
        **{table: host.exec("nft", "list", "table", *table.split()) for table in NFT_TABLES},
        "links": [link_view(host, name) for name in ("cbrsafeb", "cbrforeign", "fgnhost")],
    }


def test_del_and_gc_touch_only_this_network_and_container(
    plugin: Plugin, namespaces: NamespaceFactory, tmp_path: Path, figures: Figures
) -> None:
    host, data_dir = plugin.host, tmp_path / "data"
    # Network A (iptables) and B (nftables + macspoofchk) hold the same container ID.
    net_a = network_config("safenet-a", "cbrsafea", "10.127.1.0/24", data_dir)
    net_b = network_config("safenet-b", "cbrsafeb", "10.127.2.0/24", data_dir, NFTABLES)
    # A's bridge was made by hand, with an address of its own: we may use it, never remove it.
    host.exec("ip", "link", "add", "cbrsafea", "type", "bridge")
    host.exec("ip", "addr", "add", "fd00:a::1/64", "dev", "cbrsafea", "nodad")
    a1, a2, b1 = namespaces.new("a1"), namespaces.new("a2"), namespaces.new("b1")
    run(plugin, "ADD", net_a, "shared", a1.path).ok()
    run(plugin, "ADD", net_a, "a2", a2.path).ok()
    run(plugin, "ADD", net_b, "shared", b1.path).ok()
    # Foreign state: a chain that even carries A's comment format (but not our chain name),
    # its POSTROUTING jump, an nft table, a bridge and a veth port on A's bridge.
    comment = 'name: "safenet-a" id: "ghost"'
    for rule in (
        ["-N", FOREIGN_CHAIN],
        ["-A", FOREIGN_CHAIN, "-m", "comment", "--comment", comment, "-j", "ACCEPT"],
        ["-A", "POSTROUTING", "-s", "10.127.1.99/32", "-j", FOREIGN_CHAIN],
    ):
        host.exec("iptables", "-t", "nat", *rule)
    host.exec(
        "nft",
        "add table inet foreign ; add chain inet foreign post { type nat hook postrouting "
        "priority 100 ; } ; add rule inet foreign post ip saddr 10.127.1.99 masquerade",
    )
    host.exec("ip", "link", "add", "cbrforeign", "type", "bridge")
    host.exec("ip", "link", "add", "fgnhost", "type", "veth", "peer", "name", "fgnpeer")
    host.exec("ip", "link", "set", "fgnhost", "master", "cbrsafea")
    settle(host, a1, a2, b1)
    before = foreign_state(host, [b1], data_dir)

    run(plugin, "DEL", net_a, "shared", a1.path).ok()
    assert a2.ping("10.127.1.1")  # the other container of A is untouched by DEL
    run(plugin, "DEL", net_a, "ghost", "").ok()  # the hand-made chain's "owner"
    run(plugin, "GC", {**net_a, VALID: [{"containerID": "a2", "ifname": "eth0"}]}).ok()
    assert a2.ping("10.127.1.1")
    run(plugin, "GC", {**net_a, VALID: []}).ok()

    after = foreign_state(host, [b1], data_dir)
    changed = [key for key in before if before[key] != after[key]]
    figures.add("safety", checks=1, violations=len(changed))
    assert changed == [], {k: (before[k], after[k]) for k in changed}
    assert reservations(data_dir, "safenet-a") == {}
    assert a1.link_names() == ["lo"] and a2.link_names() == ["lo"]
    # A's hand-made bridge stays, with its own address and its own port; only A's went.
    assert "fd00:a::1/64" in host.addresses("cbrsafea", "inet6")
    assert [e["ifname"] for e in host.links() if e.get("master") == "cbrsafea"] == ["fgnhost"]
    assert b1.ping("10.127.2.1")


# --- paths: the store never reads or writes outside its directory -----------------------------


def test_planted_symlinks_are_never_followed(
    plugin: Plugin, namespaces: NamespaceFactory, tmp_path: Path, figures: Figures
) -> None:
    """A symlink in the store that names a reservation (pointing at a file outside that holds
    a matching owner line), a temporary file and the round-robin hint: DEL and GC neither
    read nor delete through them. A symlinked network directory is refused (code 5)."""
    data_dir, outside = tmp_path / "data", tmp_path / "outside"
    outside.mkdir()
    conf = network_config("linknet", "cbrlink", "10.127.3.0/24", data_dir)
    red = namespaces.new("red")
    run(plugin, "ADD", conf, "red", red.path).ok()
    store = data_dir / "linknet"
    victims = {
        "10.127.3.77": b"red\r\neth0",  # the owner line DEL looks for
        ".reserving-1-cafe": b"red\r\neth0",
        "elsewhere.txt": b"ghost\r\neth0",
    }
    for name, content in victims.items():
        (outside / name).write_bytes(content)
        (store / name).symlink_to(outside / name)
    before = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in outside.iterdir()}

    run(plugin, "DEL", conf, "red", red.path).ok()
    run(plugin, "GC", {**conf, VALID: []}).ok()

    after = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in outside.iterdir()}
    assert after == before
    assert (store / "10.127.3.77").is_symlink()  # not taken for a reservation either
    # The stale temporary's name was removed (unlink never follows), its target kept.
    assert not (store / ".reserving-1-cafe").is_symlink()

    # The whole network directory replaced by a symlink pointing outside.
    linked_data = tmp_path / "linked-data"
    linked_data.mkdir()
    (linked_data / "linknet").symlink_to(outside)
    moved = {**conf, "ipam": {**conf["ipam"], "dataDir": str(linked_data)}}
    for command, cid, netns in (("ADD", "red", red.path), ("DEL", "red", red.path), ("GC", "", "")):
        body = run(plugin, command, {**moved, VALID: []}, cid, netns).cni_error()
        assert body["code"] == 5 and "symlink" in body["msg"], body
    final = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in outside.iterdir()}
    violations = int(final != before) + int(red.link_names() != ["lo"])
    figures.add("safety", checks=1, violations=violations)
    assert final == before
    assert red.link_names() == ["lo"]


def test_symlinked_lock_and_hint_are_refused_not_followed(
    plugin: Plugin, namespaces: NamespaceFactory, tmp_path: Path, figures: Figures
) -> None:
    data_dir, outside = tmp_path / "data", tmp_path / "outside"
    outside.mkdir()
    conf = network_config("locknet", "cbrlock", "10.127.4.0/24", data_dir)
    store = data_dir / "locknet"
    store.mkdir(parents=True)
    (outside / "lock-target").write_bytes(b"precious")
    (store / "lock").symlink_to(outside / "lock-target")
    red = namespaces.new("red")
    body = run(plugin, "ADD", conf, "red", red.path).cni_error()
    assert body["code"] == 5 and "lock" in body["msg"], body
    (store / "lock").unlink()
    (outside / "hint-target").write_bytes(b"10.127.4.200")
    (store / "last_reserved_ip.0").symlink_to(outside / "hint-target")
    body = run(plugin, "ADD", conf, "red", red.path).cni_error()
    assert body["code"] == 5, body
    contents = {p.name: p.read_bytes() for p in outside.iterdir()}
    violations = int(contents != {"lock-target": b"precious", "hint-target": b"10.127.4.200"})
    figures.add("safety", checks=1, violations=violations)
    assert violations == 0, contents
    assert red.link_names() == ["lo"]
    assert reservations(data_dir, "locknet") == {}


def test_store_and_lock_files_have_the_reference_modes(
    plugin: Plugin, namespaces: NamespaceFactory, tmp_path: Path, figures: Figures
) -> None:
    """host-local: directory 0755, <ip> and last_reserved_ip.N 0600, lock 0750 (as created,
    before the umask); no temporary file stays behind."""
    umask = os.umask(0)
    os.umask(umask)
    conf = network_config("modenet", "cbrmode", "10.127.5.0/24", tmp_path / "data")
    red = namespaces.new("red")
    run(plugin, "ADD", conf, "red", red.path).ok()
    store = tmp_path / "data" / "modenet"
    modes = {p.name: stat.S_IMODE(p.lstat().st_mode) for p in [store, *store.iterdir()]}
    expected = {"modenet": 0o755, "10.127.5.2": 0o600, "last_reserved_ip.0": 0o600, "lock": 0o750}
    figures.add(
        "safety", checks=1, violations=int(modes != {k: v & ~umask for k, v in expected.items()})
    )
    assert modes == {k: v & ~umask for k, v in expected.items()}
    assert (store / "10.127.5.2").read_bytes() == b"red\r\neth0"
    assert (store / "10.127.5.2").stat().st_nlink == 1


# --- the agent's socket --------------------------------------------------------------------------


@pytest.fixture
def agent(host: Namespace, installed: Path, tmp_path: Path) -> Iterator[Agent]:
    with Agent(host, installed / LAUNCHER, tmp_path) as running:
        yield running


def exchange(path: Path, payload: bytes, *, half_close: bool = True) -> bytes:
    """One raw exchange with the agent: the reply's body."""
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(20)
        s.connect(str(path))
        s.sendall(payload)
        if half_close:
            s.shutdown(socket.SHUT_WR)
        return read_frame(s)


def frame(body: bytes) -> bytes:
    return len(body).to_bytes(4, "big") + body


def request_head(env_length: int) -> bytes:
    """A request's header: version, netns device and inode, the environment's length."""
    return bytes([VERSION]) + b"\0" * 16 + env_length.to_bytes(4, "big")


def test_the_socket_directory_is_root_only(agent: Agent, figures: Figures) -> None:
    modes = (
        stat.S_IMODE(agent.socket.parent.stat().st_mode),
        stat.S_IMODE(agent.socket.stat().st_mode),
    )
    figures.add("safety", checks=1, violations=int(modes != (0o700, 0o600)))
    assert modes == (0o700, 0o600)


@pytest.mark.parametrize(
    "payload",
    [
        (100).to_bytes(4, "big") + b"0123456789",  # the caller stops mid-frame
        frame(bytes([VERSION]) + b"\0" * 7),  # shorter than a request's header
        frame(request_head(100) + b"A=1"),  # the environment runs past the end
        frame(request_head(4) + b"NOEQ"),  # an entry without "="
        frame(b""),
    ],
    ids=["truncated", "short-header", "env-past-end", "entry-without-equals", "empty-frame"],
)
def test_malformed_requests_get_an_error_and_the_agent_keeps_serving(
    agent: Agent, plugin: Plugin, payload: bytes, tmp_path: Path, figures: Figures
) -> None:
    reply = decode_reply(exchange(agent.socket, payload))
    assert reply is not None, "a malformed request is answered, not refused"
    exit_code, stdout, _ = reply
    assert exit_code == 1 and json.loads(stdout)["code"] == 6, reply
    assert_still_serving(agent, plugin, tmp_path, figures)


@pytest.mark.parametrize(
    "payload",
    [
        frame(bytes([VERSION + 1]) + b"\0" * 40),  # a newer front than this agent
        frame(b'{"version": 1, "env": {}, "stdin": "", "netns": [1, 2]}'),  # protocol 1's JSON
        (100 * 1024 * 1024).to_bytes(4, "big"),  # over the limit: not even read
    ],
    ids=["newer-version", "protocol-1-json", "oversized"],
)
def test_requests_the_agent_cannot_take_are_refused_to_the_front(
    agent: Agent, plugin: Plugin, payload: bytes, tmp_path: Path, figures: Figures
) -> None:
    """Refused (nothing done: a front would serve them itself), and the agent keeps serving."""
    body = exchange(agent.socket, payload, half_close=False)
    assert body[:2] == bytes([VERSION, 1]) and decode_reply(body) is None, body
    assert_still_serving(agent, plugin, tmp_path, figures)


def assert_still_serving(agent: Agent, plugin: Plugin, tmp_path: Path, figures: Figures) -> None:
    """A STATUS (which, unlike VERSION, the front hands to the agent) is served by it."""
    conf = network_config("sock", "cbrsock", "10.127.6.0/24", tmp_path / "data")
    plugin.run("STATUS", conf, extra_env=agent.env()).ok()
    served = [line.split()[0] for line in agent.served()]
    figures.add("safety", checks=1, violations=int(served != ["STATUS"]))
    assert served == ["STATUS"] and agent.alive()


def test_an_idle_caller_does_not_hold_up_others(
    agent: Agent, plugin: Plugin, namespaces: NamespaceFactory, tmp_path: Path, figures: Figures
) -> None:
    conf = network_config("idlenet", "cbridle", "10.127.7.0/24", tmp_path / "data")
    red = namespaces.new("red")
    with socket.socket(socket.AF_UNIX) as idle:
        idle.connect(str(agent.socket))  # connects and never sends a byte
        outcome = plugin.run("ADD", conf, container_id="red", netns=red.path, extra_env=agent.env())
        outcome.ok()
    assert [line.split()[0] for line in agent.served()] == ["ADD"]
    plugin.run("DEL", conf, container_id="red", netns=red.path, extra_env=agent.env()).ok()
    figures.add("safety", checks=1, violations=int(not agent.alive()))
    assert agent.alive()


def test_a_config_too_big_for_the_agent_is_served_one_shot(
    agent: Agent, plugin: Plugin, namespaces: NamespaceFactory, tmp_path: Path, figures: Figures
) -> None:
    """A valid config whose request frame exceeds the agent's limit: the agent refuses the
    frame, the front does the work itself, and the agent keeps serving."""
    conf = network_config("bignet", "cbrbig", "10.127.8.0/24", tmp_path / "data")
    big = {**conf, "padding": "x" * MAX_FRAME}  # unknown keys are ignored
    red = namespaces.new("red")
    result = plugin.run("ADD", big, container_id="red", netns=red.path, extra_env=agent.env())
    assert result.ok().json["ips"][0]["address"] == "10.127.8.2/24"
    assert agent.served() == []  # served one-shot
    plugin.run("DEL", conf, container_id="red", netns=red.path, extra_env=agent.env()).ok()
    assert [line.split()[0] for line in agent.served()] == ["DEL"]
    figures.add("safety", checks=1, violations=int(not agent.alive()))
    assert agent.alive()


def test_del_never_removes_another_attachments_interface(
    plugin: Plugin, namespaces: NamespaceFactory, tmp_path: Path, figures: Figures
) -> None:
    """A runtime that mixes up its attachments: ADD of network A with an ifname the pod
    already uses for network B fails ("already has an interface"), and the runtime's cleanup
    is DEL of A with that ifname. The interface belongs to B: the DEL must leave it."""
    net_a = network_config("mixnet-a", "cbrmixa", "10.127.10.0/24", tmp_path / "data")
    net_b = network_config("mixnet-b", "cbrmixb", "10.127.11.0/24", tmp_path / "data")
    pod = namespaces.new("pod")
    run(plugin, "ADD", net_b, "pod1", pod.path).ok()
    settle(plugin.host, pod)
    before = namespace_state(pod)
    failed = run(plugin, "ADD", net_a, "pod1", pod.path).cni_error()
    assert "already has an interface" in failed["msg"], failed
    run(plugin, "DEL", net_a, "pod1", pod.path).ok()
    # Nor a DEL naming another container of the same network with this namespace.
    run(plugin, "DEL", net_b, "pod2", pod.path).ok()
    kept = namespace_state(pod) == before
    figures.add("safety", checks=1, violations=int(not kept))
    assert kept, namespace_state(pod)
    assert pod.ping("10.127.11.1")
    run(plugin, "DEL", net_b, "pod1", pod.path).ok()
    assert pod.link_names() == ["lo"]
