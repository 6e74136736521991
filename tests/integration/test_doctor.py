"""`cni-bridge-py doctor` against networks the installed plugin really made in a throwaway
host namespace: a healthy one passes, each thing broken on purpose gives its line and exit 1,
looking changes nothing, and --fix removes leftovers with GC."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import Any

from tests.integration.conftest import Unchanged
from tests.support.netns import NamespaceFactory
from tests.support.plugin import Plugin, chain_name

NET = "testnet"


def write_conf(path: Path, netconf: dict[str, Any]) -> Path:
    path.write_text(json.dumps({"cniVersion": "1.0.0", "name": NET, "plugins": [netconf]}))
    return path


def doctor(
    plugin: Plugin, tmp_path: Path, conf: Path, *args: str, agent: str = "off"
) -> tuple[int, list[str]]:
    """doctor inside the test's host namespace, with an empty libcni cache of its own and the
    agent's socket switched off (the machine's own agent is none of the test's business)."""
    env = {
        "CNI_CACHE_DIR": str(tmp_path / "cache"),
        "CNI_PATH": plugin.cni_path,
        "CNI_BRIDGE_PY_AGENT": agent,
    }
    proc = plugin.tool("doctor", "--conf", str(conf), *args, env=env)
    assert proc.returncode in (0, 1), proc.stdout + proc.stderr
    return proc.returncode, proc.stdout.splitlines()


def errors(out: list[str]) -> list[str]:
    return [line for line in out if line.startswith("error:")]


def forwarding_on(plugin: Plugin) -> None:
    """What ADD does for a gateway network, for the tests that make no container (a fresh
    namespace forwards nothing, which doctor reports)."""
    plugin.host.exec("sysctl", "-qw", "net.ipv4.ip_forward=1")


def only_error(out: list[str], *texts: str) -> str:
    (line,) = errors(out)
    for text in texts:
        assert text in line, (text, line)
    return line


def test_a_healthy_network_passes_and_nothing_changes(  # noqa: PLR0917 - pytest fixtures
    plugin: Plugin,
    namespaces: NamespaceFactory,
    netconf: dict[str, Any],
    conf_file: Path,
    tmp_path: Path,
    unchanged: Unchanged,
) -> None:
    red, blue = namespaces.new("red"), namespaces.new("blue")
    plugin.add(netconf, "red", red.path)
    plugin.add(netconf, "blue", blue.path)
    assert plugin.host.sysctl("net/ipv4/ip_forward") == "1"  # ADD turned it on (isGateway)
    check = unchanged(red, blue)

    code, out = doctor(plugin, tmp_path, conf_file)

    check()
    assert code == 0 and errors(out) == [], out
    assert out[-1].startswith("doctor: 0 error(s)")
    assert not (tmp_path / "cache").exists()


def test_ip_forward_off(
    plugin: Plugin,
    namespaces: NamespaceFactory,
    netconf: dict[str, Any],
    conf_file: Path,
    tmp_path: Path,
) -> None:
    plugin.add(netconf, "red", namespaces.new("red").path)
    plugin.host.exec("sysctl", "-qw", "net.ipv4.ip_forward=0")

    code, out = doctor(plugin, tmp_path, conf_file)

    assert code == 1
    only_error(out, "host: net.ipv4.ip_forward is 0", "sysctl -w net.ipv4.ip_forward=1")


def test_a_deleted_veth(
    plugin: Plugin,
    namespaces: NamespaceFactory,
    netconf: dict[str, Any],
    conf_file: Path,
    tmp_path: Path,
) -> None:
    red, blue = namespaces.new("red"), namespaces.new("blue")
    veth = plugin.add(netconf, "red", red.path)
    plugin.add(netconf, "blue", blue.path)
    plugin.host.exec("ip", "link", "del", veth)

    code, out = doctor(plugin, tmp_path, conf_file)

    assert code == 1
    only_error(out, f"{NET}: attachment red/eth0", ": no veth ->", "doctor --fix")


def test_a_deleted_reservation_then_a_leftover_nat_chain(  # noqa: PLR0917
    plugin: Plugin,
    namespaces: NamespaceFactory,
    netconf: dict[str, Any],
    conf_file: Path,
    tmp_path: Path,
    data_dir: Path,
    unchanged: Unchanged,
) -> None:
    red = namespaces.new("red")
    veth = plugin.add(netconf, "red", red.path)
    (data_dir / NET / "192.168.15.1").unlink()
    check = unchanged(red)

    code, out = doctor(plugin, tmp_path, conf_file)

    check()  # without --fix nothing is removed
    assert code == 1
    only_error(out, "veth without reservation; NAT chain without reservation", veth)

    plugin.host.exec("ip", "link", "del", veth)
    code, out = doctor(plugin, tmp_path, conf_file)
    assert code == 1
    only_error(out, ": NAT chain without reservation ->", chain_name(NET, "red"), "--fix")


