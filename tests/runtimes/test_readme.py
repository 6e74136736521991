"""The README's "Using it" commands, word for word, with the shipped conf/mynet.conflist and
the runtimes Debian 12 has: upstream cnitool (libcni 1.1.2), containerd 1.6's `ctr run --cni`
and podman 4.3. Each test is a seed host (seedhost.py): /opt/cni/bin, /etc/cni/net.d,
/var/lib/cni and /run/netns are the test's directories and the host network is a throwaway
namespace, so `ip netns add red` and bridge v-net-0 on 192.168.15.0/24 are the test's own.

libcni before 1.2 cannot parse a 1.1.0 result: with the 1.1.0 example, cnitool reports an
error after the plugin has attached the container. The last test shows that, and what 1.1.0
brings to a runtime that speaks it (our runner): STATUS, and GC removing that attachment.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.runtimes.containerd import Containerd
from tests.runtimes.libcni import cache_entries, delete_like_libcni
from tests.runtimes.podman import IMAGE, Podman, container_address, ping
from tests.runtimes.seedhost import (
    BRIDGE,
    GATEWAY,
    NETWORK,
    SUBNET,
    SeedHost,
    cnitool_container_id,
    readme_commands,
)
from tests.runtimes.support import require_tools

ADD = re.compile(rf"cnitool add {NETWORK} /var/run/netns/(\w+)")
CHECK = re.compile(rf"cnitool check {NETWORK} /var/run/netns/(\w+)")
DEL = re.compile(rf"cnitool del {NETWORK} /var/run/netns/(\w+)")
PING = re.compile(r"ip netns exec (\w+) ping .*?(\d+\.\d+\.\d+\.\d+)")
SHIPPED_VERSION = "1.0.0"


@dataclass(frozen=True)
class Attachment:
    netns: str
    container_id: str
    address: ipaddress.IPv4Interface


def install_lines() -> list[str]:
    """The README's `make install ...` and `make install-conf ...`: how a reader installs."""
    lines = [c for c in readme_commands() if c.startswith("make install")]
    assert [c.split()[1] for c in lines] == ["install", "install-conf"], lines
    assert "NET=conf/mynet.conflist" in lines[1], lines
    return lines


@pytest.fixture
def seed(readme_ready: None, tmp_path: Path) -> Iterator[SeedHost]:
    host = SeedHost.make(tmp_path / "seed")
    try:
        yield host
    finally:
        host.close()


def assert_attached(seed: SeedHost, netns: str, stdout: str) -> Attachment:
    """What `cnitool add mynet /var/run/netns/<netns>` must have printed and left."""
    result = json.loads(stdout)
    assert result["cniVersion"] == SHIPPED_VERSION, result
    (ip,) = result["ips"]
    address = ipaddress.IPv4Interface(ip["address"])
    assert str(address.network) == SUBNET and str(address.ip) != GATEWAY, ip
    assert ip["gateway"] == GATEWAY, ip
    sandboxes = [i for i in result["interfaces"] if i.get("sandbox")]
    assert [(i["name"], i["sandbox"]) for i in sandboxes] == [("eth0", f"/var/run/netns/{netns}")]

    assert seed.addresses("eth0", netns) == [str(address)]
    (default,) = seed.default_routes(netns)
    assert (default["gateway"], default["dev"]) == (GATEWAY, "eth0"), default

    container_id = cnitool_container_id(f"/var/run/netns/{netns}")
    assert f"{GATEWAY}/24" in seed.addresses(BRIDGE)
    assert f"cni-bridge-py {NETWORK} {container_id} eth0" in seed.bridge_ports().values()
    assert len(seed.nat_rules(container_id)) == 3  # POSTROUTING jump, ACCEPT, MASQUERADE
    assert seed.reservations()[str(address.ip)] == f"{container_id}\r\neth0".encode()
    assert f"{NETWORK}-{container_id}-eth0" in seed.cache_files()
    return Attachment(netns, container_id, address)


def assert_detached(seed: SeedHost, attachment: Attachment) -> None:
    """What `cnitool del` must have removed: every trace of this one attachment."""
    cid = attachment.container_id
    assert seed.links_in(attachment.netns) == ["lo"]
    assert not any(cid in owner for owner in seed.bridge_ports().values())
    assert seed.nat_rules(cid) == []
    assert str(attachment.address.ip) not in seed.reservations()
    assert f"{NETWORK}-{cid}-eth0" not in seed.cache_files()


