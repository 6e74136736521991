"""doctor's pure core: each finding's trigger and its one line (what, and what to do); the
exit status; what --fix's GC keeps and removes (no root, no kernel)."""

from __future__ import annotations

import ipaddress
from dataclasses import replace

import pytest

from cni_bridge_py import plan
from cni_bridge_py.doctor import checks
from cni_bridge_py.doctor.facts import (
    ERROR,
    WARNING,
    AgentSocket,
    BrNetfilter,
    Finding,
    HostFacts,
    IptablesVariant,
    NetworkFacts,
    Route,
)
from cni_bridge_py.inspect import join
from cni_bridge_py.inspect.model import (
    BridgeState,
    CacheEntry,
    ContainerSide,
    HostVeth,
    NatState,
    NetworkSpec,
    Observed,
    Reservation,
)
from cni_bridge_py.ipam.ranges import Range, RangeSet

NET = "mynet"
V4 = RangeSet.build([Range.build(ipaddress.ip_network("192.168.15.0/24"))])
V6 = RangeSet.build([Range.build(ipaddress.ip_network("fd00:15::/64"))])
SPEC = NetworkSpec(NET, "v-net-0", True, True, "iptables-nft", (V4,), "/x/mynet")
GATEWAY = "192.168.15.1/24"
HOST = HostFacts(
    ip_forward="1",
    ipv6_forwarding="0",
    iptables_in_use="nft",
    iptables=(IptablesVariant("nft", "iptables-nft-save", ("CNI-abc",), 4),),
    br_netfilter=BrNetfilter(loaded=False, call_iptables=None, call_ip6tables=None),
    agent=None,
)
SOCKET = AgentSocket("/run/cni-bridge-py/agent.sock", True, 0o600, 0, 0o700, 0, True)


def observed(*cids: str, veths: bool = True, reserve: bool = True) -> Observed:
    """Healthy attachments of `cids` (addresses .10, .11, ...), our aliased veths."""
    res, links, nat = [], [], []
    for i, cid in enumerate(cids):
        address = f"192.168.15.{10 + i}"
        res.append(Reservation(address, cid, "eth0"))
        peer = ContainerSide(f"/run/netns/{cid}", "eth0", "02:00:00:00:00:01", (f"{address}/24",))
        alias = plan.port_alias(NET, cid, "eth0")
        links.append(HostVeth(f"veth{cid}", 7 + i, "02:aa", "v-net-0", alias, peer=peer))
        nat.append(NatState("iptables", f"CNI-{cid}", cid, None, (f"{address}/32",)))
    bridge = BridgeState("v-net-0", "aa:aa", "UP", (GATEWAY,))
    return Observed(
        SPEC,
        bridge,
        tuple(links) if veths else (),
        tuple(res) if reserve else (),
        tuple(nat),
        (),
    )


