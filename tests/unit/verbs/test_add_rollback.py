"""A failed ADD raises its own error and undoes every earlier step, newest first; only the
bridge (shared, as with the reference) stays. A failing undo is noted for the runtime."""

from __future__ import annotations

import errno
import ipaddress
from typing import Any, NamedTuple

import pytest

from cni_bridge_py.errors import InvalidConfig, InvalidEnvironment, IOFailure, TryAgainLater
from cni_bridge_py.ipam.delegate import IpamPluginNotFound
from cni_bridge_py.kernel.errors import KernelError
from tests.doubles.kernel import FakeLinks
from tests.doubles.world import World
from tests.unit.verbs.support import NETNS, add, netconf, run

VETH = "veth00000001"
# What a change made by ADD is undone with.
REMOVALS = {"delete", "delete_link", "delete_address", "teardown"}

UNDO_IPAM = "ipam delete red/eth0"
UNDO_VETH = f"host delete_link {VETH}"
UNDO_SPOOF = "spoof teardown red-eth0"
UNDO_GATEWAY = "host delete_address cni0 10.0.0.1/24"
UNDO_MASQ = "iptables teardown red 10.0.0.2/24"
# The bridge this ADD created, joined by no port (issue 13: a rejected ADD leaves nothing).
UNDO_BRIDGE = "host delete_link cni0"


def rollback_conf(**top: Any) -> dict[str, Any]:
    """Every undoable step in play: IPAM, veth, macspoofchk, gateway and masquerade."""
    return netconf(macspoofchk=True, **top)


def undo_calls(log: list[str]) -> list[str]:
    """The log from the first removal on: ADD itself removes nothing (without forceAddress)."""
    first = next((i for i, e in enumerate(log) if e.split(" ")[1] in REMOVALS), len(log))
    return log[first:]


def assert_only_the_bridge_left(
    world: World, red: FakeLinks, bridge_addresses: tuple[str, ...] = ()
) -> None:
    assert [n for n in world.host.names() if n not in ("lo", "eth0")] in ([], ["cni0"])
    if "cni0" in world.host.names():
        assert world.host.addresses_of("cni0") == list(bridge_addresses)
    assert red.names() == ["lo"]
    assert world.reservations("testnet") == {}
    assert all(backend.rules == set() for backend in world.masq.values())
    assert world.spoof is not None and world.spoof.rules == {}


@pytest.mark.parametrize(
    ("step", "undone"),
    [
        ("bridge", [UNDO_BRIDGE]),
        ("ipam", [UNDO_IPAM, UNDO_BRIDGE]),
        ("veth", [UNDO_VETH, UNDO_IPAM, UNDO_BRIDGE]),
        # The rules are started once the veth exists, beside the container and gateway steps.
        ("container", [UNDO_MASQ, UNDO_SPOOF, UNDO_VETH, UNDO_IPAM, UNDO_BRIDGE]),
        ("gateway", [UNDO_GATEWAY, UNDO_MASQ, UNDO_SPOOF, UNDO_VETH, UNDO_IPAM, UNDO_BRIDGE]),
        ("masq", [UNDO_GATEWAY, UNDO_MASQ, UNDO_SPOOF, UNDO_VETH, UNDO_IPAM, UNDO_BRIDGE]),
        ("port", [UNDO_GATEWAY, UNDO_MASQ, UNDO_SPOOF, UNDO_VETH, UNDO_IPAM, UNDO_BRIDGE]),
    ],
)
def test_fault_point_undoes_every_earlier_step_newest_first(
    world: World, red: FakeLinks, step: str, undone: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(IOFailure) as caught:
        run(world, "ADD", rollback_conf(), fault=step)

    assert caught.value.msg == f"injected fault after step {step!r}"
    assert undo_calls(world.calls.log) == undone
    assert_only_the_bridge_left(world, red)
    assert "cni0" not in world.host.names()  # made by this ADD and joined by no port
    assert world.notes.text() == ""
    assert capsys.readouterr() == ("", "")


DUAL_STACK = {
    "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": "10.0.0.0/24"}], [{"subnet": "fd00::/64"}]],
    }
}


class Failing(NamedTuple):
    # "<where> <op> [<target>]" as the call log names the call.
    call: str
    undone: list[str]
    top: dict[str, Any] = {}  # noqa: RUF012 - a default never mutated
    # The step runs beside the next ones: its failure is raised where ADD waits for it, so
    # those steps' changes come between the failure and the undo.
    awaited_later: bool = False


