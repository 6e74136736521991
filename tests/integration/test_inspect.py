"""`cni-bridge-py inspect` against attachments the installed plugin (and the reference's
bridge) really made in a throwaway host namespace: healthy rows, each anomaly made on
purpose, nothing changed by looking, and the Graphviz picture."""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import Unchanged
from tests.support.netns import Namespace, NamespaceFactory
from tests.support.plugin import REFERENCE_DIR, Plugin, chain_name

NET = "testnet"


def inspect(plugin: Plugin, tmp_path: Path, *args: str) -> tuple[int, str, str]:
    """inspect run inside the test's host namespace, with an empty libcni cache of its own."""
    proc = plugin.tool("inspect", *args, env={"CNI_CACHE_DIR": str(tmp_path / "cache")})
    return proc.returncode, proc.stdout, proc.stderr


def report(plugin: Plugin, tmp_path: Path, conf_file: Path) -> tuple[int, dict[str, Any]]:
    code, out, err = inspect(plugin, tmp_path, "--conf", str(conf_file), "--json")
    assert code in (0, 1), err
    (network,) = json.loads(out)["networks"]
    return code, network


def named(path: str, ns: Namespace) -> bool:
    """The namespace's file, as /run/netns or /var/run/netns (the same directory) spell it."""
    return path in (f"/run/netns/{ns.name}", f"/var/run/netns/{ns.name}")


