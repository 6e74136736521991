"""What cannot be compared side by side: keys Debian's reference 1.1.1 lacks (it ignores them or
rejects the request), VLANs on a kernel without bridge VLAN filtering, and the intended
differences whose reference half is a failure (asserted here by name)."""

from __future__ import annotations

import hashlib
import subprocess
from typing import Any

import pytest

from tests.conformance.conftest import LaneFactory
from tests.conformance.differences import asserting
from tests.conformance.harness import (
    NETWORK,
    NS_TAG,
    Call,
    Lane,
    Record,
    Scenario,
    Trace,
    ipam,
    netconf,
)
from tests.conformance.scenarios import TWO_SETS, gateway_net, lifecycle
from tests.support.netns import NamespaceFactory

ADDRESS = "10.188.0.2"


def run(lane: LaneFactory, scenario: Scenario, plugin: str = "ours") -> tuple[Lane, Trace]:
    one = lane(plugin, plugin)
    return one, one.run(scenario)


def result(record: Record) -> dict[str, Any]:
    assert record["exit"] == 0, record["stdout"]
    value = record["stdout"]["json"]
    assert isinstance(value, dict)
    return value


def error_code(record: Record) -> int:
    assert record["exit"] == 1, record["stdout"]
    code = record["stdout"]["error"]
    assert isinstance(code, int)
    return code


def container_link(record: Record, tag: str, name: str) -> dict[str, Any]:
    links: list[dict[str, Any]] = record["containers"][tag]["links"]
    found = [lk for lk in links if lk["name"] == name]
    assert len(found) == 1, links
    return found[0]


def host_links(record: Record, kind: str | None = None) -> list[dict[str, Any]]:
    return [lk for lk in record["host"]["links"] if kind is None or lk["kind"] == kind]


def nat_lines(record: Record) -> list[str]:
    return [x for x in record["host"]["iptables-nat"] + record["host"]["nft"] if "CNI-" in x]


def reservations(record: Record) -> list[str]:
    return [n for n in record["store"] if n.startswith(f"{NETWORK}/10.")]


def h16(text: str) -> str:
    return hashlib.sha512(text.encode()).hexdigest()[:16]


# --- VLANs: this kernel's bridge has no VLAN filtering -----------------------------------------


def kernel_has_vlan_filtering(namespaces: NamespaceFactory) -> bool:
    probe = namespaces.new(f"{NS_TAG}vlanprobe")
    made = subprocess.run(
        ["ip", "-n", probe.name, "link", "add", "b", "type", "bridge", "vlan_filtering", "1"],
        capture_output=True,
        check=False,
    )
    return made.returncode == 0


@pytest.mark.parametrize(
    "keys",
    [
        {"vlan": 100},
        {"vlan": 100, "preserveDefaultVlan": False},
        {"vlanTrunk": [{"id": 101}, {"minID": 200, "maxID": 210}]},
    ],
    ids=["vlan", "vlan-no-default", "trunk"],
)
def test_vlan_fails_cleanly_without_kernel_support(
    lane: LaneFactory, namespaces: NamespaceFactory, keys: dict[str, Any]
) -> None:
    if kernel_has_vlan_filtering(namespaces):
        pytest.skip("this kernel's bridge filters VLANs: vlan ADD would succeed here")
    ours, (add, delete) = run(
        lane, Scenario("vlan", gateway_net(**keys), (Call("ADD"), Call("DEL")))
    )
    assert error_code(add) in (2, 7), ours.log
    assert "vlan" in ours.log[0].lower(), ours.log
    assert [lk["name"] for lk in host_links(add)] == ["lo"], "a bridge or veth was left"
    assert [lk["name"] for lk in add["containers"]["red"]["links"]] == ["lo"]
    assert nat_lines(add) == [] and reservations(add) == []
    assert delete["exit"] == 0, ours.log


# --- ipMasqBackend nftables (the reference's layout) -------------------------------------------


