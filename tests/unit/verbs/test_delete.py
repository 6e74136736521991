"""DEL is idempotent and complete whatever is already gone, and removes only what is its own."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Any

import pytest

from cni_bridge_py.errors import InvalidNetns, IOFailure
from cni_bridge_py.plan import port_alias
from tests.doubles.kernel import HOST_NETNS, FakeLinks
from tests.doubles.world import World
from tests.unit.verbs.support import NETNS, add, netconf, run, with_prev

VETH = "veth00000001"

VETH = "veth00000001"


def conf(**top: Any) -> dict[str, Any]:
    return netconf(macspoofchk=True, **top)


@pytest.fixture
def added(world: World, red: FakeLinks) -> dict[str, Any]:
    """red/eth0 attached; returns its ADD result."""
    result = add(world, conf())
    world.calls.log.clear()
    return result


def assert_nothing_of_red(world: World) -> None:
    """No veth, reservation, masquerade or spoof rule of red/eth0 anywhere."""
    owners = [link.alias for link in world.host.links()]
    assert port_alias("testnet", "red", "eth0") not in owners
    red = world.kernel.namespaces.get(NETNS)
    if red is not None:
        assert "eth0" not in red.names() or red.get("eth0").kind != "veth"
    assert world.reservations("testnet") == {}
    assert all(backend.of("red") == [] for backend in world.masq.values())
    assert world.spoof is not None and world.spoof.rules == {}


def gone_netns(world: World) -> None:
    world.kernel.remove_netns(NETNS)


def gone_interface(world: World) -> None:
    world.kernel.namespaces[NETNS].drop("eth0")


def gone_reservation(world: World) -> None:
    world.store("testnet").held.clear()


def gone_masquerade(world: World) -> None:
    for backend in world.masq.values():
        backend.rules.clear()


def gone_spoof_rules(world: World) -> None:
    assert world.spoof is not None
    world.spoof.rules.clear()


def gone_everything(world: World) -> None:
    for arrange in (gone_netns, gone_reservation, gone_masquerade, gone_spoof_rules):
        arrange(world)


def nothing_gone(world: World) -> None:
    return None


@pytest.mark.usefixtures("added")
@pytest.mark.parametrize(
    "arrange",
    [
        nothing_gone,
        gone_netns,
        gone_interface,
        gone_reservation,
        gone_masquerade,
        gone_spoof_rules,
        gone_everything,
    ],
)
@pytest.mark.parametrize("netns", [NETNS, ""])
def test_del_twice_leaves_nothing_of_the_attachment(
    world: World, arrange: Callable[[World], None], netns: str
) -> None:
    arrange(world)
    for _ in range(2):
        assert run(world, "DEL", conf(), netns=netns) == ""
        if netns:
            assert_nothing_of_red(world)
        else:
            assert_released(world)
    assert world.notes.text() == ""


def assert_released(world: World) -> None:
    """Without CNI_NETNS the interface is out of reach (it goes with the namespace); the rest
    is found from the network, container ID and ifname alone."""
    assert world.reservations("testnet") == {}
    assert all(backend.of("red") == [] for backend in world.masq.values())
    assert world.spoof is not None and world.spoof.rules == {}


def test_del_removes_the_pair_and_keeps_the_bridge_and_gateway(
    world: World, red: FakeLinks, added: dict[str, Any]
) -> None:
    run(world, "DEL", conf())

    assert world.calls.log == [
        "red retire eth0 cbpgone00000002",
        f"host delete_link {VETH}",
        "ipam delete red/eth0",
        "spoof teardown red-eth0",
        "iptables teardown red 10.0.0.2/24",
        "nftables teardown red 10.0.0.2/24",
    ]
    assert red.names() == ["lo"]
    assert world.host.names() == ["cni0", "eth0", "lo"]
    assert world.host.addresses_of("cni0") == ["10.0.0.1/24"]
    assert world.host.get("cni0").up


def test_del_on_a_host_that_never_had_the_network(world: World, red: FakeLinks) -> None:
    before = (world.host.state(), red.state())
    run(world, "DEL", conf())

    assert (world.host.state(), red.state()) == before
    assert world.calls.log == [
        "ipam delete red/eth0",
        "spoof teardown red-eth0",
        "iptables teardown red *",
        "nftables teardown red *",
    ]


def test_del_leaves_a_non_veth_ifname_alone(world: World, red: FakeLinks, added: object) -> None:
    gone_interface(world)
    red.put("eth0", "dummy")
    before = red.state()
    run(world, "DEL", conf())

    assert red.state() == before
    assert_nothing_of_red(world)


def test_del_leaves_a_veth_of_another_network_alone(world: World, red: FakeLinks) -> None:
    """A runtime reused eth0 of this container across networks: othernet's is not ours."""
    other = netconf(
        name="othernet", bridge="cni1", ipam={"type": "host-local", "subnet": "10.1.0.0/24"}
    )
    add(world, other)
    before = (world.host.state(), red.state(), world.masq["iptables"].of("red"))
    world.store("testnet").reserve("red", "eth0", ipaddress.ip_address("10.0.0.2"), 0)

    run(world, "DEL", conf())

    assert (world.host.state(), red.state(), world.masq["iptables"].of("red")) == before
    untouched = ("red retire", "red delete_link", "host delete_link")
    assert not [c for c in world.calls.log if c.startswith(untouched)]
    assert world.reservations("testnet") == {}
    assert world.reservations("othernet") == {"10.1.0.2": ("red", "eth0")}


