"""inspect's pure core: records of what was read -> rows with their states, range use, and
the table / JSON / DOT renderings (no root, no kernel)."""

from __future__ import annotations

import ipaddress
import json
from dataclasses import replace

import pytest

from cni_bridge_py import plan
from cni_bridge_py.firewall.layout import chain_name
from cni_bridge_py.inspect import join, render
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
RANGES = (RangeSet.build([Range.build(ipaddress.ip_network("192.168.15.0/24"))]),)
SPEC = NetworkSpec(NET, "v-net-0", True, True, "iptables-nft", RANGES, "/x/mynet")
BRIDGE = BridgeState("v-net-0", "aa:aa:aa:aa:aa:aa", "UP", ("192.168.15.254/24",))


def veth(name: str, cid: str, address: str, *, alias: bool = True) -> HostVeth:
    peer = ContainerSide(f"/run/netns/{cid}", "eth0", "02:00:00:00:00:01", (f"{address}/24",))
    return HostVeth(
        name,
        7,
        "02:00:00:00:00:02",
        "v-net-0",
        plan.port_alias(NET, cid, "eth0") if alias else "",
        peer=peer,
    )


def attachment(cid: str, address: str) -> tuple[Reservation, HostVeth, NatState]:
    nat = NatState("iptables", chain_name(NET, cid), cid, None, (f"{address}/32",))
    return Reservation(address, cid, "eth0"), veth(f"veth{cid}", cid, address), nat