def test_the_readme_commands_work_as_written(cnitool: Path, seed: SeedHost) -> None:
    """Every line of the README block succeeds, in order, and each cnitool step leaves
    exactly what it should in the kernel, host-local's store and libcni's cache."""
    commands = readme_commands()
    exports: list[str] = []
    attached: dict[str, Attachment] = {}
    seen: list[str] = []
    pinged: list[tuple[str, str]] = []
    for line in commands:
        proc = seed.sh(line, exports=exports)  # raises, with the output, if a line fails
        if line.startswith("export "):
            exports.append(line)
        elif match := ADD.fullmatch(line):
            attached[match[1]] = assert_attached(seed, match[1], proc.stdout)
            seen.append(f"add {match[1]}")
        elif match := DEL.fullmatch(line):
            assert_detached(seed, attached[match[1]])
            seen.append(f"del {match[1]}")
        elif match := CHECK.fullmatch(line):
            seen.append(f"check {match[1]}")
        elif match := PING.fullmatch(line):
            pinged.append((match[1], match[2]))

    # The block is the seed scenario: a change to the README that drops a step fails here.
    assert seen == ["add red", "add blue", "check red", "del red", "del blue"], seen
    blue = str(attached["blue"].address.ip)
    assert ("red", blue) in pinged and ("red", GATEWAY) in pinged, pinged
    assert install_lines() == commands[:2]

    assert seed.leftovers() == {}
    assert seed.addresses(BRIDGE) == [f"{GATEWAY}/24"]  # the bridge stays, as the reference's


def test_the_1_1_0_example_needs_libcni_1_2_and_adds_gc_and_status(
    cnitool: Path, seed: SeedHost
) -> None:
    for line in install_lines():
        seed.sh(line.replace("conf/mynet.conflist", "conf/mynet-1.1.0.conflist"))
    seed.sh("ip netns add red")
    cni_path = "CNI_PATH=/opt/cni/bin"

    refused = seed.sh(f"{cni_path} {cnitool} add {NETWORK} /var/run/netns/red", check=False)
    assert refused.returncode != 0
    assert 'unsupported CNI result version "1.1.0"' in refused.stderr + refused.stdout
    # The trap: the plugin had attached red, and no runtime cache knows it.
    assert len(seed.addresses("eth0", "red")) == 1
    assert len(seed.reservations()) == 1 and seed.cache_files() == []

    # A runtime that speaks 1.1.0 (our runner) asks STATUS, and GC with no valid attachment
    # removes what nobody holds: reservation, NAT chain, host veth (and with it red's eth0).
    runner = f"{cni_path} /opt/cni/bin/cni-bridge-py cnitool"
    seed.sh(f"{runner} status {NETWORK} /var/run/netns/red")
    seed.sh(f"{runner} gc {NETWORK} /var/run/netns/red")
    assert seed.leftovers() == {}
    assert seed.links_in("red") == ["lo"]

    # The shipped 1.0.0 file has neither verb; the runner says so instead of pretending.
    seed.sh("make uninstall-conf NET=conf/mynet-1.1.0.conflist")
    seed.sh(install_lines()[1])
    status = seed.sh(f"{runner} status {NETWORK} /var/run/netns/red")
    assert "STATUS not sent" in status.stderr, status.stderr


# --- the same installed network under containerd and podman ----------------------------


@pytest.fixture
def ctr_seed(readme_ready: None, containerd: Containerd, tmp_path: Path) -> Iterator[SeedHost]:
    """A seed host where `ctr` reaches our containerd and finds only the installed plugins."""
    host = SeedHost.make(tmp_path / "seed", hide_reference=True)
    try:
        host.ns.shadow("/run/containerd", containerd.run_dir)  # ctr's fifo dir: the daemon's
        for line in install_lines():
            host.sh(line)
        yield host
    finally:
        try:
            containerd.remove_all_containers()
        finally:
            host.close()