@pytest.mark.parametrize("version", ["1.0.0", "1.1.0"])
def test_nftables_masquerade_backend(lane: LaneFactory, version: str) -> None:
    conf = gateway_net(cniVersion=version, ipMasqBackend="nftables")
    ours, (add, check, delete) = run(lane, Scenario("nft", conf, lifecycle()))
    assert add["exit"] == 0 and check["exit"] == 0 and delete["exit"] == 0, ours.log
    table = "inet cni_plugins_masquerade"
    nft = [line for line in add["host"]["nft"] if line.startswith(table)]
    comment = f"{h16(NETWORK)}-{h16('eth0:red')}, net: {NETWORK}, if: eth0, id: red"
    rules = [line for line in nft if f'comment "{comment}"' in line]
    assert len(rules) == 1, nft
    assert rules[0].startswith(f"{table}/chain masq_checks: ip saddr {ADDRESS} ")
    assert "ip daddr != 10.188.0.0/24 masquerade" in rules[0], rules[0]
    postrouting = [line.split(": ", 1)[1] for line in nft if "/chain postrouting: " in line]
    assert postrouting == [
        "type nat hook postrouting priority srcnat; policy accept;",
        "ip daddr 224.0.0.0/4 return",
        "ip6 daddr ff00::/8 return",
        "goto masq_checks",
    ], nft
    assert not [x for x in add["host"]["iptables-nat"] if "CNI-" in x], "iptables used too"
    assert not [x for x in delete["host"]["nft"] if comment in x], "the rule stays after DEL"


# --- keys Debian's 1.1.1 lacks -------------------------------------------------------------------

MACS = {"env": "02:11:22:33:44:01", "args": "02:11:22:33:44:02", "runtime": "02:11:22:33:44:03"}


@pytest.mark.parametrize(
    ("sources", "winner"),
    [(("env",), "env"), (("env", "args"), "args"), (("env", "args", "runtime"), "runtime")],
    ids=["cni-args", "args-over-cni-args", "runtime-config-over-all"],
)
def test_mac_precedence(lane: LaneFactory, sources: tuple[str, ...], winner: str) -> None:
    keys: dict[str, Any] = {}
    if "args" in sources:
        keys["args"] = {"cni": {"mac": MACS["args"]}}
    if "runtime" in sources:
        keys["runtimeConfig"] = {"mac": MACS["runtime"]}
    cni_args = f"MAC={MACS['env']}" if "env" in sources else ""
    scenario = Scenario(
        "mac", gateway_net(**keys), lifecycle(cni_args=cni_args), keep_macs=tuple(MACS.values())
    )
    ours, (add, check, _delete) = run(lane, scenario)
    assert check["exit"] == 0, ours.log
    assert container_link(add, "red", "eth0")["mac"] == MACS[winner]
    assert result(add)["interfaces"][2]["mac"] == "<kernel's>"


def test_port_isolation(lane: LaneFactory) -> None:
    ours, (add, check, _delete) = run(
        lane, Scenario("iso", gateway_net(portIsolation=True), lifecycle())
    )
    assert check["exit"] == 0, ours.log
    (port,) = host_links(add, "veth")
    assert port["port"]["isolated"] is True


def test_disable_container_interface_with_ipam_is_a_config_error(lane: LaneFactory) -> None:
    conf = gateway_net(disableContainerInterface=True)
    ours, (add,) = run(lane, Scenario("dci", conf, (Call("ADD"),)))
    assert error_code(add) == 7, ours.log
    assert "disableContainerInterface" in ours.log[0], ours.log


# --- intended differences whose reference half is a failure ------------------------------------


