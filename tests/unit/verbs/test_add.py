"""ADD on a fake host: what exists afterwards, the result, the order of the changes, and the
options that change what ADD does."""

from __future__ import annotations

import errno
import ipaddress

import pytest

from cni_bridge_py.errors import (
    CniError,
    InvalidConfig,
    InvalidEnvironment,
    IOFailure,
    UnsupportedField,
)
from cni_bridge_py.kernel.errors import KernelError
from tests.doubles.kernel import FakeLink, FakeLinks
from tests.doubles.world import World
from tests.unit.verbs.support import NETNS, add, netconf, run

VETH = "veth00000001"


def test_add_attaches_the_container_to_the_bridge(world: World, red: FakeLinks) -> None:
    add(world, netconf())

    bridge = world.host.get("cni0")
    assert (bridge.kind, bridge.up, bridge.operstate) == ("bridge", True, "UP")
    assert world.host.addresses_of("cni0") == ["10.0.0.1/24"]
    veth = world.host.get(VETH)
    assert (veth.kind, veth.master, veth.up) == ("veth", bridge.index, True)
    assert veth.alias == "cni-bridge-py testnet red eth0"
    assert red.names() == ["eth0", "lo"]
    eth0 = red.get("eth0")
    assert (eth0.kind, eth0.up, eth0.peer_index) == ("veth", True, veth.index)
    assert veth.peer_index == eth0.index
    assert red.get("lo").up
    assert red.addresses_of("eth0") == ["10.0.0.2/24"]
    assert red.routes_of("eth0") == ["0.0.0.0/0 via 10.0.0.1"]
    assert world.reservations("testnet") == {"10.0.0.2": ("red", "eth0")}
    assert world.masq["iptables"].of("red") == ["10.0.0.2/24"]
    assert world.masq["nftables"].rules == set()
    assert world.host.sysctls["net/ipv4/ip_forward"] == "1"
    assert red.sysctls == {
        "net/ipv4/conf/eth0/arp_notify": "1",
        "net/ipv6/conf/eth0/accept_dad": "0",
    }
    assert world.notes.text() == ""


def test_add_result_names_what_it_made(world: World, red: FakeLinks) -> None:
    bridge_mac_before_port = "0a:58:00:00:00:02"  # the MAC the fresh bridge was given
    result = add(world, netconf())

    assert result == {
        "cniVersion": "1.0.0",
        "interfaces": [
            {"name": "cni0", "mac": bridge_mac_before_port},
            {"name": VETH, "mac": world.host.get(VETH).mac},
            {"name": "eth0", "mac": red.get("eth0").mac, "sandbox": NETNS},
        ],
        "ips": [{"interface": 2, "address": "10.0.0.2/24", "gateway": "10.0.0.1"}],
        "routes": [{"dst": "0.0.0.0/0", "gw": "10.0.0.1"}],
        "dns": {},
    }
    # isGateway pins the bridge's MAC: it did not follow the new port's.
    assert world.host.get("cni0").mac == bridge_mac_before_port


def test_add_makes_its_changes_in_this_order(world: World) -> None:
    """Bridge before IPAM (a taken name fails first), the port enslaved before its MAC is
    pinned, sysctls before addresses, addresses before routes; the masquerade rules started
    once the veth exists (beside the container and gateway steps: in turn here)."""
    add(world, netconf())

    assert world.calls.log == [
        "host create_bridge cni0",
        "host sysctl net/ipv6/conf/cni0/accept_ra 0",
        "host set_up cni0",
        "ipam add red/eth0",
        f"host create_veth {VETH} red:eth0",
        f"host sysctl net/ipv6/conf/{VETH}/accept_ra 0",
        f"host attach_port {VETH} cni0",
        "host set_mac cni0 0a:58:00:00:00:02",
        "iptables setup red 10.0.0.2/24",
        "red sysctl net/ipv4/conf/eth0/arp_notify 1",
        "red sysctl net/ipv6/conf/eth0/accept_dad 0",
        "red add_address eth0 10.0.0.2/24",
        "red set_up eth0",
        "red set_up lo",
        "red add_route eth0 0.0.0.0/0 via 10.0.0.1",
        "host add_address cni0 10.0.0.1/24",
        "host sysctl net/ipv4/ip_forward 1",
    ]