def test_fix_removes_the_leftovers_with_gc(  # noqa: PLR0917
    plugin: Plugin,
    namespaces: NamespaceFactory,
    netconf: dict[str, Any],
    conf_file: Path,
    tmp_path: Path,
    data_dir: Path,
) -> None:
    red, blue = namespaces.new("red"), namespaces.new("blue")
    veth = plugin.add(netconf, "red", red.path)
    blue_veth = plugin.add(netconf, "blue", blue.path)  # healthy, not in any cache: kept
    (data_dir / NET / "192.168.15.1").unlink()

    code, out = doctor(plugin, tmp_path, conf_file, "--fix")

    assert code == 0, out
    text = "\n".join(out)
    assert "fix: testnet: GC will remove:" in text and f"veth {veth}" in text
    before = out.index(next(line for line in out if line.endswith("before --fix")))
    assert len(errors(out[:before])) == 1 and errors(out[before:]) == [], out
    assert plugin.host.link(veth) is None and red.link("eth0") is None
    assert not [r for r in plugin.host.nat_rules() if chain_name(NET, "red") in r]
    assert plugin.host.link(blue_veth) is not None and blue.ping("192.168.15.5")
    assert (data_dir / NET / "192.168.15.2").exists()


def test_another_address_on_the_bridge(  # noqa: PLR0917
    plugin: Plugin,
    namespaces: NamespaceFactory,
    netconf: dict[str, Any],
    conf_file: Path,
    tmp_path: Path,
    bridge_name: str,
) -> None:
    plugin.add(netconf, "red", namespaces.new("red").path)
    plugin.host.exec("ip", "addr", "add", "10.9.9.9/8", "dev", bridge_name)

    code, out = doctor(plugin, tmp_path, conf_file)

    assert code == 1
    only_error(out, f"{bridge_name} has 10.9.9.9/8 where the gateway 192.168.15.5/24 goes")


def test_the_bridge_name_taken_by_a_dummy_link(
    plugin: Plugin, conf_file: Path, tmp_path: Path, bridge_name: str
) -> None:
    forwarding_on(plugin)
    kind = plugin.host.add_plain_link(bridge_name)

    code, out = doctor(plugin, tmp_path, conf_file)

    assert code == 1
    only_error(out, f"'{bridge_name}' is taken by a link of kind {kind}")


def test_a_route_for_the_subnet_through_another_interface(
    plugin: Plugin,
    namespaces: NamespaceFactory,
    netconf: dict[str, Any],
    conf_file: Path,
    tmp_path: Path,
) -> None:
    plugin.add(netconf, "red", namespaces.new("red").path)
    plugin.host.add_plain_link("other0")
    plugin.host.exec("ip", "link", "set", "other0", "up")
    plugin.host.exec("ip", "route", "add", "192.168.15.0/25", "dev", "other0")

    code, out = doctor(plugin, tmp_path, conf_file)

    assert code == 1
    only_error(out, "route 192.168.15.0/25 via other0 covers the network's subnet")


def test_a_data_dir_that_is_a_file(plugin: Plugin, netconf: dict[str, Any], tmp_path: Path) -> None:
    forwarding_on(plugin)
    (tmp_path / "afile").write_text("")
    ipam = {**netconf["ipam"], "dataDir": str(tmp_path / "afile")}
    conf = write_conf(tmp_path / "file.conflist", {**netconf, "ipam": ipam})

    code, out = doctor(plugin, tmp_path, conf)

    assert code == 1
    only_error(out, f"{tmp_path / 'afile'} is not a directory", "ADD cannot reserve")


def test_a_stale_agent_socket(plugin: Plugin, conf_file: Path, tmp_path: Path) -> None:
    forwarding_on(plugin)
    directory = tmp_path / "agent"
    directory.mkdir(mode=0o700)
    path = directory / "agent.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.bind(str(path))  # bound, never listening: what a crashed agent leaves
    os.chmod(path, 0o600)

    code, out = doctor(plugin, tmp_path, conf_file, agent=str(path))

    assert code == 1
    only_error(out, f"the agent's socket {path} is stale", f"rm {path}")
    assert path.exists()  # told, not removed
