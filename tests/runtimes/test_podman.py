"""podman 4.3 with the CNI backend drives our plugin: containers on a network of ours get
distinct addresses and reach each other, `--ip` and `--mac-address` (runtimeConfig ips and
mac) are honoured, and `podman rm` leaves nothing.

The network's plugin type is "bridge": podman reads subnets (for `--ip`) only from configs of
the types it knows, so this is the drop-in swap `make install ALIASES="bridge host-local"`
is for. The plugin dir holds only our launchers (and /usr/lib/cni is hidden), and each host
veth's owner alias proves that ours ran.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.runtimes.hostnet import HostNetwork, NetworkFactory, link_alias
from tests.runtimes.libcni import cache_entries
from tests.runtimes.podman import IMAGE, Podman, container_address, ping
from tests.runtimes.support import Timings, reference_bin_dir, require_tools

BLOB_INFO_CACHE = Path("/var/lib/containers/cache/blob-info-cache-v1.boltdb")


@pytest.fixture(scope="module")
def podman(tmp_path_factory: pytest.TempPathFactory, rootfs: Path) -> Iterator[Podman]:
    require_tools(
        "podman",
        {
            "podman": "podman",
            "conmon": "conmon",
            "runc": "runc",
            "unshare": "util-linux",
            "nsenter": "util-linux",
        },
    )
    host_cache_existed = BLOB_INFO_CACHE.exists()
    scratch = tmp_path_factory.mktemp("podman")
    (scratch / "net.d").mkdir()
    podman = Podman(scratch)
    base_conf = podman.containers_conf("base", scratch / "net.d", scratch / "net.d")
    try:
        podman.import_image(base_conf, rootfs)
        # The import wrote its blob-info cache under our /var/lib/containers, not the host's.
        assert BLOB_INFO_CACHE.exists() == host_cache_existed
        assert (scratch / "var-lib-containers" / "cache" / BLOB_INFO_CACHE.name).exists()
        yield podman
    finally:
        problems = podman.close(base_conf)
        assert not problems, problems


def network_conf(podman: Podman, network: HostNetwork, tmp_path: Path, plugin_dir: Path) -> Path:
    conf_dir = tmp_path / "net.d"
    network.write_conflist(conf_dir, "bridge")
    return podman.containers_conf(network.name, conf_dir, plugin_dir)


def test_podman_containers_reach_each_other_ip_is_honoured_and_rm_leaves_nothing(
    podman: Podman, networks: NetworkFactory, installed: Path, tmp_path: Path
) -> None:
    network = networks("pm")
    conf = network_conf(podman, network, tmp_path, installed)
    inspected = podman(conf, "network", "inspect", network.name).stdout
    assert str(network.subnet) in inspected  # podman parsed our network's subnet

    requested, mac = network.address(77), "02:42:0a:0b:0c:0d"
    names = ["pa", "pb", "pc"]
    for name in names:
        extra = ["--ip", requested, "--mac-address", mac] if name == "pc" else []
        podman(
            conf,
            "run",
            "--detach",
            "--name",
            name,
            *podman.run_args(network.name),
            *extra,
            IMAGE,
            "sleep",
            "600",
        )
    try:
        address = {name: container_address(podman, conf, name) for name in names}
        assert len(set(address.values())) == 3, address
        for value in address.values():
            assert ipaddress.ip_interface(value).network == network.subnet
        assert address["pc"] == f"{requested}/{network.subnet.prefixlen}"
        link = podman(conf, "exec", "pc", "ip", "link", "show", "dev", "eth0").stdout
        assert f"link/ether {mac} " in link  # runtimeConfig.mac

        bare = {name: value.split("/")[0] for name, value in address.items()}
        assert ping(podman, conf, "pa", bare["pb"])
        assert ping(podman, conf, "pb", bare["pa"])
        assert ping(podman, conf, "pc", bare["pa"])
        assert ping(podman, conf, "pa", network.gateway)

        # Host side: three veths on our bridge, each made by our plugin; NAT per container.
        veths = network.veths()
        assert len(veths) == 3
        assert all(link_alias(v).startswith(f"cni-bridge-py {network.name} ") for v in veths)
        assert len(network.nat_rules()) == 3 * 3
        entries = cache_entries(podman.cache_dir, network.name)
        assert len(entries) == 3
        assert sorted(network.reservations()) == sorted(bare.values())
    finally:
        podman(conf, "rm", "--force", "--time", "0", *names, check=False)

    assert network.leftovers(podman.cache_dir) == {}
    assert list(podman.netns_dir.iterdir()) == []


def test_podman_start_time_ours_vs_reference(
    podman: Podman, networks: NetworkFactory, installed: Path, tmp_path: Path, timings: Timings
) -> None:
    """`podman run --rm ... true` end to end (create, netns, ADD, start, exit, DEL, remove)."""
    ours = networks("pmours")
    ours_conf = network_conf(podman, ours, tmp_path / "ours", installed)
    reference = networks("pmref")
    ref_conf = network_conf(
        podman, reference, tmp_path / "ref", reference_bin_dir(tmp_path / "ref-bin")
    )

    def one_run(conf: Path, network: str) -> Callable[[], object]:
        return lambda: podman(conf, "run", "--rm", *podman.run_args(network), IMAGE, "true")

    for label, conf, network in (
        ("no network (--network none)", ours_conf, "none"),
        ("our plugin", ours_conf, ours.name),
        ("reference bridge + host-local", ref_conf, reference.name),
    ):
        timings.measure("podman", f"podman run --rm ({label})", one_run(conf, network))
    assert ours.leftovers(podman.cache_dir) == {}
    assert reference.leftovers(podman.cache_dir) == {}
