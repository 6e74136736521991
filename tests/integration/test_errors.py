"""Failures through the real executable: a typed CNI error on stdout (one JSON object, exit 1,
no traceback), and nothing changed in the host namespace, the container namespace, the NAT
table or the data dir."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import Unchanged
from tests.support.netns import NamespaceFactory
from tests.support.plugin import Plugin, reservations
from tests.support.state import unchanged as unchanged_since


def test_existing_non_bridge_link_is_code_7_and_untouched(
    plugin: Plugin,
    namespaces: NamespaceFactory,
    netconf: dict[str, Any],
    data_dir: Path,
    bridge_name: str,
) -> None:
    kind = plugin.host.add_plain_link(bridge_name)
    red = namespaces.new("red")
    verify = unchanged_since(red, host=plugin.host)

    body = plugin.run("ADD", netconf, container_id="red1", netns=red.path).cni_error()

    assert body["code"] == 7
    assert bridge_name in body["msg"] and "not a bridge" in body["msg"], body
    assert (plugin.host.link(bridge_name) or {})["linkinfo"]["info_kind"] == kind
    verify()
    # IPAM runs before the bridge step: its reservation is rolled back (the round-robin
    # hint last_reserved_ip.0 may stay, as with host-local).
    assert reservations(data_dir, "testnet") == {}


@pytest.mark.parametrize("kind", ["regular-file", "directory", "missing", "own-proc", "host-ns"])
def test_bad_netns_is_code_8_and_changes_nothing(
    plugin: Plugin,
    netconf: dict[str, Any],
    tmp_path: Path,
    unchanged: Unchanged,
    kind: str,
) -> None:
    paths = {
        "regular-file": tmp_path / "not-a-netns",
        "directory": tmp_path,
        "missing": tmp_path / "no-such-netns",
        # From inside the plugin both name the plugin's own namespace.
        "own-proc": Path("/proc/self/ns/net"),
        "host-ns": Path(plugin.host.path),
    }
    (tmp_path / "not-a-netns").write_text("")
    netns = str(paths[kind])
    verify = unchanged()
    body = plugin.run("ADD", netconf, container_id="red1", netns=netns).cni_error()
    assert body["code"] == 8, body
    assert netns in body["msg"], body
    verify()
    assert not (Path(netconf["ipam"]["dataDir"]) / "testnet").exists()
    assert not (tmp_path / "no-such-netns").exists()  # not created as a namespace either


def test_malformed_json_is_code_6(
    plugin: Plugin,
    namespaces: NamespaceFactory,
    data_dir: Path,
    unchanged: Unchanged,
) -> None:
    red = namespaces.new("red")
    verify = unchanged(red)
    out = plugin.run("ADD", b'{"cniVersion": "1.0.0", "name": ', container_id="r", netns=red.path)
    body = out.cni_error()
    assert body["code"] == 6
    verify()


def test_empty_stdin_is_code_6(
    plugin: Plugin, namespaces: NamespaceFactory, unchanged: Unchanged
) -> None:
    red = namespaces.new("red")
    verify = unchanged(red)
    assert plugin.run("ADD", b"", container_id="r", netns=red.path).cni_error()["code"] == 6
    verify()


def test_unsupported_cni_version_is_code_1(
    plugin: Plugin,
    namespaces: NamespaceFactory,
    netconf: dict[str, Any],
    unchanged: Unchanged,
) -> None:
    red = namespaces.new("red")
    verify = unchanged(red)
    out = plugin.run("ADD", {**netconf, "cniVersion": "9.9.9"}, container_id="r", netns=red.path)
    body = out.cni_error()
    assert body["code"] == 1
    assert body["msg"] == "incompatible CNI versions"
    assert '"9.9.9"' in body["details"]
    verify()


def test_check_on_031_is_code_1(
    plugin: Plugin,
    namespaces: NamespaceFactory,
    netconf: dict[str, Any],
    unchanged: Unchanged,
) -> None:
    red = namespaces.new("red")
    conf = {**netconf, "cniVersion": "0.3.1"}
    plugin.run("ADD", conf, container_id="red1", netns=red.path).ok()
    verify = unchanged(red)
    body = plugin.run("CHECK", conf, container_id="red1", netns=red.path).cni_error()
    assert body["code"] == 1
    assert "CHECK" in body["msg"]
    assert body["cniVersion"] == "0.3.1"
    verify()


@pytest.mark.parametrize("variable", ["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH"])
def test_missing_env_is_code_4(
    plugin: Plugin,
    namespaces: NamespaceFactory,
    netconf: dict[str, Any],
    unchanged: Unchanged,
    variable: str,
) -> None:
    red = namespaces.new("red")
    verify = unchanged(red)
    out = plugin.run("ADD", netconf, container_id="red1", netns=red.path, unset=(variable,))
    body = out.cni_error()
    assert body["code"] == 4
    assert body["msg"] == f"required env variables [{variable}] missing"
    verify()


@pytest.mark.parametrize(
    "ids",
    [("-leading-dash", "eth0"), ("ok1", "a" * 16), ("ok1", "eth/0"), ("ok1", "..")],
    ids=["container-id", "ifname-too-long", "ifname-slash", "ifname-dotdot"],
)
def test_invalid_container_id_or_ifname_is_code_4(
    plugin: Plugin,
    namespaces: NamespaceFactory,
    netconf: dict[str, Any],
    unchanged: Unchanged,
    ids: tuple[str, str],
) -> None:
    container_id, ifname = ids
    red = namespaces.new("red")
    verify = unchanged(red)
    out = plugin.run("ADD", netconf, container_id=container_id, netns=red.path, ifname=ifname)
    assert out.cni_error()["code"] == 4
    verify()


def test_invalid_config_value_is_code_7_naming_the_field(
    plugin: Plugin,
    namespaces: NamespaceFactory,
    netconf: dict[str, Any],
    unchanged: Unchanged,
) -> None:
    red = namespaces.new("red")
    verify = unchanged(red)
    out = plugin.run("ADD", {**netconf, "ipMasq": "true"}, container_id="r", netns=red.path)
    body = out.cni_error()
    assert body["code"] == 7
    assert "ipMasq" in body["msg"] + body.get("details", ""), body
    verify()


def test_range_exhausted_is_typed_and_leaves_no_veth(
    plugin: Plugin,
    namespaces: NamespaceFactory,
    netconf: dict[str, Any],
    data_dir: Path,
    unchanged: Unchanged,
) -> None:
    # 192.168.15.0/30: hosts .1 and .2; .1 is the gateway, so exactly one container fits.
    ipam = {"type": "host-local", "subnet": "192.168.15.0/30", "dataDir": str(data_dir)}
    conf = {**netconf, "ipam": ipam}
    red, blue = namespaces.new("red"), namespaces.new("blue")
    plugin.run("ADD", conf, container_id="red1", netns=red.path).ok()
    assert red.addresses("eth0") == ["192.168.15.2/30"]

    verify = unchanged(red, blue)
    body = plugin.run("ADD", conf, container_id="blue1", netns=blue.path).cni_error()
    assert body["code"] in (5, 11), body
    assert "no IP addresses available" in body["msg"], body
    verify()
    assert blue.link_names() == ["lo"]
    assert len(plugin.host.links("veth")) == 1
    assert reservations(data_dir, "testnet") == {"192.168.15.2": b"red1\r\neth0"}


def test_ifname_already_in_netns_is_error_and_untouched(
    plugin: Plugin,
    namespaces: NamespaceFactory,
    netconf: dict[str, Any],
    data_dir: Path,
    unchanged: Unchanged,
) -> None:
    # A first container makes the bridge, so the failing ADD has nothing to create there.
    red, blue = namespaces.new("red"), namespaces.new("blue")
    plugin.run("ADD", netconf, container_id="red1", netns=red.path).ok()
    kind = blue.add_plain_link("eth0")
    blue.exec("ip", "addr", "add", "10.9.9.9/24", "dev", "eth0")
    hint = (data_dir / "testnet" / "last_reserved_ip.0").read_bytes()

    verify = unchanged(red, blue)
    body = plugin.run("ADD", netconf, container_id="blue1", netns=blue.path).cni_error()
    assert "eth0" in body["msg"], body
    # The IPAM round-robin hint may advance; everything else is as before.
    (data_dir / "testnet" / "last_reserved_ip.0").write_bytes(hint)
    verify()
    assert (blue.link("eth0") or {})["linkinfo"]["info_kind"] == kind
    assert blue.addresses("eth0") == ["10.9.9.9/24"]


def test_duplicate_add_same_container_is_error_and_changes_nothing(
    plugin: Plugin,
    namespaces: NamespaceFactory,
    netconf: dict[str, Any],
    unchanged: Unchanged,
) -> None:
    red = namespaces.new("red")
    plugin.run("ADD", netconf, container_id="red1", netns=red.path).ok()
    verify = unchanged(red)
    body = plugin.run("ADD", netconf, container_id="red1", netns=red.path).cni_error()
    assert "192.168.15.1" in body["msg"] or "eth0" in body["msg"], body
    verify()


def test_unknown_cni_args_need_ignore_unknown(
    plugin: Plugin,
    namespaces: NamespaceFactory,
    netconf: dict[str, Any],
    unchanged: Unchanged,
) -> None:
    red = namespaces.new("red")
    verify = unchanged(red)
    out = plugin.run("ADD", netconf, container_id="r1", netns=red.path, cni_args="K8S_POD_NAME=x")
    assert out.cni_error()["code"] == 4
    verify()
    ok = plugin.run(
        "ADD",
        netconf,
        container_id="r1",
        netns=red.path,
        cni_args="IgnoreUnknown=1;K8S_POD_NAME=x;K8S_POD_NAMESPACE=y",
    )
    ok.ok()
    assert red.addresses("eth0") == ["192.168.15.1/24"]


def test_unknown_command_is_code_4(
    plugin: Plugin, netconf: dict[str, Any], unchanged: Unchanged
) -> None:
    verify = unchanged()
    assert plugin.run("FROB", netconf, container_id="r1").cni_error()["code"] == 4
    verify()
