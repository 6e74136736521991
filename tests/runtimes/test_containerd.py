"""containerd's `ctr run --cni` drives our plugin: a busybox-static container gets an address,
routes and reachability, and removal leaves nothing (ctr's DEL carries an empty CNI_NETNS; a
detached container gets no DEL from ctr, so the test sends it the way libcni would)."""

from __future__ import annotations

import ipaddress
import itertools
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.runtimes.containerd import Containerd, CtrLane
from tests.runtimes.hostnet import HostNetwork, NetworkFactory, link_alias
from tests.runtimes.libcni import cache_entries, delete_like_libcni
from tests.runtimes.support import Timings, reference_bin_dir

LaneFactory = Callable[[str], CtrLane]
_ids = itertools.count()


@pytest.fixture
def lanes(
    containerd: Containerd, networks: NetworkFactory, installed: Path, tmp_path: Path
) -> Iterator[LaneFactory]:
    """lanes("ours" | "reference") -> a ctr lane on a fresh network of this test. Containers
    of the test are removed afterwards, then the lanes' namespaces (then the networks)."""
    made: list[CtrLane] = []

    def make(kind: str) -> CtrLane:
        network = networks(f"ctr{kind[:3]}")
        if kind == "ours":
            bin_dir, plugin_type = installed, "cni-bridge-py"
        else:
            bin_dir, plugin_type = reference_bin_dir(tmp_path / "ref-bin"), "bridge"
        lane = CtrLane.make(tmp_path / kind, network, bin_dir, plugin_type, containerd.run_dir)
        made.append(lane)
        return lane

    try:
        yield make
    finally:
        try:
            containerd.remove_all_containers()
        finally:
            for lane in made:
                lane.close()


def new_id(tag: str) -> str:
    return f"{tag}{next(_ids)}"


def ctr_run(
    containerd: Containerd,
    lane: CtrLane,
    rootfs: Path,
    container: str,
    *command: str,
    detach: bool = False,
    cni: bool = True,
) -> str:
    flags = ["--detach"] if detach else ["--rm"]
    flags += ["--cni"] if cni else []
    args = ["run", *flags, "--rootfs", "--env", "PATH=/bin", str(rootfs), container, *command]
    return containerd.ctr(lane, *args).stdout


def inet(ip_addr_output: str) -> list[str]:
    return re.findall(r"inet (\S+)", ip_addr_output)


def assert_in_network(address: str, network: HostNetwork) -> None:
    interface = ipaddress.ip_interface(address)
    assert interface.network == network.subnet and str(interface.ip) != network.gateway, address


def test_ctr_run_rm_configures_the_container_and_del_leaves_nothing(
    containerd: Containerd, lanes: LaneFactory, rootfs: Path
) -> None:
    lane = lanes("ours")
    network = lane.network
    script = (
        "ip -4 addr show dev eth0; echo @@@; ip -4 route; echo @@@; "
        f"ping -c 1 -W 2 {network.gateway}"
    )
    out = ctr_run(containerd, lane, rootfs, new_id("rm"), "sh", "-c", script)
    addresses, routes, ping = out.split("@@@\n")
    (address,) = inet(addresses)
    assert_in_network(address, network)
    assert f"default via {network.gateway} dev eth0" in routes
    assert f"{network.subnet} dev eth0" in routes
    assert "1 packets received" in ping, ping
    # ctr sent DEL with CNI_NETNS="": reservation, NAT chain and cache are gone all the same.
    assert network.bridge_exists()
    assert network.leftovers(lane.cache_dir) == {}


def test_ctr_detached_containers_reach_each_other_and_libcni_del_cleans_up(
    containerd: Containerd, lanes: LaneFactory, rootfs: Path
) -> None:
    lane = lanes("ours")
    network = lane.network
    names = [new_id("a"), new_id("b")]
    for name in names:
        ctr_run(containerd, lane, rootfs, name, "sleep", "600", detach=True)
    pids = containerd.tasks()

    def exec_in(name: str, *command: str) -> str:
        return containerd.ctr(lane, "task", "exec", "--exec-id", new_id("x"), name, *command).stdout

    address = {
        name: inet(exec_in(name, "ip", "-4", "addr", "show", "dev", "eth0"))[0] for name in names
    }
    assert len(set(address.values())) == 2, address
    for name in names:
        assert_in_network(address[name], network)
    first, second = names
    for source, target in ((first, second), (second, first)):
        peer = address[target].split("/")[0]
        assert "1 packets received" in exec_in(source, "ping", "-c", "1", "-W", "2", peer)
    assert "1 packets received" in exec_in(first, "ping", "-c", "1", "-W", "2", network.gateway)

    # The host side: one veth per container on our bridge, ours (owner alias), NAT per IP.
    veths = network.veths()
    assert len(veths) == 2
    owners = sorted(link_alias(v) for v in veths)
    assert owners == sorted(
        f"cni-bridge-py {network.name} {containerd.namespace}-{n} eth0" for n in names
    )
    assert len(network.nat_rules()) == 2 * 3

    # ctr sends no DEL for a detached container: do what a libcni runtime does, netns given.
    entries = cache_entries(lane.cache_dir, network.name)
    assert len(entries) == 2
    for entry in entries:
        name = entry.container_id.removeprefix(f"{containerd.namespace}-")
        delete_like_libcni(entry, f"/proc/{pids[name]}/ns/net", str(lane.bin_dir))
        assert "eth0" not in exec_in(name, "ip", "link")
    assert network.leftovers(lane.cache_dir) == {}
    for name in names:
        containerd.remove_container(name)
    assert containerd.tasks() == {}
    assert network.leftovers(lane.cache_dir) == {}


def test_ctr_start_time_ours_vs_reference(
    containerd: Containerd, lanes: LaneFactory, rootfs: Path, timings: Timings
) -> None:
    """`ctr run --rm --cni ... true` end to end (create, ADD, start, exit, DEL, delete)."""
    ours, reference = lanes("ours"), lanes("reference")

    def one_run(lane: CtrLane, cni: bool) -> Callable[[], object]:
        return lambda: ctr_run(containerd, lane, rootfs, new_id("t"), "true", cni=cni)

    for label, lane, cni in (
        ("no network (--cni off)", ours, False),
        ("our plugin", ours, True),
        ("reference bridge + host-local", reference, True),
    ):
        timings.measure("containerd", f"ctr run --rm ({label})", one_run(lane, cni))
    assert ours.network.leftovers(ours.cache_dir) == {}
    # The reference leaks the NAT chain on a DEL without netns (plugins#810); show it.
    leaked = reference.network.leftovers(reference.cache_dir)
    counts = {what: len(items) for what, items in leaked.items()}
    print(f"reference plugins left after ctr's DELs: {counts or 'nothing'}")
