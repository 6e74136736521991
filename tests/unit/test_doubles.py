"""The fakes of tests/doubles keep the kernel's and the backends' semantics the verbs rely on:
if one drifted, the verb tests over it would prove nothing."""

from __future__ import annotations

import errno
import ipaddress

import pytest

from cni_bridge_py.errors import InvalidNetns, IOFailure
from cni_bridge_py.firewall.layout import MasqRequest
from cni_bridge_py.kernel.errors import KernelError
from cni_bridge_py.ports import PortFlags
from tests.doubles.calls import Calls
from tests.doubles.firewall import FakeMasq
from tests.doubles.kernel import HOST_NETNS, Kernel

NETNS = "/var/run/netns/red"
iface = ipaddress.ip_interface


@pytest.fixture
def kernel() -> Kernel:
    made = Kernel(Calls())
    made.add_netns(NETNS)
    return made


def veth_pair(kernel: Kernel) -> tuple[int, int]:
    kernel.host.create_veth("veth0", "eth0", NETNS, 0, "")
    red = kernel.namespaces[NETNS]
    return kernel.host.get("veth0").index, red.get("eth0").index


def test_a_new_namespace_has_only_lo_down(kernel: Kernel) -> None:
    red = kernel.namespaces[NETNS]
    assert red.names() == ["lo"]
    assert red.get("lo").operstate == "DOWN"
    assert kernel.host.get("lo").operstate == "UNKNOWN"


def test_veth_peer_is_made_in_the_peer_namespace_with_its_own_index(kernel: Kernel) -> None:
    host_index, peer_index = veth_pair(kernel)
    red = kernel.namespaces[NETNS]

    assert kernel.host.get("veth0").peer_index == peer_index
    assert red.get("eth0").peer_index == host_index
    assert peer_index == 2  # indexes are per namespace: lo is 1 there too
    assert kernel.calls.log == ["host create_veth veth0 red:eth0"]


@pytest.mark.parametrize("end", ["host", "peer"])
def test_deleting_either_end_of_a_veth_deletes_both(kernel: Kernel, end: str) -> None:
    host_index, peer_index = veth_pair(kernel)
    red = kernel.namespaces[NETNS]
    if end == "host":
        assert kernel.host.delete_link(host_index, "veth0")
    else:
        assert red.delete_link(peer_index, "eth0")

    assert "veth0" not in kernel.host.names()
    assert red.names() == ["lo"]


def test_destroying_a_namespace_takes_the_host_end_with_it(kernel: Kernel) -> None:
    veth_pair(kernel)
    kernel.remove_netns(NETNS)
    assert "veth0" not in kernel.host.names()
    assert not kernel.netns_exists(NETNS)


def test_missing_links_are_none_and_deleting_one_is_false(kernel: Kernel) -> None:
    assert kernel.host.link("nope") is None
    assert kernel.host.link_by_index(99) is None
    assert kernel.host.delete_link(99, "nothing") is False


def test_changing_a_missing_link_is_enodev(kernel: Kernel) -> None:
    with pytest.raises(KernelError) as caught:
        kernel.host.set_up(99, "veth gone")
    assert caught.value.errno == errno.ENODEV
    assert str(caught.value) == "configuring veth gone: No such device"


def test_create_bridge_answers_whether_it_created(kernel: Kernel) -> None:
    assert kernel.host.create_bridge("br0", 0) is True
    assert kernel.host.create_bridge("br0", 0) is False
    assert kernel.host.create_bridge("eth0", 0) is False  # any link of that name


def test_a_taken_veth_name_is_eexist(kernel: Kernel) -> None:
    veth_pair(kernel)
    with pytest.raises(KernelError) as caught:
        kernel.host.create_veth("veth0", "eth1", NETNS, 0, "")
    assert caught.value.errno == errno.EEXIST
    assert kernel.calls.log[-1] == "host create_veth veth0 red:eth1 !failed"


def test_a_veth_into_a_missing_namespace_is_invalid_netns(kernel: Kernel) -> None:
    with pytest.raises(InvalidNetns):
        kernel.host.create_veth("veth0", "eth0", "/var/run/netns/gone", 0, "")


def test_an_unset_bridge_mac_follows_its_lowest_port_until_set(kernel: Kernel) -> None:
    kernel.host.create_bridge("br0", 0)
    bridge = kernel.host.get("br0")
    host_index, _ = veth_pair(kernel)
    kernel.host.attach_port(host_index, bridge.index, PortFlags(), "", "veth0")

    port_mac = kernel.host.get("veth0").mac
    assert kernel.host.get("br0").mac == port_mac != bridge.mac
    kernel.host.set_mac(bridge.index, bridge.mac, "br0")
    kernel.host.put("lower", mac="00:00:00:00:00:01", master="br0")
    assert kernel.host.get("br0").mac == bridge.mac