def test_del_leaves_a_veth_of_another_container_alone(world: World, red: FakeLinks) -> None:
    world.host.put("cni0", "bridge")
    world.host.put_veth(
        "vethblue", red, "eth0", master="cni0", alias=port_alias("testnet", "blue", "eth0")
    )
    before = (world.host.state(), red.state())
    run(world, "DEL", conf())

    assert (world.host.state(), red.state()) == before


def test_del_removes_a_veth_without_our_alias(world: World, red: FakeLinks) -> None:
    """Made by the reference (or before aliases): removed as the reference's DEL would."""
    world.host.put("cni0", "bridge")
    world.host.put_veth("vethref", red, "eth0", master="cni0")
    run(world, "DEL", conf())

    assert red.names() == ["lo"]
    assert "vethref" not in world.host.names()


def test_del_without_the_reservation_finds_the_addresses_on_the_interface(
    world: World, red: FakeLinks
) -> None:
    """iptables jumps are per address: the second interface of the container keeps its own."""
    add(world, conf())
    add(world, conf(), ifname="eth1")
    gone_reservation(world)
    world.calls.log.clear()

    run(world, "DEL", conf())

    assert "iptables teardown red 10.0.0.2/24" in world.calls.log
    assert world.masq["iptables"].of("red") == ["10.0.0.3/24"]
    assert red.names() == ["eth1", "lo"]


def test_del_without_netns_releases_by_the_reservation(world: World, red: FakeLinks) -> None:
    add(world, conf())
    add(world, conf(), ifname="eth1")
    gone_netns(world)

    run(world, "DEL", conf())

    assert world.masq["iptables"].of("red") == ["10.0.0.3/24"]
    assert world.reservations("testnet") == {"10.0.0.3": ("red", "eth1")}


def test_del_with_only_prev_result_knowing_the_address(world: World, red: FakeLinks) -> None:
    result = add(world, conf())
    add(world, conf(), ifname="eth1")
    gone_netns(world)
    gone_reservation(world)

    run(world, "DEL", with_prev(conf(), result))

    assert world.masq["iptables"].of("red") == ["10.0.0.3/24"]


def test_del_knowing_no_address_removes_every_jump_of_the_container(
    world: World, red: FakeLinks
) -> None:
    """No netns, no reservation, no prevResult: the documented fallback takes the whole
    iptables chain of the container, its other interface's jump too."""
    add(world, conf())
    add(world, conf(), ifname="eth1")
    gone_netns(world)
    gone_reservation(world)

    run(world, "DEL", conf())

    assert "iptables teardown red *" in world.calls.log
    assert world.masq["iptables"].of("red") == []


def test_del_in_the_plugins_own_namespace_is_refused_and_removes_nothing(
    world: World,
) -> None:
    before = world.host.state()
    with pytest.raises(InvalidNetns) as caught:
        run(world, "DEL", conf(), netns=HOST_NETNS)

    assert caught.value.msg == f"{HOST_NETNS!r} is the plugin's own network namespace"
    assert world.host.state() == before
    assert world.calls.log == []