def by_container(network: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {a["containerID"]: a for a in network["attachments"]}


def test_a_healthy_network_and_nothing_changed(  # noqa: PLR0917 - pytest passes fixtures positionally
    plugin: Plugin,
    namespaces: NamespaceFactory,
    netconf: dict[str, Any],
    conf_file: Path,
    tmp_path: Path,
    unchanged: Unchanged,
    bridge_name: str,
) -> None:
    red, blue = namespaces.new("red"), namespaces.new("blue")
    red_veth = plugin.add(netconf, "red", red.path)
    blue_veth = plugin.add(netconf, "blue", blue.path)
    check = unchanged(red, blue)

    code, network = report(plugin, tmp_path, conf_file)
    code_text, table, _ = inspect(plugin, tmp_path, "--conf", str(conf_file))

    check()  # links, addresses, routes, nat rules, nft ruleset and store files as before
    assert code == code_text == 0, network
    assert network["ok"] and network["problems"] == []
    assert network["bridge"] == bridge_name and network["bridgePresent"]
    assert network["gateways"] == ["192.168.15.5/24"]
    assert network["ports"] == sorted([red_veth, blue_veth])
    assert network["masquerade"].startswith("iptables")
    assert network["rangeUse"] == [
        {"ranges": "192.168.15.1-192.168.15.254", "used": 2, "size": 253}
    ]
    rows = by_container(network)
    assert {cid: row["state"] for cid, row in rows.items()} == {"red": "ok", "blue": "ok"}
    assert named(rows["red"]["netns"], red) and rows["red"]["ifname"] == "eth0"
    assert rows["red"]["addresses"] == ["192.168.15.1/24"]
    assert rows["red"]["hostVeth"] == red_veth
    assert rows["red"]["mac"] == red.link("eth0")["address"]  # type: ignore[index]
    assert rows["red"]["nat"] == chain_name(NET, "red")
    assert "network testnet: ok" in table and red_veth in table
    assert not (tmp_path / "cache").exists()  # nothing created, not even the cache dir


def test_a_deleted_veth(
    plugin: Plugin,
    namespaces: NamespaceFactory,
    netconf: dict[str, Any],
    conf_file: Path,
    tmp_path: Path,
) -> None:
    red, blue = namespaces.new("red"), namespaces.new("blue")
    red_veth = plugin.add(netconf, "red", red.path)
    plugin.add(netconf, "blue", blue.path)
    plugin.host.exec("ip", "link", "del", red_veth)

    code, network = report(plugin, tmp_path, conf_file)

    assert code == 1 and not network["ok"]
    rows = by_container(network)
    assert rows["red"]["state"] == "no veth" and rows["red"]["hostVeth"] == ""
    assert rows["blue"]["state"] == "ok"


def test_a_deleted_reservation_then_a_leftover_nat_chain(  # noqa: PLR0917
    plugin: Plugin,
    namespaces: NamespaceFactory,
    netconf: dict[str, Any],
    conf_file: Path,
    tmp_path: Path,
    data_dir: Path,
) -> None:
    red = namespaces.new("red")
    red_veth = plugin.add(netconf, "red", red.path)
    (data_dir / NET / "192.168.15.1").unlink()

    code, network = report(plugin, tmp_path, conf_file)
    row = by_container(network)["red"]
    assert code == 1
    assert row["problems"] == ["veth without reservation", "NAT chain without reservation"]
    assert row["hostVeth"] == red_veth and named(row["netns"], red)

    plugin.host.exec("ip", "link", "del", red_veth)
    code, network = report(plugin, tmp_path, conf_file)
    (row,) = network["attachments"]
    assert code == 1
    assert row["containerID"] == "red" and row["state"] == "NAT chain without reservation"
    assert row["nat"] == chain_name(NET, "red")


def test_an_attachment_made_by_the_reference_plugin_is_ok(  # noqa: PLR0917
    host: Namespace,
    namespaces: NamespaceFactory,
    netconf: dict[str, Any],
    plugin: Plugin,
    conf_file: Path,
    tmp_path: Path,
) -> None:
    if not (REFERENCE_DIR / "bridge").exists():
        pytest.skip("the reference plugins (containernetworking-plugins) are not installed")
    reference = Plugin(REFERENCE_DIR / "bridge", host, str(REFERENCE_DIR))
    theirs, ours = namespaces.new("ref"), namespaces.new("ours")
    reference.run("ADD", {**netconf, "type": "bridge"}, container_id="ref", netns=theirs.path).ok()
    plugin.add(netconf, "ours", ours.path)

    code, network = report(plugin, tmp_path, conf_file)

    rows = by_container(network)
    assert code == 0, rows
    assert rows["ref"]["state"] == "ok" and named(rows["ref"]["netns"], theirs)
    assert rows["ref"]["hostVeth"].startswith("veth") and rows["ref"]["nat"] == chain_name(
        NET, "ref"
    )
    assert rows["ours"]["state"] == "ok"


def test_the_graph(  # noqa: PLR0917
    plugin: Plugin,
    namespaces: NamespaceFactory,
    netconf: dict[str, Any],
    conf_file: Path,
    tmp_path: Path,
    bridge_name: str,
) -> None:
    if shutil.which("dot") is None:
        pytest.skip("Graphviz's dot is not installed (Debian package graphviz)")
    red, blue = namespaces.new("red"), namespaces.new("blue")
    red_veth = plugin.add(netconf, "red", red.path)
    blue_veth = plugin.add(netconf, "blue", blue.path)
    svg, dot = tmp_path / "net.svg", tmp_path / "net.dot"

    assert inspect(plugin, tmp_path, "--conf", str(conf_file), "--graph", str(svg))[0] == 0
    raw = svg.read_text()
    # Well-formed XML; its text read back unescaped (dot writes "-" as &#45;).
    text = " ".join(ET.fromstring(raw).itertext())
    for expected in (
        bridge_name,
        red_veth,
        blue_veth,
        f"/run/netns/{red.name}",
        f"/run/netns/{blue.name}",
        "192.168.15.1/24",
        "192.168.15.2/24",
        "MASQUERADE",
        chain_name(NET, "red"),
    ):
        assert expected in text, (expected, text)
    assert 'stroke="red"' not in raw

    plugin.host.exec("ip", "link", "del", blue_veth)
    assert inspect(plugin, tmp_path, "--conf", str(conf_file), "--graph", str(svg))[0] == 1
    root = ET.fromstring(svg.read_text())
    red_shapes = [el for el in root.iter() if el.get("stroke") == "red" or el.get("fill") == "red"]
    assert red_shapes, "the anomaly is drawn red"
    red_text = " ".join(el.text or "" for el in red_shapes)
    assert "no veth" in red_text

    assert inspect(plugin, tmp_path, "--conf", str(conf_file), "--graph", str(dot))[0] == 1
    assert dot.read_text().startswith("digraph") and bridge_name in dot.read_text()