def test_the_installed_network_under_ctr_run_cni(
    containerd: Containerd, ctr_seed: SeedHost, rootfs: Path
) -> None:
    seed = ctr_seed

    def ctr_run(mode: str, name: str, *command: str) -> str:
        rootfs_args = ("--rootfs", "--env", "PATH=/bin", str(rootfs))
        return containerd.ctr(seed, "run", mode, "--cni", *rootfs_args, name, *command).stdout

    ctr_run("--detach", "seed-a", "sleep", "600")
    exec_a = ("task", "exec", "--exec-id", "addr", "seed-a")
    out = containerd.ctr(seed, *exec_a, "ip", "-4", "addr", "show", "dev", "eth0").stdout
    (a_address,) = re.findall(r"inet (\S+)", out)
    a_ip = a_address.split("/")[0]
    assert str(ipaddress.IPv4Interface(a_address).network) == SUBNET

    script = (
        "ip -4 addr show dev eth0; echo @@@; ip -4 route; echo @@@; "
        f"ping -c 1 -W 2 {a_ip} && ping -c 1 -W 2 {GATEWAY}"
    )
    out = ctr_run("--rm", "seed-b", "sh", "-c", script)
    addresses, routes, pings = out.split("@@@\n")
    (b_address,) = re.findall(r"inet (\S+)", addresses)
    assert str(ipaddress.IPv4Interface(b_address).network) == SUBNET and b_address != a_address
    assert f"default via {GATEWAY} dev eth0" in routes
    assert pings.count("1 packets received") == 2, pings

    # ctr sent b's DEL when b exited; a is still attached, by our plugin.
    assert list(seed.reservations()) == [a_ip]
    owner = f"cni-bridge-py {NETWORK} {containerd.namespace}-seed-a eth0"
    assert list(seed.bridge_ports().values()) == [owner]
    assert len(seed.nat_rules()) == 3

    # ctr sends no DEL for a detached container: send it as libcni does, then remove a.
    (entry,) = cache_entries(seed.dir("/var/lib/cni"), NETWORK)
    pid = containerd.tasks()["seed-a"]
    delete_like_libcni(entry, f"/proc/{pid}/ns/net", str(seed.dir("/opt/cni/bin")), seed.ns)
    containerd.remove_container("seed-a")
    assert seed.leftovers() == {}


@pytest.fixture
def podman_seed(
    readme_ready: None, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Podman, SeedHost]]:
    """podman in a seed host, with its storage and run dirs its own (podman wants a short
    run root path: a top-level temp dir)."""
    require_tools(
        "podman",
        {"podman": "podman", "conmon": "conmon", "runc": "runc", "nsenter": "util-linux"},
    )
    seed = SeedHost.make(tmp_path / "seed", hide_reference=True)
    podman = Podman(tmp_path_factory.mktemp("pmseed"), seed)  # if it fails, seed is ended
    conf = podman.containers_conf("seed")
    try:
        yield podman, seed
    finally:
        problems = podman.close(conf)  # ends the seed host's namespaces too
        assert not problems, problems


def test_the_installed_network_under_podman(
    podman_seed: tuple[Podman, SeedHost], rootfs: Path
) -> None:
    podman, seed = podman_seed
    conf = podman.containers_conf("seed")  # podman's defaults: /etc/cni/net.d, /opt/cni/bin
    for line in install_lines():
        seed.sh(line)
    podman.import_image(conf, rootfs)
    inspected = json.loads(podman(conf, "network", "inspect", NETWORK).stdout)
    assert inspected[0]["driver"] == "cni-bridge-py", inspected

    options = podman.run_args(NETWORK)
    podman(conf, "run", "--detach", "--name", "seed-a", *options, IMAGE, "sleep", "600")
    podman(conf, "run", "--detach", "--name", "seed-b", *options, IMAGE, "sleep", "600")
    a_address = container_address(podman, conf, "seed-a")
    b_address = container_address(podman, conf, "seed-b")
    for address in (a_address, b_address):
        assert str(ipaddress.IPv4Interface(address).network) == SUBNET
    assert a_address != b_address
    assert ping(podman, conf, "seed-a", b_address.split("/")[0])
    assert ping(podman, conf, "seed-b", GATEWAY)
    routes = podman(conf, "exec", "seed-a", "ip", "-4", "route").stdout
    assert f"default via {GATEWAY} dev eth0" in routes

    owners = list(seed.bridge_ports().values())
    assert len(owners) == 2
    assert all(o.startswith(f"cni-bridge-py {NETWORK} ") for o in owners), owners
    assert len(seed.nat_rules()) == 2 * 3
    assert len(seed.cache_files()) == 2

    podman(conf, "rm", "--force", "--time", "0", "seed-a", "seed-b")
    assert seed.leftovers() == {}
    assert list(podman.netns_dir.iterdir()) == []