@pytest.mark.parametrize("step", ["del-link", "del-ipam"])
def test_a_del_that_failed_midway_is_finished_by_the_next(
    world: World, red: FakeLinks, added: object, step: str
) -> None:
    with pytest.raises(IOFailure) as caught:
        run(world, "DEL", conf(), fault=step)
    assert caught.value.msg == f"injected fault after step {step!r}"
    assert red.names() == ["lo"]

    run(world, "DEL", conf())
    assert_nothing_of_red(world)


@pytest.mark.parametrize(("where", "op"), [("iptables", "teardown"), ("spoof", "teardown")])
def test_a_firewall_failure_fails_del_and_a_retry_finishes(
    world: World, red: FakeLinks, added: object, where: str, op: str
) -> None:
    """Leftover rules match names a later container may get: DEL must not pretend."""
    boom = IOFailure(f"{where} {op} failed")
    world.calls.arm(where, op, error=boom)
    with pytest.raises(IOFailure) as caught:
        run(world, "DEL", conf())
    assert caught.value is boom

    run(world, "DEL", conf())
    assert_nothing_of_red(world)


def test_del_with_the_nftables_backend_removes_only_that_interface(
    world: World, red: FakeLinks
) -> None:
    nft = conf(ipMasqBackend="nftables")
    add(world, nft)
    add(world, nft, ifname="eth1")
    gone_netns(world)
    gone_reservation(world)

    run(world, "DEL", nft)

    assert world.masq["nftables"].of("red") == ["10.0.0.3/24"]


class Later:
    """The agent's Background, driven by hand: work waits until run_all()."""

    def __init__(self) -> None:
        self.pending: list[tuple[tuple[str, str], Callable[[], object]]] = []
        self.settled: list[tuple[str, str]] = []

    def later(self, key: tuple[str, str], work: Callable[[], object]) -> None:
        self.pending.append((key, work))

    def settle(self, key: tuple[str, str]) -> None:
        self.settled.append(key)
        for _, work in [p for p in self.pending if p[0] == key]:
            work()
        self.pending = [p for p in self.pending if p[0] != key]


def test_del_answers_before_the_slow_deletion_and_a_new_add_settles_it_first(
    world: World, red: FakeLinks, added: dict[str, Any]
) -> None:
    world.background = later = Later()
    run(world, "DEL", conf())

    # Answered: down at once (off the bridge) and renamed, released, rules gone; the pair
    # still exists.
    assert world.reservations("testnet") == {}
    assert all(backend.of("red") == [] for backend in world.masq.values())
    assert sorted(red.names()) == ["cbpgone00000002", "lo"]
    assert not red.get("cbpgone00000002").up
    assert [key for key, _ in later.pending] == [("red", "eth0")]
    assert VETH in world.host.names()

    # ADD of the same attachment waits for that deletion before it looks at the namespace.
    add(world, netconf())
    assert later.settled[0] == ("red", "eth0") and later.pending == []
    assert red.get("eth0").up


class Elsewhere(Later):
    """The pending deletion belongs to another agent process: settling here waits for nothing."""

    def settle(self, key: tuple[str, str]) -> None:
        self.settled.append(key)


def test_a_new_add_finds_the_name_free_while_another_process_deletes_the_old_pair(
    world: World, red: FakeLinks, added: dict[str, Any]
) -> None:
    world.background = later = Elsewhere()
    run(world, "DEL", conf())

    add(world, netconf())
    assert red.get("eth0").up
    assert "cbpgone00000002" in red.names()

    # The old pair's deletion, finishing late, takes only the old pair.
    for _, work in later.pending:
        work()
    assert sorted(red.names()) == ["eth0", "lo"]
    assert world.reservations("testnet") != {}


def test_a_del_removes_a_pair_an_earlier_del_retired_but_never_deleted(
    world: World, red: FakeLinks, added: dict[str, Any]
) -> None:
    """The agent worker holding the deletion died: the runtime's next DEL finishes it."""
    world.background = Later()  # its pending work is lost with it
    run(world, "DEL", conf())
    assert "cbpgone00000002" in red.names()

    world.background = Later()
    run(world, "DEL", conf())
    assert red.names() == ["lo"]
    assert VETH not in world.host.names()


def test_a_retired_pair_of_another_attachment_is_left_alone(
    world: World, red: FakeLinks, added: dict[str, Any]
) -> None:
    world.background = Later()
    run(world, "DEL", conf())

    run(world, "DEL", conf(), ifname="eth1")
    assert "cbpgone00000002" in red.names()
