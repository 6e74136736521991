"""CHECK compares prevResult with the host; the first mismatch is the error, by code and text."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Any

import pytest

from cni_bridge_py.errors import CniError
from cni_bridge_py.firewall.layout import MasqRequest, jump_rule
from tests.doubles.kernel import FakeLinks
from tests.doubles.world import World
from tests.unit.verbs.support import NETNS, add, netconf, run, with_prev

VETH = "veth00000001"


def conf(**top: Any) -> dict[str, Any]:
    return netconf(macspoofchk=True, **top)


@pytest.fixture
def checked(world: World, red: FakeLinks) -> dict[str, Any]:
    """The CHECK config for red/eth0 right after its ADD."""
    return with_prev(conf(), add(world, conf()))


def check_error(world: World, config: dict[str, Any], **how: str) -> tuple[int, str]:
    with pytest.raises(CniError) as caught:
        run(world, "CHECK", config, **how)
    return caught.value.code, caught.value.msg


def test_check_right_after_add_passes_and_changes_nothing(
    world: World, red: FakeLinks, checked: dict[str, Any]
) -> None:
    mark = world.calls.mark()
    before = (world.host.state(), red.state())

    assert run(world, "CHECK", checked) == ""
    assert world.calls.since(mark) == []
    assert (world.host.state(), red.state()) == before


def test_check_without_prev_result(world: World) -> None:
    assert check_error(world, conf()) == (7, "CHECK needs prevResult")


def test_check_of_a_missing_namespace(world: World, checked: dict[str, Any]) -> None:
    code, msg = check_error(world, checked, netns="/var/run/netns/gone")
    assert (code, msg) == (8, "network namespace '/var/run/netns/gone' does not exist")


def no_reservation(world: World, red: FakeLinks) -> str:
    world.store("testnet").held.clear()
    return "host-local: failed to find address added by container red"


def no_bridge(world: World, red: FakeLinks) -> str:
    world.host.drop("cni0")
    return "bridge 'cni0' does not exist"


def not_a_bridge(world: World, red: FakeLinks) -> str:
    world.host.drop("cni0")
    world.host.put("cni0", "dummy")
    return "'cni0' is not a bridge (it is a dummy link)"


def bridge_mac_differs(world: World, red: FakeLinks) -> str:
    was = world.host.get("cni0").mac
    world.host.set_mac(world.host.get("cni0").index, "0a:58:00:00:99:99", "arranged")
    return f"bridge cni0 has MAC 0a:58:00:00:99:99, prevResult says {was}"


def container_link_missing(world: World, red: FakeLinks) -> str:
    red.drop("eth0")
    return f"eth0 does not exist in {NETNS}"


def container_link_not_a_veth(world: World, red: FakeLinks) -> str:
    red.drop("eth0")
    red.put("eth0", "dummy")
    return f"eth0 in {NETNS} is not a veth (dummy)"


def container_mac_differs(world: World, red: FakeLinks) -> str:
    was = red.get("eth0").mac
    red.set_mac(red.get("eth0").index, "0a:58:00:00:99:98", "arranged")
    return f"eth0 has MAC 0a:58:00:00:99:98, prevResult says {was}"


def host_peer_missing(world: World, red: FakeLinks) -> str:
    """Moved into another namespace: its index names nothing (or something else) on the host."""
    world.host.move(VETH, world.netns("/var/run/netns/elsewhere"))
    return "the host end of eth0 is missing"


def host_peer_not_on_the_bridge(world: World, red: FakeLinks) -> str:
    world.host.detach(VETH)
    return f"host veth {VETH} is not attached to bridge cni0"


def missing_address(world: World, red: FakeLinks) -> str:
    red.drop_address("eth0", ipaddress.ip_interface("10.0.0.2/24"))
    return "eth0 lacks address 10.0.0.2/24"


def missing_route(world: World, red: FakeLinks) -> str:
    red.drop_route("eth0", ipaddress.ip_network("0.0.0.0/0"))
    return "eth0 lacks route 0.0.0.0/0 via 10.0.0.1"


def missing_spoof_rule(world: World, red: FakeLinks) -> str:
    assert world.spoof is not None
    world.spoof.rules.clear()
    return f'macspoofchk rule missing: iifname "{VETH}" jump cni-br-iface-red-eth0'


def missing_masquerade_rule(world: World, red: FakeLinks) -> str:
    world.masq["iptables"].rules.clear()
    request = MasqRequest("testnet", "red", (ipaddress.ip_interface("10.0.0.2/24"),), "eth0")
    return f"masquerade rule missing: {jump_rule(request, request.addresses[0])}"


@pytest.mark.parametrize(
    "arrange",
    [
        no_reservation,
        no_bridge,
        not_a_bridge,
        bridge_mac_differs,
        container_link_missing,
        container_link_not_a_veth,
        container_mac_differs,
        host_peer_missing,
        host_peer_not_on_the_bridge,
        missing_address,
        missing_route,
        missing_spoof_rule,
        missing_masquerade_rule,
    ],
)
def test_the_first_mismatch_is_the_error(
    world: World,
    red: FakeLinks,
    checked: dict[str, Any],
    arrange: Callable[[World, FakeLinks], str],
) -> None:
    """Code 3: the container's network is not as the runtime knows it."""
    expected = arrange(world, red)
    assert check_error(world, checked) == (3, expected)


def test_an_earlier_mismatch_wins(world: World, red: FakeLinks, checked: dict[str, Any]) -> None:
    """Both the address and the masquerade rule are gone: the kernel's state is named first."""
    expected = missing_address(world, red)
    missing_masquerade_rule(world, red)
    assert check_error(world, checked) == (3, expected)


def test_prev_result_without_the_container_interface(world: World, checked: dict[str, Any]) -> None:
    prev = dict(checked["prevResult"])
    prev["interfaces"] = [i for i in prev["interfaces"] if i["name"] != "eth0"]
    code, msg = check_error(world, {**checked, "prevResult": prev})
    assert (code, msg) == (3, f"prevResult has no interface 'eth0' with sandbox {NETNS}")


def test_check_without_a_masquerade_backend(checked: dict[str, Any], world: World) -> None:
    world.masq.clear()
    code, msg = check_error(world, checked)
    assert (code, msg) == (3, "ipMasq is set but no masquerade backend is available on this host")


def test_check_without_nft_for_macspoofchk(checked: dict[str, Any], world: World) -> None:
    world.spoof = None
    code, msg = check_error(world, checked)
    assert (code, msg) == (3, "macspoofchk is set but nft is not available on this host")