FAILING = [
    Failing("host create_bridge cni0", []),
    Failing("host set_up cni0", [UNDO_BRIDGE]),
    Failing("ipam add red/eth0", [UNDO_BRIDGE]),
    Failing(f"host create_veth {VETH}", [UNDO_IPAM, UNDO_BRIDGE]),
    Failing(f"host attach_port {VETH}", [UNDO_VETH, UNDO_IPAM, UNDO_BRIDGE]),
    Failing(f"host port_flags {VETH}", [UNDO_VETH, UNDO_IPAM, UNDO_BRIDGE], {"hairpinMode": True}),
    Failing(f"host vlan {VETH}", [UNDO_VETH, UNDO_IPAM, UNDO_BRIDGE], {"vlan": 10}),
    Failing("host set_mac cni0", [UNDO_VETH, UNDO_IPAM, UNDO_BRIDGE]),
    Failing("spoof setup red-eth0", [UNDO_VETH, UNDO_IPAM, UNDO_BRIDGE]),
    Failing(
        "red sysctl net/ipv6/conf/eth0/disable_ipv6",
        [
            "iptables teardown red 10.0.0.2/24,fd00::2/64",
            UNDO_SPOOF,
            UNDO_VETH,
            UNDO_IPAM,
            UNDO_BRIDGE,
        ],
        DUAL_STACK,
    ),
    Failing("red add_address eth0", [UNDO_MASQ, UNDO_SPOOF, UNDO_VETH, UNDO_IPAM, UNDO_BRIDGE]),
    Failing("red set_up eth0", [UNDO_MASQ, UNDO_SPOOF, UNDO_VETH, UNDO_IPAM, UNDO_BRIDGE]),
    Failing("red set_up lo", [UNDO_MASQ, UNDO_SPOOF, UNDO_VETH, UNDO_IPAM, UNDO_BRIDGE]),
    Failing("red add_route eth0", [UNDO_MASQ, UNDO_SPOOF, UNDO_VETH, UNDO_IPAM, UNDO_BRIDGE]),
    Failing("host add_address cni0", [UNDO_MASQ, UNDO_SPOOF, UNDO_VETH, UNDO_IPAM, UNDO_BRIDGE]),
    Failing(
        "host sysctl net/ipv4/ip_forward",
        [UNDO_GATEWAY, UNDO_MASQ, UNDO_SPOOF, UNDO_VETH, UNDO_IPAM, UNDO_BRIDGE],
    ),
    Failing(
        "iptables setup red",
        [UNDO_GATEWAY, UNDO_MASQ, UNDO_SPOOF, UNDO_VETH, UNDO_IPAM, UNDO_BRIDGE],
        awaited_later=True,
    ),
    Failing(
        "host wait_operstate_up",
        [UNDO_GATEWAY, UNDO_MASQ, UNDO_SPOOF, UNDO_VETH, UNDO_IPAM, UNDO_BRIDGE],
    ),
]


@pytest.mark.parametrize("failing", FAILING, ids=[f.call for f in FAILING])
def test_a_failing_operation_is_the_error_and_everything_before_it_is_undone(
    world: World, red: FakeLinks, failing: Failing, capsys: pytest.CaptureFixture[str]
) -> None:
    where, op, *target = failing.call.split(" ")
    # Each port fails with its own kind of error: the kernel's, or the tools' and the store's.
    boom = KernelError(f"injected {op}", errno.EIO) if where in ("host", "red") else IOFailure(op)
    world.calls.arm(where, op, *target, error=boom)
    with pytest.raises(IOFailure) as caught:
        run(world, "ADD", rollback_conf(**failing.top))

    assert caught.value is boom
    after = world.calls.after_failure()
    assert (undo_calls(after) if failing.awaited_later else after) == failing.undone
    assert_only_the_bridge_left(world, red)
    assert world.notes.text() == ""
    assert capsys.readouterr() == ("", "")


def test_ipam_exhaustion_is_the_error_and_leaves_nothing(world: World, red: FakeLinks) -> None:
    conf = rollback_conf(ipam={"type": "host-local", "subnet": "10.0.0.0/30"})
    world.store("testnet").reserve("other", "eth0", ipaddress.ip_address("10.0.0.2"), 0)
    with pytest.raises(TryAgainLater) as caught:
        run(world, "ADD", conf)

    assert caught.value.msg.startswith("failed to allocate for range 0: no IP addresses available")
    assert world.calls.after_failure() == [UNDO_BRIDGE]
    assert world.reservations("testnet") == {"10.0.0.2": ("other", "eth0")}
    assert red.names() == ["lo"]


def test_a_failing_undo_is_noted_and_the_rest_still_runs(
    world: World, red: FakeLinks, capsys: pytest.CaptureFixture[str]
) -> None:
    world.calls.arm("host", "delete_link", VETH)
    with pytest.raises(IOFailure) as caught:
        run(world, "ADD", rollback_conf(), fault="port")

    assert caught.value.msg == "injected fault after step 'port'"
    assert world.calls.after_failure() == [UNDO_IPAM]
    notes = world.notes.text()
    assert notes.startswith(f"rollback: undoing host veth {VETH} failed:\n")
    assert f"KernelError: deleting veth {VETH}: Operation not permitted" in notes
    assert notes.count("rollback:") == 1
    # What the failed undo could not remove is all that is left.
    assert VETH in world.host.names() and red.names() == ["eth0", "lo"]
    assert world.reservations("testnet") == {}
    assert world.masq["iptables"].rules == set()
    assert capsys.readouterr() == ("", "")