def test_second_add_shares_the_bridge_and_its_gateway(world: World, red: FakeLinks) -> None:
    add(world, netconf())
    blue = world.netns("/var/run/netns/blue")
    mark = world.calls.mark()

    result = add(world, netconf(), cid="blue", netns=blue.path)

    assert "host create_bridge cni0" not in world.calls.since(mark)
    assert result["ips"][0]["address"] == "10.0.0.3/24"
    assert world.host.addresses_of("cni0") == ["10.0.0.1/24"]
    bridge = world.host.get("cni0")
    ports = [link.name for link in world.host.links() if link.master == bridge.index]
    assert ports == [VETH, "veth00000002"]
    assert blue.addresses_of("eth0") == ["10.0.0.3/24"]
    assert red.addresses_of("eth0") == ["10.0.0.2/24"]


def test_without_gateway_the_result_has_the_mac_the_bridge_took_from_its_port(
    world: World,
) -> None:
    """An unpinned bridge follows its lowest port's MAC; the result reads it again."""
    result = add(world, netconf(isGateway=False, isDefaultGateway=False))

    bridge = world.host.get("cni0")
    assert bridge.mac == world.host.get(VETH).mac != "0a:58:00:00:00:02"
    assert result["interfaces"][0] == {"name": "cni0", "mac": bridge.mac}
    assert not any(entry.startswith("host set_mac") for entry in world.calls.log)
    assert world.host.addresses_of("cni0") == []
    # host-local still names its gateway, which nothing puts on the bridge.
    assert result["ips"] == [{"interface": 2, "address": "10.0.0.2/24", "gateway": "10.0.0.1"}]
    assert "routes" not in result


