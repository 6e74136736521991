"""cni-host-local-py as installed, used by other main plugins (the reference ptp and macvlan),
sharing a data dir with the reference host-local, and its GC, STATUS and VERSION."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_install import VERSION_BYTES, env_i
from tests.support.netns import Namespace, NamespaceFactory
from tests.support.plugin import (
    REFERENCE_DIR,
    Plugin,
    installed_plugin,
    reservations,
    store_files,
)

SUBNET = "10.77.0.0/24"
# IPAM plugins need CNI_NETNS set but never open it.
NO_NETNS = "/var/run/netns/unused-by-ipam"


def reference(name: str) -> Path:
    path = REFERENCE_DIR / name
    if not path.is_file():
        pytest.skip(f"the reference {name} plugin is not installed in {REFERENCE_DIR}")
    return path


@pytest.fixture
def cni_path(installed: Path) -> str:
    return f"{installed}:{REFERENCE_DIR}"


@pytest.fixture
def ours(installed: Path, host: Namespace) -> Plugin:
    """The standalone IPAM plugin, run directly the way a main plugin runs it."""
    return installed_plugin(installed, host, REFERENCE_DIR, name="cni-host-local-py")


def ipam(data_dir: Path, **extra: Any) -> dict[str, Any]:
    return {"type": "cni-host-local-py", "subnet": SUBNET, "dataDir": str(data_dir), **extra}


def ipam_only(data_dir: Path, version: str = "1.0.0", **extra: Any) -> dict[str, Any]:
    return {"cniVersion": version, "name": "ipamnet", "ipam": ipam(data_dir, **extra)}


# ---- used by other main plugins ----


def test_ptp_with_our_host_local(
    host: Namespace, namespaces: NamespaceFactory, cni_path: str, data_dir: Path
) -> None:
    ptp = Plugin(reference("ptp"), host, cni_path)
    conf = {"cniVersion": "1.0.0", "name": "ptpnet", "type": "ptp", "ipam": ipam(data_dir)}
    red = namespaces.new("red")

    result = ptp.run("ADD", conf, container_id="red1", netns=red.path).ok().json
    assert result["ips"][0]["address"] == "10.77.0.2/24"
    assert red.addresses("eth0") == ["10.77.0.2/24"]
    assert reservations(data_dir, "ptpnet") == {"10.77.0.2": b"red1\r\neth0"}
    assert store_files(data_dir, "ptpnet")["last_reserved_ip.0"] == b"10.77.0.2"
    # ptp routes the container's address to its host veth.
    assert any(r["dst"] == "10.77.0.2" for r in host.routes())

    ptp.run("CHECK", {**conf, "prevResult": result}, container_id="red1", netns=red.path).ok()

    ptp.run("DEL", conf, container_id="red1", netns=red.path).ok()
    assert reservations(data_dir, "ptpnet") == {}
    assert red.link_names() == ["lo"]
    assert host.links("veth") == []


def test_macvlan_with_our_host_local(
    host: Namespace, namespaces: NamespaceFactory, cni_path: str, data_dir: Path
) -> None:
    macvlan = Plugin(reference("macvlan"), host, cni_path)
    host.add_plain_link("parent0")
    host.exec("ip", "link", "set", "parent0", "up")
    conf = {
        "cniVersion": "1.0.0",
        "name": "macnet",
        "type": "macvlan",
        "master": "parent0",
        "mode": "bridge",
        "ipam": ipam(data_dir, routes=[{"dst": "0.0.0.0/0"}]),
    }
    red = namespaces.new("red")
    outcome = macvlan.run("ADD", conf, container_id="red1", netns=red.path)
    if outcome.code != 0 and "operation not supported" in outcome.stdout.lower():
        pytest.skip(f"this kernel cannot put a macvlan on a dummy/ifb link: {outcome.stdout}")
    result = outcome.ok().json
    assert result["ips"][0]["address"] == "10.77.0.2/24"
    eth0 = red.link("eth0")
    assert eth0 is not None and eth0["linkinfo"]["info_kind"] == "macvlan"
    assert red.addresses("eth0") == ["10.77.0.2/24"]
    assert [r.get("gateway") for r in red.routes() if r["dst"] == "default"] == ["10.77.0.1"]
    assert reservations(data_dir, "macnet") == {"10.77.0.2": b"red1\r\neth0"}

    macvlan.run("DEL", conf, container_id="red1", netns=red.path).ok()
    assert reservations(data_dir, "macnet") == {}
    assert red.link_names() == ["lo"]


# ---- one data dir, two implementations ----


def test_shared_store_with_the_reference_host_local(
    host: Namespace, ours: Plugin, cni_path: str, data_dir: Path
) -> None:
    theirs = Plugin(reference("host-local"), host, cni_path)
    conf = ipam_only(data_dir)

    got = theirs.run("ADD", conf, container_id="ref1", netns=NO_NETNS).ok().json
    assert got["ips"][0]["address"] == "10.77.0.2/24"
    # Ours sees the reference's reservation and its round-robin cursor: the next address.
    got = ours.run("ADD", conf, container_id="ours1", netns=NO_NETNS).ok().json
    assert got["ips"][0]["address"] == "10.77.0.3/24"
    # And the other way round.
    got = theirs.run("ADD", conf, container_id="ref2", netns=NO_NETNS).ok().json
    assert got["ips"][0]["address"] == "10.77.0.4/24"
    assert reservations(data_dir, "ipamnet") == {
        "10.77.0.2": b"ref1\r\neth0",
        "10.77.0.3": b"ours1\r\neth0",
        "10.77.0.4": b"ref2\r\neth0",
    }

    # Ours releases the reference's reservation; the reference releases ours.
    ours.run("DEL", conf, container_id="ref1", netns=NO_NETNS).ok()
    theirs.run("DEL", conf, container_id="ours1").ok()
    assert reservations(data_dir, "ipamnet") == {"10.77.0.4": b"ref2\r\neth0"}

    # A duplicate ADD is refused by both, with the same message.
    ours_dup = ours.run("ADD", conf, container_id="ref2", netns=NO_NETNS).error(4)["msg"]
    theirs_dup = theirs.run("ADD", conf, container_id="ref2", netns=NO_NETNS).error(999)["msg"]
    assert (
        ours_dup
        == theirs_dup
        == (
            "failed to allocate for range 0:"
            " 10.77.0.4 has been allocated to ref2, duplicate allocation is not allowed"
        )
    )


def test_the_bridge_in_process_sees_the_reference_reservation(
    plugin: Plugin,
    namespaces: NamespaceFactory,
    netconf: dict[str, Any],
    cni_path: str,
    data_dir: Path,
) -> None:
    theirs = Plugin(reference("host-local"), plugin.host, cni_path)
    conf = {**netconf, "ipMasq": False}  # ipam: host-local on 192.168.15.0/24, gateway .5
    theirs.run("ADD", conf, container_id="ref1", netns=NO_NETNS).ok()
    red = namespaces.new("red")
    result = plugin.run("ADD", conf, container_id="red1", netns=red.path).ok().json
    assert result["ips"][0]["address"] == "192.168.15.2/24"
    plugin.run("DEL", {**conf}, container_id="ref1", netns=NO_NETNS).ok()
    assert reservations(data_dir, "testnet") == {"192.168.15.2": b"red1\r\neth0"}
    plugin.run("DEL", conf, container_id="red1", netns=red.path).ok()


# ---- GC, STATUS, VERSION ----


def test_gc_keeps_only_valid_attachments(ours: Plugin, data_dir: Path) -> None:
    for cid in ("a", "b", "c"):
        ours.run("ADD", ipam_only(data_dir), container_id=cid, netns=NO_NETNS).ok()
    (data_dir / "ipamnet" / "10.77.0.9").write_text("b")  # a legacy id-only reservation
    gc_conf = {
        **ipam_only(data_dir, "1.1.0"),
        "cni.dev/valid-attachments": [{"containerID": "b", "ifname": "eth0"}],
    }
    ours.run("GC", gc_conf, ifname="").ok()
    assert sorted(store_files(data_dir, "ipamnet")) == [
        "10.77.0.3",
        "10.77.0.9",
        "last_reserved_ip.0",
        "lock",
    ]
    # cnitool's GC sends no list at all: nothing is valid.
    ours.run("GC", ipam_only(data_dir, "1.1.0"), ifname="").ok()
    assert reservations(data_dir, "ipamnet") == {}


def test_status(ours: Plugin, data_dir: Path, tmp_path: Path) -> None:
    small = ipam_only(data_dir, "1.1.0", subnet="10.77.0.0/30")
    assert ours.run("STATUS", small, ifname="").ok().stdout == ""
    ours.run("ADD", small, container_id="a", netns=NO_NETNS).ok()
    body = ours.run("STATUS", small, ifname="").error(50)
    assert body["msg"] == "no IP addresses available in range set 0: 10.77.0.1-10.77.0.2"

    (tmp_path / "not-a-dir").write_text("")
    blocked = ipam_only(tmp_path / "not-a-dir", "1.1.0")
    body = ours.run("STATUS", blocked, ifname="").error(50)
    assert body["msg"].startswith("host-local cannot record reservations")


def test_version_and_about_with_a_bare_environment(installed: Path, host: Namespace) -> None:
    executable = installed / "cni-host-local-py"
    proc = env_i(host, executable, {"CNI_COMMAND": "VERSION"}, stdin=b"{}")
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, VERSION_BYTES, b"")
    proc = env_i(host, executable, {})
    assert proc.returncode == 0 and proc.stdout == b""
    assert proc.stderr.startswith(b"CNI host-local IPAM plugin (cni-host-local-py)")