def test_every_failing_undo_is_noted_newest_first(world: World, red: FakeLinks) -> None:
    world.calls.arm("iptables", "teardown")
    world.calls.arm("ipam", "delete")
    with pytest.raises(IOFailure):
        run(world, "ADD", rollback_conf(), fault="port")

    notes = world.notes.text()
    masq, ipam = (
        notes.index("undoing masquerade rules failed"),
        notes.index("undoing IPAM allocation failed"),
    )
    assert masq < ipam
    assert "IOFailure: iptables-restore failed" in notes
    assert red.names() == ["lo"]


def test_rollback_keeps_a_gateway_other_ports_route_through(world: World, red: FakeLinks) -> None:
    """The address was ADD's own (added now), yet another container is on the bridge."""
    world.host.put("cni0", "bridge")
    world.host.put_veth("vethref", world.netns("/var/run/netns/ref"), "eth0", master="cni0")
    with pytest.raises(IOFailure):
        run(world, "ADD", rollback_conf(), fault="port")

    assert undo_calls(world.calls.log) == [UNDO_MASQ, UNDO_SPOOF, UNDO_VETH, UNDO_IPAM]
    assert world.host.addresses_of("cni0") == ["10.0.0.1/24"]


def test_a_failed_second_add_leaves_the_first_intact(world: World, red: FakeLinks) -> None:
    add(world, rollback_conf())
    before = (world.host.state(), red.state(), world.reservations("testnet"))
    masq_before = set(world.masq["iptables"].rules)
    blue = world.netns("/var/run/netns/blue")

    with pytest.raises(IOFailure):
        run(world, "ADD", rollback_conf(), cid="blue", netns=blue.path, fault="port")

    # The gateway was there already: blue's ADD did not add it, so does not remove it.
    assert undo_calls(world.calls.log) == [
        "iptables teardown blue 10.0.0.3/24",
        "spoof teardown blue-eth0",
        "host delete_link veth00000002",
        "ipam delete blue/eth0",
    ]
    assert (world.host.state(), red.state(), world.reservations("testnet")) == before
    assert world.masq["iptables"].rules == masq_before
    assert blue.names() == ["lo"]


def test_a_conflicting_bridge_address_found_at_add_time_still_rolls_back(
    world: World, red: FakeLinks
) -> None:
    world.host.put("cni0", "bridge")
    taken = ipaddress.ip_interface("10.9.0.1/16")
    world.host.add_address(world.host.get("cni0").index, taken, "arranged")
    with pytest.raises(InvalidConfig):
        run(world, "ADD", rollback_conf())

    assert undo_calls(world.calls.log) == [UNDO_SPOOF, UNDO_VETH, UNDO_IPAM]
    assert_only_the_bridge_left(world, red, bridge_addresses=("10.9.0.1/16",))


def test_a_repeated_add_is_refused_before_anything_and_keeps_the_attachment(
    world: World, red: FakeLinks
) -> None:
    """The interface name is taken (as the reference's veth step finds before its IPAM):
    refused before anything is made, so nothing of the live attachment (its reservation
    above all) is rolled back."""
    add(world, rollback_conf())
    before = (world.host.state(), red.state(), world.reservations("testnet"))
    mark = world.calls.mark()

    with pytest.raises(InvalidEnvironment) as caught:
        run(world, "ADD", rollback_conf())

    assert caught.value.msg == f"container namespace {NETNS} already has an interface 'eth0'"
    assert world.calls.since(mark) == []
    assert (world.host.state(), red.state(), world.reservations("testnet")) == before
    assert world.masq["iptables"].of("red") == ["10.0.0.2/24"]


# Issue 13: what a new user tries first. Each is refused with its typed error before anything
# is made: no bridge (nor its link-local address), no file in the store, no rule.
REJECTED = [
    pytest.param({}, {"ifname": "lo"}, InvalidEnvironment, id="ifname-taken"),
    pytest.param(
        {"ipam": {"type": "no-such-ipam"}}, {}, IpamPluginNotFound, id="ipam-plugin-missing"
    ),
    pytest.param({}, {"args": "IP=10.9.9.9"}, InvalidEnvironment, id="ip-outside-the-ranges"),
    pytest.param({}, {"args": "IP=10.0.0.1"}, InvalidEnvironment, id="ip-is-the-gateway"),
]


@pytest.mark.parametrize(("top", "how", "error"), REJECTED)
def test_a_rejected_add_changes_nothing(
    world: World, red: FakeLinks, top: dict[str, Any], how: dict[str, str], error: type[Exception]
) -> None:
    with pytest.raises(error):
        run(world, "ADD", rollback_conf(**top), **how)

    assert world.calls.log == []
    assert world.host.names() == ["eth0", "lo"]
    assert red.names() == ["lo"]
    assert world.reservations("testnet") == {}
    assert all(backend.rules == set() for backend in world.masq.values())