def test_a_gateway_add_reads_its_bridge_last(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """As the reference does: a read of that one link is what brings the bridge's operstate up
    to date (a new bridge's carrier-on otherwise waits in linkwatch, reading UNKNOWN)."""
    read: list[int] = []
    real = world.host.link_by_index

    def spy(index: int) -> FakeLink | None:
        read.append(index)
        return real(index)

    monkeypatch.setattr(world.host, "link_by_index", spy)
    result = add(world, netconf())
    bridge = world.host.get("cni0")
    assert read[-1:] == [bridge.index]
    assert result["interfaces"][0] == {"name": "cni0", "mac": "0a:58:00:00:00:02"}  # pinned


def test_l2_mode_configures_no_address_and_no_masquerade(world: World, red: FakeLinks) -> None:
    conf = netconf(isGateway=False, isDefaultGateway=False)
    del conf["ipam"]
    result = add(world, conf)

    assert "ips" not in result
    assert red.addresses_of("eth0") == []
    assert red.sysctls == {}
    assert world.masq["iptables"].rules == set()
    assert world.stores == {}


def test_disabled_container_interface_stays_down_and_is_not_waited_for(
    world: World, red: FakeLinks
) -> None:
    conf = netconf(isGateway=False, isDefaultGateway=False, disableContainerInterface=True)
    del conf["ipam"]
    # Waiting would fail: proves ADD does not wait for a port whose peer stays down.
    world.calls.arm("host", "wait_operstate_up")
    add(world, conf)

    assert not red.get("eth0").up
    assert world.host.get(VETH).operstate == "LOWERLAYERDOWN"


def test_dual_stack_sets_ipv6_up_in_the_container(world: World, red: FakeLinks) -> None:
    conf = netconf(
        ipam={
            "type": "host-local",
            "ranges": [[{"subnet": "10.0.0.0/24"}], [{"subnet": "fd00::/64"}]],
        }
    )
    result = add(world, conf)

    assert [ip["address"] for ip in result["ips"]] == ["10.0.0.2/24", "fd00::2/64"]
    assert red.addresses_of("eth0") == ["10.0.0.2/24", "fd00::2/64"]
    assert red.routes_of("eth0") == ["0.0.0.0/0 via 10.0.0.1", "::/0 via fd00::1"]
    assert world.host.addresses_of("cni0") == ["10.0.0.1/24", "fd00::1/64"]
    assert red.sysctls["net/ipv6/conf/eth0/disable_ipv6"] == "0"
    assert red.sysctls["net/ipv6/conf/lo/disable_ipv6"] == "0"
    assert world.host.sysctls["net/ipv6/conf/all/forwarding"] == "1"
    assert world.masq["iptables"].of("red") == ["10.0.0.2/24", "fd00::2/64"]


def test_vlan_port_settings_follow_the_attach(world: World) -> None:
    add(world, netconf(vlan=10, vlanTrunk=[{"id": 20}], preserveDefaultVlan=False))

    assert world.host.get("cni0").vlan_filtering
    assert world.calls.log[0] == "host create_bridge cni0 vlan_filtering"
    attach = world.calls.log.index(f"host attach_port {VETH} cni0")
    assert world.calls.log[attach + 1 : attach + 4] == [
        f"host vlan {VETH} del 1",
        f"host vlan {VETH} add 10 pvid untagged",
        f"host vlan {VETH} add 20",
    ]
    assert [(v.vid, v.pvid) for v in world.host.get(VETH).vlans] == [(10, True), (20, False)]


def test_vlan_on_an_existing_bridge_without_filtering_fails_before_ipam(world: World) -> None:
    world.host.put("cni0", "bridge")
    with pytest.raises(InvalidConfig) as caught:
        run(world, "ADD", netconf(vlan=10))

    assert caught.value.msg == (
        "bridge 'cni0' exists without VLAN filtering, which vlan/vlanTrunk need"
    )
    assert world.calls.log == []


def test_kernel_without_vlan_filtering_is_an_unsupported_field(world: World) -> None:
    world.calls.arm("host", "create_bridge", errno=errno.EOPNOTSUPP)
    with pytest.raises(UnsupportedField) as caught:
        run(world, "ADD", netconf(vlan=10))

    assert caught.value.code == 2
    assert caught.value.msg == (
        "cannot create bridge 'cni0' with VLAN filtering: this kernel's bridge does not support it"
    )
    assert world.host.names() == ["eth0", "lo"]


@pytest.mark.parametrize(
    ("option", "flags"),
    [({"hairpinMode": True}, "hairpin"), ({"portIsolation": True}, "isolated")],
)
def test_port_flags(world: World, option: dict[str, bool], flags: str) -> None:
    add(world, netconf(**option))

    assert f"host port_flags {VETH} {flags}" in world.calls.log
    veth = world.host.get(VETH)
    assert (veth.hairpin, veth.isolated) == (flags == "hairpin", flags == "isolated")


def test_promisc_mode_sets_the_bridge_promiscuous(world: World) -> None:
    add(world, netconf(promiscMode=True))

    assert world.host.get("cni0").promisc
    assert "host set_promisc cni0" in world.calls.log


def test_mtu_and_mac_reach_the_veth(world: World, red: FakeLinks) -> None:
    add(world, netconf(mtu=1400, runtimeConfig={"mac": "02:42:ac:11:00:02"}))

    assert red.get("eth0").mac == "02:42:ac:11:00:02"
    assert (red.get("eth0").mtu, world.host.get(VETH).mtu, world.host.get("cni0").mtu) == (
        1400,
        1400,
        1400,
    )


def test_a_bridge_name_taken_by_another_kind_fails_before_anything_changes(
    world: World,
) -> None:
    world.host.put("cni0", "dummy")
    with pytest.raises(InvalidConfig) as caught:
        run(world, "ADD", netconf())

    assert caught.value.msg == "'cni0' already exists but is not a bridge (it is a dummy link)"
    assert world.calls.log == []


def test_a_taken_container_ifname_fails_and_releases_the_addresses(
    world: World, red: FakeLinks
) -> None:
    red.put("eth0", "dummy")
    with pytest.raises(InvalidEnvironment) as caught:
        run(world, "ADD", netconf())

    assert caught.value.msg == (f"container namespace {NETNS} already has an interface 'eth0'")
    # Refused before anything was made: no bridge, no reservation (issue 13).
    assert world.calls.log == []
    assert world.reservations("testnet") == {}


def test_a_taken_host_veth_name_is_drawn_again(world: World) -> None:
    world.host.put(VETH, "dummy")
    result = add(world, netconf())

    assert f"host create_veth {VETH} red:eth0 !failed" in world.calls.log
    assert result["interfaces"][1]["name"] == "veth00000002"
    assert world.host.get(VETH).kind == "dummy"


def test_no_free_host_veth_name_fails_and_releases(world: World) -> None:
    world.suffixes = ["taken"] * 10
    world.host.put("vethtaken", "dummy")
    with pytest.raises(IOFailure) as caught:
        run(world, "ADD", netconf())

    assert caught.value.msg == "no free host veth name after 10 tries"
    assert world.calls.log.count("host create_veth vethtaken red:eth0 !failed") == 10
    # The bridge this ADD made goes too: no port joined it.
    assert world.calls.log[-2:] == ["ipam delete red/eth0", "host delete_link cni0"]
    assert world.reservations("testnet") == {}


def test_eexist_for_a_name_the_host_does_not_have_is_not_retried(world: World) -> None:
    """The clash was elsewhere (the peer's name): another draw would not help."""
    world.calls.arm("host", "create_veth", errno=errno.EEXIST)
    with pytest.raises(KernelError) as caught:
        run(world, "ADD", netconf())

    assert caught.value.errno == errno.EEXIST
    assert str(caught.value) == f"creating veth {VETH} with peer eth0: File exists"
    assert sum(e.startswith("host create_veth") for e in world.calls.log) == 1


def test_macspoofchk_is_installed_before_the_container_end_comes_up(
    world: World, red: FakeLinks
) -> None:
    add(world, netconf(macspoofchk=True))

    mac = red.get("eth0").mac
    assert world.spoof is not None
    assert world.spoof.rules[("red", "eth0")].host_veth == VETH
    assert world.spoof.rules[("red", "eth0")].mac == mac
    log = world.calls.log
    assert log.index(f"spoof setup red-eth0 {VETH} {mac}") < log.index("red set_up eth0")


def test_macspoofchk_without_nft_fails_and_rolls_back() -> None:
    world = World(nft=False)
    world.netns(NETNS)
    with pytest.raises(IOFailure) as caught:
        run(world, "ADD", netconf(macspoofchk=True))

    assert caught.value.msg == "macspoofchk is set but nft is not available on this host"
    assert world.calls.log[-3:] == [
        f"host delete_link {VETH}",
        "ipam delete red/eth0",
        "host delete_link cni0",
    ]


def test_masquerade_without_a_backend_fails_and_rolls_back() -> None:
    world = World(masq=())
    world.netns(NETNS)
    with pytest.raises(IOFailure) as caught:
        run(world, "ADD", netconf())

    assert caught.value.msg == (
        "ipMasq is set but no masquerade backend (iptables or nftables) is available on this host"
    )
    # Found missing before the container step: nothing of it or the gateway was made.
    assert world.calls.log[-3:] == [
        f"host delete_link {VETH}",
        "ipam delete red/eth0",
        "host delete_link cni0",
    ]
    assert "host add_address cni0 10.0.0.1/24" not in world.calls.log


def test_masquerade_backend_as_configured(world: World) -> None:
    add(world, netconf(ipMasqBackend="nftables"))

    assert world.masq["nftables"].of("red") == ["10.0.0.2/24"]
    assert world.masq["iptables"].rules == set()


def test_a_port_that_never_comes_up_fails_the_add(world: World) -> None:
    world.kernel.stuck[VETH] = "DOWN"
    with pytest.raises(IOFailure) as caught:
        run(world, "ADD", netconf())

    assert (caught.value.msg, caught.value.details) == (
        "bridge port in error state: DOWN",
        f"host veth {VETH} never came up",
    )
    assert world.host.names() == ["eth0", "lo"]  # the bridge this ADD made went with it


def test_an_optional_sysctl_that_cannot_be_written_is_skipped(world: World) -> None:
    world.calls.arm("host", "sysctl", "net/ipv6/conf/cni0/accept_ra")
    add(world, netconf())

    assert "net/ipv6/conf/cni0/accept_ra" not in world.host.sysctls
    assert world.host.get(VETH).master == world.host.get("cni0").index


def test_another_address_on_the_bridge_needs_force_address(world: World) -> None:
    world.host.put("cni0", "bridge")
    other = ipaddress.ip_interface("10.0.0.99/24")
    world.host.add_address(world.host.get("cni0").index, other, "arranged")
    world.calls.log.clear()

    with pytest.raises(InvalidConfig) as caught:
        run(world, "ADD", netconf())
    assert (
        caught.value.msg
        == "'cni0' already has an IP address different from 10.0.0.1/24: 10.0.0.99/24"
    )
    assert world.host.addresses_of("cni0") == ["10.0.0.99/24"]
    assert world.reservations("testnet") == {}
    # Refused before the masquerade rules are started: a rejected ADD leaves no nat table.
    assert not [c for c in world.calls.log if c.startswith(("iptables", "nftables", "red "))]

    add(world, netconf(forceAddress=True), cid="red")
    log = world.calls.log
    assert log.index("host delete_address cni0 10.0.0.99/24") < log.index(
        "host add_address cni0 10.0.0.1/24"
    )
    assert world.host.addresses_of("cni0") == ["10.0.0.1/24"]


def test_add_into_a_missing_namespace_changes_nothing(world: World) -> None:
    with pytest.raises(CniError) as caught:
        run(world, "ADD", netconf(), netns="/var/run/netns/gone")

    assert caught.value.code == 8
    assert caught.value.msg == "network namespace '/var/run/netns/gone' does not exist"
    assert world.calls.log == []