def observed(*parts: tuple[Reservation, HostVeth, NatState], **changes: object) -> Observed:
    base = Observed(
        SPEC,
        BRIDGE,
        tuple(p[1] for p in parts),
        tuple(p[0] for p in parts),
        tuple(p[2] for p in parts),
        (),
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def states(obs: Observed) -> dict[str, str]:
    return {f"{r.container_id}/{r.ifname}": r.state for r in join.summarize(obs).rows}


def test_a_healthy_network() -> None:
    summary = join.summarize(
        observed(attachment("red", "192.168.15.1"), attachment("blue", "192.168.15.2"))
    )
    assert summary.ok
    assert states(observed(attachment("red", "192.168.15.1"))) == {"red/eth0": "ok"}
    red = next(r for r in summary.rows if r.container_id == "red")
    assert red.addresses == ("192.168.15.1/24",)
    assert red.netns == "/run/netns/red" and red.host_veth == "vethred"
    assert red.nat == chain_name(NET, "red")
    assert summary.ports == ("vethblue", "vethred")
    assert summary.gateways == ("192.168.15.254/24",)
    # 192.168.15.1 - .254 without the gateway .254... the default gateway is .1: 253 usable
    assert [(u.used, u.size) for u in summary.range_use] == [(2, 253)]


def test_a_deleted_veth() -> None:
    res, _, nat = attachment("red", "192.168.15.1")
    assert states(observed(attachment("red", "192.168.15.1"), veths=())) == {"red/eth0": "no veth"}
    alone = observed(veths=(), reservations=(res,), nat=())
    assert states(alone) == {"red/eth0": "reservation without container"}
    assert nat  # the chain alone keeps "no veth"


def test_a_deleted_reservation() -> None:
    got = states(observed(attachment("red", "192.168.15.1"), reservations=()))
    assert got == {"red/eth0": "veth without reservation; NAT chain without reservation"}


def test_a_leftover_nat_chain() -> None:
    got = states(observed(attachment("red", "192.168.15.1"), reservations=(), veths=()))
    assert got == {"red/": "NAT chain without reservation"}


def test_a_cache_entry_without_reservation() -> None:
    entry = CacheEntry("/c/mynet-red-eth0", "red", "eth0", "/run/netns/red")
    got = states(observed(cache=(entry,)))
    assert got == {"red/eth0": "cache without reservation"}


def test_a_missing_nat_chain_only_with_ipmasq() -> None:
    obs = observed(attachment("red", "192.168.15.1"), nat=())
    assert states(obs) == {"red/eth0": "no NAT chain"}
    assert states(replace(obs, spec=replace(SPEC, ip_masq=False))) == {"red/eth0": "ok"}


def test_the_reference_veth_is_matched_by_its_containers_address() -> None:
    res, _, nat = attachment("ref", "192.168.15.3")
    ref = veth("veth1234", "ref", "192.168.15.3", alias=False)
    summary = join.summarize(observed((res, ref, nat)))
    assert summary.ok, summary.rows
    assert summary.rows[0].host_veth == "veth1234"


def test_an_unknown_veth_on_the_bridge() -> None:
    stray = replace(veth("vethzz", "x", "10.1.1.1", alias=False), peer=None)
    summary = join.summarize(observed(veths=(stray,)))
    (row,) = summary.rows
    assert row.state == "veth without reservation" and row.netns == "unknown"


def test_the_cache_gives_the_netns_and_a_reference_veth_without_address() -> None:
    res, _, nat = attachment("red", "192.168.15.1")
    blind = replace(veth("vethab", "red", "192.168.15.1", alias=False), peer=None)
    entry = CacheEntry("/c/x", "red", "eth0", "/run/netns/from-cache", host_ifname="vethab")
    (row,) = join.summarize(observed((res, blind, nat), cache=(entry,))).rows
    assert row.ok and row.netns == "/run/netns/from-cache" and row.host_veth == "vethab"


def test_an_address_missing_in_the_container() -> None:
    res, v, nat = attachment("red", "192.168.15.1")
    assert v.peer is not None
    moved = replace(v, peer=replace(v.peer, addresses=("192.168.15.9/24",)))
    assert states(observed((res, moved, nat))) == {"red/eth0": "address not in container"}


def test_a_missing_bridge_is_a_network_problem() -> None:
    summary = join.summarize(observed(attachment("red", "192.168.15.1"), bridge=None))
    assert summary.problems == ("no bridge",) and not summary.ok


def test_legacy_reservations_name_the_container_only() -> None:
    res, v, nat = attachment("red", "192.168.15.1")
    assert states(observed((replace(res, ifname=None), v, nat))) == {"red/eth0": "ok"}


def test_nftables_state_names_the_interface() -> None:
    res, v, _ = attachment("red", "192.168.15.1")
    nft = NatState("nftables", "nft abc", "red", "eth0", ("192.168.15.1",))
    assert states(observed((res, v, nft))) == {"red/eth0": "ok"}


def test_the_table_is_aligned_and_the_json_complete() -> None:
    summary = join.summarize(
        observed(attachment("red", "192.168.15.1"), attachment("b", "192.168.15.2"))
    )
    text = render.table([summary])
    assert "network mynet: ok" in text and "range use   192.168.15.1-192.168.15.254 2/253" in text
    header, *rows = text.split("\n\n", 1)[1].strip().splitlines()
    assert header.index("STATE") == rows[0].index("ok") == rows[1].index("ok")
    data = json.loads(render.to_json([summary]))
    (net,) = data["networks"]
    assert net["ok"] and net["rangeUse"] == [
        {"ranges": "192.168.15.1-192.168.15.254", "used": 2, "size": 253}
    ]
    assert {a["containerID"]: a["state"] for a in net["attachments"]} == {"red": "ok", "b": "ok"}


def test_the_graph_draws_anomalies_red() -> None:
    graph = pytest.importorskip("cni_bridge_py.inspect.graph")
    pytest.importorskip("graphviz")
    obs = observed(attachment("red", "192.168.15.1"), attachment("blue", "192.168.15.2"))
    broken = replace(obs, veths=obs.veths[:1])
    source = graph.build([join.summarize(broken)]).source
    assert "v-net-0" in source and "vethred" in source and "/run/netns/red" in source
    assert "no veth" in source and "red" in source
    blue_node = source[source.index("container blue") :]
    assert "color=red" in blue_node[: blue_node.index("]")]
    red_node = source[source.index("container red") :]
    assert "color=black" in red_node[: red_node.index("]")]


def test_a_graph_needs_a_known_format(tmp_path: object) -> None:
    from cni_bridge_py.inspect import graph

    with pytest.raises(graph.GraphError):
        graph.write([], "out.jpeg")
