"""GC removes what this network holds for attachments the runtime no longer has, and only that:
its reservations, masquerade state and host veths; never another network's, never a veth
without our owner alias."""

from __future__ import annotations

from typing import Any

import pytest

from cni_bridge_py.firewall.layout import chain_name
from cni_bridge_py.plan import port_alias
from tests.doubles.kernel import FakeLinks
from tests.doubles.world import World
from tests.unit.verbs.support import add, netconf, run

BLUE_VETH = "veth00000002"


def our_net(**top: Any) -> dict[str, Any]:
    return netconf(cniVersion="1.1.0", **top)


def othernet() -> dict[str, Any]:
    """Another network on the same bridge, without a gateway of its own."""
    return netconf(
        cniVersion="1.1.0",
        name="othernet",
        isGateway=False,
        isDefaultGateway=False,
        ipam={"type": "host-local", "subnet": "10.1.0.0/24"},
    )


def gc_conf(valid: list[tuple[str, str]] | None, **top: Any) -> dict[str, Any]:
    conf = our_net(**top)
    if valid is not None:
        conf["cni.dev/valid-attachments"] = [
            {"containerID": cid, "ifname": ifname} for cid, ifname in valid
        ]
    return conf


@pytest.fixture
def crowd(world: World, red: FakeLinks) -> dict[str, FakeLinks]:
    """red and blue on testnet, green on othernet, all on cni0; and on cni0 too, a veth the
    reference made (no alias) and one labelled by someone else."""
    blue = world.netns("/var/run/netns/blue")
    green = world.netns("/var/run/netns/green")
    add(world, our_net())
    add(world, our_net(), cid="blue", netns=blue.path)
    add(world, othernet(), cid="green", netns=green.path)
    ref = world.netns("/var/run/netns/ref")
    world.host.put_veth("vethref", ref, "eth0", master="cni0")
    world.host.put_veth("vethalien", ref, "eth1", master="cni0", alias="my own label")
    world.calls.log.clear()
    return {"red": red, "blue": blue, "green": green, "ref": ref}


def removed(world: World) -> list[str]:
    return world.notes.text().splitlines()


def test_gc_removes_what_no_valid_attachment_owns(
    world: World, crowd: dict[str, FakeLinks]
) -> None:
    kept = {name: crowd[name].state() for name in ("red", "green", "ref")}
    host_before = world.host.state()

    assert run(world, "GC", gc_conf([("red", "eth0")])) == ""

    assert removed(world) == [
        "gc testnet: removed reservation 10.0.0.3",
        f"gc testnet: removed iptables: iptables {chain_name('testnet', 'blue')} id: blue",
        f"gc testnet: removed veth {BLUE_VETH} of blue/eth0",
    ]
    assert crowd["blue"].names() == ["lo"]
    assert world.reservations("testnet") == {"10.0.0.2": ("red", "eth0")}
    assert world.masq["iptables"].of("blue") == []
    # red (valid), green (othernet) and the veths without our alias are as they were.
    assert {name: crowd[name].state() for name in kept} == kept
    assert {n: s for n, s in world.host.state().items() if n != BLUE_VETH} == {
        n: s for n, s in host_before.items() if n != BLUE_VETH
    }
    assert world.reservations("othernet") == {"10.1.0.2": ("green", "eth0")}
    assert world.masq["iptables"].of("green") == ["10.1.0.2/24"]
    assert world.masq["iptables"].of("red") == ["10.0.0.2/24"]


def test_gc_without_a_valid_list_removes_the_whole_network(
    world: World, crowd: dict[str, FakeLinks]
) -> None:
    run(world, "GC", gc_conf(None))

    assert world.reservations("testnet") == {}
    assert crowd["red"].names() == crowd["blue"].names() == ["lo"]
    assert [e for e in world.calls.log if " delete_link " in e] == [
        "host delete_link veth00000001",
        f"host delete_link {BLUE_VETH}",
    ]
    assert world.host.names() == ["cni0", "eth0", "lo", "veth00000003", "vethalien", "vethref"]
    assert crowd["green"].names() == ["eth0", "lo"]


def test_gc_asks_every_backend(world: World, crowd: dict[str, FakeLinks]) -> None:
    run(world, "GC", gc_conf([("red", "eth0"), ("blue", "eth0")]))

    assert world.calls.log == ["ipam gc *", "iptables gc testnet", "nftables gc testnet"]
    assert removed(world) == []


def test_gc_tears_down_the_spoof_check_of_an_orphaned_port(world: World, red: FakeLinks) -> None:
    blue = world.netns("/var/run/netns/blue")
    add(world, our_net(macspoofchk=True))
    add(world, our_net(macspoofchk=True), cid="blue", netns=blue.path)

    run(world, "GC", gc_conf([("red", "eth0")], macspoofchk=True))

    assert "spoof teardown blue-eth0" in world.calls.log
    assert world.spoof is not None and list(world.spoof.rules) == [("red", "eth0")]


def test_gc_leaves_our_veths_on_another_bridge(world: World, red: FakeLinks) -> None:
    world.host.put("cni9", "bridge")
    alias = port_alias("testnet", "gone", "eth0")
    world.host.put_veth("vethaway", red, "eth0", master="cni9", alias=alias)
    world.host.put("cni0", "bridge")
    before = world.host.state()

    run(world, "GC", gc_conf([]))

    assert world.host.state() == before
    assert removed(world) == []


def test_gc_without_the_bridge_still_releases_reservations(world: World, red: FakeLinks) -> None:
    add(world, our_net())
    world.host.drop("cni0")
    world.calls.log.clear()

    run(world, "GC", gc_conf([]))

    assert removed(world)[0] == "gc testnet: removed reservation 10.0.0.2"
    assert not any(" delete_link " in e for e in world.calls.log)
    assert "veth00000001" in world.host.names()