def test_a_veth_is_up_only_when_both_ends_are(kernel: Kernel) -> None:
    host_index, peer_index = veth_pair(kernel)
    kernel.host.set_up(host_index, "veth0")
    assert kernel.host.get("veth0").operstate == "LOWERLAYERDOWN"
    kernel.namespaces[NETNS].set_up(peer_index, "eth0")
    assert kernel.host.get("veth0").operstate == "UP"


def test_addresses_duplicate_and_link_local(kernel: Kernel) -> None:
    index = kernel.host.put("d0").index
    assert kernel.host.add_address(index, iface("10.0.0.1/24"), "d0") is True
    assert kernel.host.add_address(index, iface("10.0.0.1/24"), "d0") is False
    assert kernel.host.add_address(index, iface("10.0.0.1/16"), "d0") is True
    assert kernel.host.add_address(index, iface("fd00::1/64"), "d0") is True
    assert kernel.host.add_address(index, iface("fd00::1/80"), "d0") is False
    assert any(a.ip.is_link_local for a in kernel.host.addresses(index))
    kernel.host.delete_address(index, iface("10.9.9.9/24"), "d0")  # absent: fine


def test_routes_need_the_link_up_and_the_gateway_on_link(kernel: Kernel) -> None:
    red = kernel.namespaces[NETNS]
    _, peer_index = veth_pair(kernel)
    default = ipaddress.ip_network("0.0.0.0/0")
    gateway = ipaddress.ip_address("10.0.0.1")
    red.add_address(peer_index, iface("10.0.0.2/24"), "eth0")
    with pytest.raises(KernelError) as down:
        red.add_route(default, gateway, peer_index, "eth0")
    red.set_up(peer_index, "eth0")
    with pytest.raises(KernelError) as unreachable:
        red.add_route(default, ipaddress.ip_address("10.9.0.1"), peer_index, "eth0")
    red.add_route(default, gateway, peer_index, "eth0")
    red.add_route(default, gateway, peer_index, "eth0")  # identical: EEXIST, fine

    assert (down.value.errno, unreachable.value.errno) == (errno.ENETDOWN, errno.ENETUNREACH)
    assert (default, gateway) in red.routes(peer_index)
    assert (ipaddress.ip_network("10.0.0.0/24"), None) in red.routes(peer_index)
    assert red.routes_of("eth0") == ["0.0.0.0/0 via 10.0.0.1"]


def test_an_armed_fault_fires_as_often_as_asked_and_is_logged(kernel: Kernel) -> None:
    kernel.calls.arm("host", "create_bridge", "br0", errno=errno.EPERM, times=2)
    for _ in range(2):
        with pytest.raises(KernelError) as caught:
            kernel.host.create_bridge("br0", 0)
        assert str(caught.value) == "creating bridge br0: Operation not permitted"
    assert kernel.host.create_bridge("br0", 0) is True
    assert kernel.calls.log == ["host create_bridge br0 !failed"] * 2 + ["host create_bridge br0"]


def test_check_netns_refuses_missing_and_own_namespaces(kernel: Kernel) -> None:
    kernel.check_netns(NETNS)
    for path in ("/var/run/netns/gone", HOST_NETNS):
        with pytest.raises(InvalidNetns):
            kernel.check_netns(path)


def test_iptables_teardown_removes_the_named_jumps_and_nftables_the_attachment() -> None:
    calls = Calls()
    one, two = iface("10.0.0.2/24"), iface("10.0.0.3/24")
    for name, left in (("iptables", ["10.0.0.3/24"]), ("nftables", ["10.0.0.3/24"])):
        masq = FakeMasq(name, calls)
        masq.setup(MasqRequest("net", "red", (one,), "eth0"))
        masq.setup(MasqRequest("net", "red", (two,), "eth1"))
        masq.teardown(MasqRequest("net", "red", (one,), "eth0"))
        assert masq.of("red") == left
        masq.teardown(MasqRequest("net", "red", (), "eth1"))
        assert masq.of("red") == []
    failing = FakeMasq("iptables", calls)
    calls.arm("iptables", "setup")
    with pytest.raises(IOFailure):
        failing.setup(MasqRequest("net", "red", (one,), "eth0"))
    assert failing.rules == set()