def facts(obs: Observed | None = None, **changes: object) -> NetworkFacts:
    obs = observed("red") if obs is None else obs
    base = NetworkFacts(
        spec=obs.spec,
        summary=join.summarize(obs),
        bridge_kind="bridge",
        bridge_addresses=(GATEWAY,),
        routes=(Route("192.168.15.0/24", "v-net-0"), Route("0.0.0.0/0", "eth0")),
        data_dir_problem=None,
        owned_veths=frozenset(v.name for v in obs.veths),
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def lines(found: list[Finding]) -> list[str]:
    return [f.line() for f in found]


def test_a_healthy_host_and_network_find_nothing() -> None:
    assert checks.host_findings(HOST, [SPEC]) == []
    assert checks.network_findings(facts()) == []
    assert checks.exit_code([]) == 0


def test_errors_fail_warnings_only_with_strict() -> None:
    warning = Finding(WARNING, "host", "w", "do")
    assert checks.exit_code([warning]) == 0
    assert checks.exit_code([warning], strict=True) == 1
    assert checks.exit_code([warning, Finding(ERROR, "host", "e", "do")]) == 1
    assert warning.line() == "warning: host: w -> do"


def test_ip_forward_off_with_a_gateway_network() -> None:
    (found,) = checks.host_findings(replace(HOST, ip_forward="0"), [SPEC])
    assert found.severity == ERROR
    assert "net.ipv4.ip_forward is 0" in found.what and NET in found.what
    assert "sysctl -w net.ipv4.ip_forward=1" in found.todo
    # Neither isGateway nor ipMasq: nothing is routed through the host.
    l2 = replace(SPEC, is_gateway=False, ip_masq=False)
    assert checks.host_findings(replace(HOST, ip_forward="0"), [l2]) == []


def test_ipv6_forwarding_matters_only_with_v6_ranges() -> None:
    assert checks.host_findings(HOST, [SPEC]) == []  # ipv6_forwarding "0", no v6 range
    dual = replace(SPEC, range_sets=(V4, V6))
    (found,) = checks.host_findings(HOST, [dual])
    assert "net.ipv6.conf.all.forwarding is 0" in found.what


def test_cni_chains_in_the_unused_iptables_variant() -> None:
    legacy = IptablesVariant("legacy", "iptables-legacy-save", ("CNI-1", "CNI-2"), 6)
    (found,) = checks.host_findings(replace(HOST, iptables=(*HOST.iptables, legacy)), [SPEC])
    assert found.severity == ERROR
    assert "2 CNI chain(s) in iptables-legacy (CNI-1, CNI-2)" in found.what
    assert "iptables-nft" in found.what and "iptables-legacy" in found.todo


def test_other_rules_in_the_unused_variant_are_a_warning() -> None:
    legacy = IptablesVariant("legacy", "iptables-legacy-save", (), 3)
    (found,) = checks.host_findings(replace(HOST, iptables=(*HOST.iptables, legacy)), [SPEC])
    assert found.severity == WARNING and "3 rule(s) in iptables-legacy" in found.what
    empty = IptablesVariant("legacy", "iptables-legacy-save", (), 0)
    assert checks.host_findings(replace(HOST, iptables=(*HOST.iptables, empty)), [SPEC]) == []


def test_br_netfilter_on_is_a_warning_that_says_what_it_means() -> None:
    nf = BrNetfilter(loaded=True, call_iptables="1", call_ip6tables="0")
    (found,) = checks.host_findings(replace(HOST, br_netfilter=nf), [SPEC])
    assert found.severity == WARNING
    assert "bridge-nf-call-iptables is 1" in found.what and "v-net-0" in found.what
    assert "FORWARD" in found.what and "FORWARD" in found.todo
    off = BrNetfilter(loaded=True, call_iptables="0", call_ip6tables="0")
    assert checks.host_findings(replace(HOST, br_netfilter=off), [SPEC]) == []
    assert checks.host_findings(replace(HOST, br_netfilter=nf), []) == []  # no network


@pytest.mark.parametrize(
    ("agent", "expected"),
    [
        (SOCKET, []),
        (replace(SOCKET, listening=False), ["is stale"]),
        (replace(SOCKET, mode=0o666), ["not root-only (mode 0666"]),
        (replace(SOCKET, uid=1000), ["owner uid 1000"]),
        (replace(SOCKET, dir_mode=0o755), ["directory /run/cni-bridge-py is not root-only"]),
        (replace(SOCKET, is_socket=False), ["is not a socket"]),
    ],
)
def test_the_agent_socket(agent: AgentSocket, expected: list[str]) -> None:
    found = checks.host_findings(replace(HOST, agent=agent), [SPEC])
    assert len(found) == len(expected)
    for finding, text in zip(found, expected, strict=True):
        assert finding.severity == ERROR and text in finding.what


def test_no_masquerade_backend_with_ipmasq() -> None:
    (found,) = checks.network_findings(
        facts(replace(observed("red"), spec=replace(SPEC, masq_backend="none")))
    )
    assert "no masquerade backend" in found.what and "ipMasq" in found.todo


def test_the_bridge_name_taken_by_another_kind() -> None:
    (found,) = checks.network_findings(facts(observed(), bridge_kind="dummy", bridge_addresses=()))
    assert "'v-net-0' is taken by a link of kind dummy" in found.what
    assert "ip link del v-net-0" in found.todo


def test_another_address_on_the_bridge_as_add_would_refuse_it() -> None:
    found = checks.network_findings(facts(bridge_addresses=(GATEWAY, "10.9.9.9/8")))
    assert lines(found) == [
        f"error: {NET}: v-net-0 has 10.9.9.9/8 where the gateway {GATEWAY} goes: ADD refuses "
        'it (no forceAddress) -> `ip addr del 10.9.9.9/8 dev v-net-0`, or set "forceAddress": '
        "true"
    ]
    forced = replace(observed("red"), spec=replace(SPEC, force_address=True))
    (warning,) = checks.network_findings(facts(forced, bridge_addresses=(GATEWAY, "10.9.9.9/8")))
    assert warning.severity == WARNING and "next ADD removes it" in warning.what
    # A link-local IPv6 address or one of another family is no conflict.
    assert checks.network_findings(facts(bridge_addresses=(GATEWAY, "fd00::1/64"))) == []


def test_the_gateway_missing_from_a_bridge_with_containers() -> None:
    (found,) = checks.network_findings(facts(bridge_addresses=()))
    assert f"the gateway {GATEWAY} is not on v-net-0" in found.what
    assert checks.network_findings(facts(observed(), bridge_addresses=())) == []  # no containers


@pytest.mark.parametrize(
    ("route", "conflicts"),
    [
        (Route("192.168.15.0/24", "eth1"), True),
        (Route("192.168.15.128/25", "eth1"), True),
        (Route("192.168.0.0/16", "eth1"), False),  # less specific: the bridge's /24 wins
        (Route("10.0.0.0/8", "eth1"), False),
        (Route("192.168.15.0/24", "v-net-0"), False),
    ],
)
def test_a_route_taking_the_subnet(route: Route, conflicts: bool) -> None:
    found = checks.network_findings(facts(routes=(route,)))
    assert bool(found) == conflicts
    if conflicts:
        assert f"route {route.dst} via eth1 covers the network's subnet" in found[0].what
        assert f"ip route del {route.dst} dev eth1" in found[0].todo


def test_the_data_dir_not_writable() -> None:
    (found,) = checks.network_findings(facts(data_dir_problem="the IPAM data dir /x is a file"))
    assert found.what.startswith("the IPAM data dir /x is a file: ADD cannot reserve")


def test_a_leftover_not_in_the_cache_is_fixed_by_gc() -> None:
    # The reservation deleted: veth and NAT chain left over, no cache entry names them.
    one = facts(observed("red", reserve=False))
    (found,) = checks.network_findings(one)
    assert found.what == (
        "attachment red/eth0 (192.168.15.10/24; veth vethred; NAT CNI-red): "
        "veth without reservation; NAT chain without reservation"
    )
    assert found.todo == f"{checks.FIX} (NAT CNI-red, veth vethred)"
    assert checks.gc_valid(one) == frozenset()


def test_a_cached_attachment_is_valid_and_told_to_del() -> None:
    obs = replace(
        observed("red", veths=False),
        cache=(CacheEntry("/c/mynet-red-eth0", "red", "eth0", "/run/netns/red"),),
    )
    one = facts(obs, cached=frozenset({("red", "eth0")}))
    (found,) = checks.network_findings(one)
    assert found.what.endswith(": no veth") and found.todo == checks.DEL
    assert checks.gc_valid(one) == {("red", "eth0")}
    assert checks.gc_removes(one, one.summary.rows[0]) == []


def test_healthy_attachments_stay_valid_without_the_cache() -> None:
    obs = observed("red", "blue")
    one = facts(replace(obs, reservations=obs.reservations[:1]))  # blue's reservation gone
    assert checks.gc_valid(one) == {("red", "eth0")}
    (found,) = checks.network_findings(one)
    assert found.what.startswith("attachment blue/eth0") and checks.FIX in found.todo


def test_a_reservation_alone_is_removed_and_a_missing_nat_chain_needs_a_re_add() -> None:
    obs = observed("red", veths=False)
    (alone,) = checks.network_findings(facts(replace(obs, nat=())))
    assert alone.what.endswith(": reservation without container")
    assert alone.todo == f"{checks.FIX} (reservation 192.168.15.10)"
    no_nat = facts(replace(observed("red"), nat=()), cached=frozenset({("red", "eth0")}))
    (found,) = checks.network_findings(no_nat)
    assert found.what.endswith(": no NAT chain") and found.todo == checks.READD


def test_a_reference_veth_is_not_gcs_to_delete() -> None:
    obs = observed("red", reserve=False)
    one = facts(obs, owned_veths=frozenset())
    (found,) = checks.network_findings(one)
    assert "NAT CNI-red)" in found.todo and "ip link del vethred" in found.todo