def test_version_1_1_0_config(lane: LaneFactory) -> None:
    asserting("version-1.1.0")
    scenario = Scenario("v110", gateway_net(cniVersion="1.1.0"), lifecycle())
    ours, trace = run(lane, scenario)
    assert [r["exit"] for r in trace] == [0, 0, 0], ours.log
    assert result(trace[0])["cniVersion"] == "1.1.0"
    reference, (ref_add, *_) = run(lane, Scenario("v110", scenario.conf, (Call("ADD"),)), "ref")
    assert error_code(ref_add) == 1, reference.log


def test_retry_after_failed_add(lane: LaneFactory) -> None:
    asserting("failed-add-rolled-back")
    conf = gateway_net(ipam=ipam(subnet="10.188.0.0/30"))
    steps = (Call("ADD"), Call("ADD", "blue"), Call("DEL"), Call("ADD", "blue"))
    ours, trace = run(lane, Scenario("retry", conf, steps))
    assert [r["exit"] for r in trace] == [0, 1, 0, 0], ours.log
    assert result(trace[3])["ips"][0]["address"] == "10.188.0.2/30"
    reference, ref_trace = run(lane, Scenario("retry", conf, steps), "ref")
    assert [r["exit"] for r in ref_trace] == [0, 1, 0, 1], reference.log
    assert "already exists" in reference.log[3], reference.log


def test_ipam_without_type_is_a_config_error(lane: LaneFactory) -> None:
    asserting("ipam-without-type-rejected")
    conf = netconf(ipam={"subnet": "10.188.0.0/24"})
    ours, (add,) = run(lane, Scenario("notype", conf, (Call("ADD"),)))
    assert error_code(add) == 7 and "ipam" in ours.log[0], ours.log
    reference, (ref_add,) = run(lane, Scenario("notype", conf, (Call("ADD"),)), "ref")
    assert "ips" not in result(ref_add), reference.log  # the reference runs in L2 mode


def test_cni_args_ip_without_ignore_unknown(lane: LaneFactory) -> None:
    asserting("cni-args-ip-known")
    scenario = Scenario("ip", gateway_net(), (Call("ADD", cni_args="IP=10.188.0.50"),))
    ours, (add,) = run(lane, scenario)
    assert result(add)["ips"][0]["address"] == "10.188.0.50/24", ours.log
    reference, (ref_add,) = run(lane, scenario, "ref")
    assert error_code(ref_add) == 999 and "unknown args" in reference.log[0], reference.log


def test_ipv4_gateways_of_all_range_sets(lane: LaneFactory) -> None:
    asserting("ipv4-gateways-of-all-sets")
    conf = gateway_net(ipam=ipam(ranges=TWO_SETS))
    steps = (
        Call("ADD"),
        Call("ADD", "blue"),
        Call("CHECK", "blue", prev_result=True),
        Call("DEL"),
        Call("DEL", "blue"),
    )
    ours, trace = run(lane, Scenario("gateways", conf, steps))
    assert [r["exit"] for r in trace] == [0, 0, 0, 0, 0], ours.log
    assert result(trace[0])["ips"] == [
        {"interface": 2, "address": "10.188.0.2/24", "gateway": "10.188.0.1"},
        {"interface": 2, "address": "10.189.0.2/24", "gateway": "10.189.0.1"},
    ]
    assert [ip["address"] for ip in result(trace[1])["ips"]] == ["10.188.0.3/24", "10.189.0.3/24"]
    (bridge,) = host_links(trace[1], "bridge")
    gateways = [
        f"{a['local']}/{a['prefixlen']}" for a in bridge["addresses"] if a["family"] == "inet"
    ]
    assert gateways == ["10.188.0.1/24", "10.189.0.1/24"], bridge
    assert host_links(trace[4], "veth") == [] and reservations(trace[4]) == []
    assert nat_lines(trace[4]) == [], nat_lines(trace[4])
    reference, (ref_add,) = run(lane, Scenario("gateways", conf, (Call("ADD"),)), "ref")
    assert error_code(ref_add) == 999, reference.log
    assert "already has an IP address different from 10.189.0.1/24" in reference.log[0]
