"""Upstream cnitool (Go, libcni), built offline from Debian's packages, drives our plugin; its
result cache and our runner's are one format: each reads and deletes what the other added.

cnitool has no cache-dir option (libcni's default /var/lib/cni), so it runs in a private mount
namespace where /var/lib/cni is the test's directory; our runner is pointed at the same
directory with CNI_CACHE_DIR.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.runtimes.hostnet import HostNetwork, NetworkFactory, link_alias
from tests.runtimes.libcni import CacheEntry, cache_entries
from tests.runtimes.mountns import MountNamespace
from tests.runtimes.support import (
    Timings,
    reference_bin_dir,
    run,
)
from tests.support.netns import Namespace, NamespaceFactory
from tests.support.plugin import MINIMAL_PATH

K8S_ARGS = (
    "IgnoreUnknown=1;K8S_POD_NAMESPACE=runtimes;K8S_POD_NAME=pod-{0};"
    "K8S_POD_INFRA_CONTAINER_ID=infra-{0}"
)


@dataclass
class Tools:
    """Upstream cnitool and our runner on one network: same config dir, CNI_PATH and cache."""

    cnitool: Path
    ns: MountNamespace
    cache_dir: Path
    conf_dir: Path
    cni_path: str
    runner: Path
    network: str

    def env(self, **extra: str) -> dict[str, str]:
        return {
            "PATH": MINIMAL_PATH,
            "NETCONFPATH": str(self.conf_dir),
            "CNI_PATH": self.cni_path,
            "CNI_CACHE_DIR": str(self.cache_dir),  # ours; upstream sees it via the mount
            **extra,
        }

    def upstream(
        self, verb: str, netns: Namespace, check: bool = True, **extra: str
    ) -> subprocess.CompletedProcess[str]:
        argv = self.ns.argv(str(self.cnitool), verb, self.network, netns.path)
        return run(argv, env=self.env(**extra), check=check)

    def ours(
        self, verb: str, netns: Namespace, check: bool = True, **extra: str
    ) -> subprocess.CompletedProcess[str]:
        argv = [str(self.runner), "cnitool", verb, self.network, netns.path]
        return run(argv, env=self.env(**extra), check=check)


@dataclass
class Lab:
    """cnitool in a mount namespace where /var/lib/cni (its cache root, which it has no
    option to change) is `cache_dir`; our installed plugins and runner."""

    cnitool: Path
    ns: MountNamespace
    cache_dir: Path
    installed: Path
    scratch: Path

    def tools(
        self, network: HostNetwork, plugin_type: str = "cni-bridge-py", cni_path: str = ""
    ) -> Tools:
        conf_dir = self.scratch / f"net.d-{network.name}"
        network.write_conflist(conf_dir, plugin_type)
        runner = self.installed / "cni-bridge-py"
        cni_path = cni_path or str(self.installed)
        return Tools(
            self.cnitool, self.ns, self.cache_dir, conf_dir, cni_path, runner, network.name
        )


@pytest.fixture
def lab(cnitool: Path, installed: Path, tmp_path: Path) -> Iterator[Lab]:
    cache_dir = tmp_path / "cache"
    cache_dir.mkdir()
    ns = MountNamespace(tmp_path / "mnt")
    try:
        ns.shadow("/var/lib/cni", cache_dir)
        yield Lab(cnitool, ns, cache_dir, installed, tmp_path)
    finally:
        ns.close()


def container_id(netns: Namespace) -> str:
    """cnitool's container ID for a netns path."""
    return "cnitool-" + hashlib.sha512(netns.path.encode()).hexdigest()[:20]


def assert_attached(network: HostNetwork, netns: Namespace, address: str) -> None:
    assert netns.addresses("eth0") == [address]
    default = [r for r in netns.routes() if r.get("dst") == "default"]
    assert default and default[0]["gateway"] == network.gateway, netns.routes()
    veths = network.veths()
    assert len(veths) == 1, veths
    owner = link_alias(veths[0])
    assert owner == f"cni-bridge-py {network.name} {container_id(netns)} eth0", owner
    assert len(network.nat_rules()) == 3  # POSTROUTING jump + ACCEPT + MASQUERADE


def test_cnitool_and_our_runner_share_attachments_and_cache(
    lab: Lab, networks: NetworkFactory, namespaces: NamespaceFactory
) -> None:
    network = networks("tool")
    tools = lab.tools(network)
    red, blue = namespaces.new("red"), namespaces.new("blue")
    requested = f"{network.address(50)}/{network.subnet.prefixlen}"

    # Upstream ADD with Kubernetes-style CNI_ARGS and a requested IP (runtimeConfig.ips).
    caps = json.dumps({"ips": [requested]})
    added = tools.upstream("add", red, CNI_ARGS=K8S_ARGS.format("red"), CAP_ARGS=caps)
    result = json.loads(added.stdout)
    assert [ip["address"] for ip in result["ips"]] == [requested]
    assert_attached(network, red, requested)
    (upstream_entry,) = cache_entries(lab.cache_dir, network.name)
    assert upstream_entry.container_id == container_id(red)
    assert upstream_entry.body["cniArgs"][1] == ["K8S_POD_NAMESPACE", "runtimes"]
    assert upstream_entry.body["capabilityArgs"] == {"ips": [requested]}

    # Our runner reads upstream's cache: CHECK, then DEL removes everything, cache included.
    tools.ours("check", red)
    tools.upstream("check", red)
    tools.ours("del", red)
    assert network.leftovers(lab.cache_dir) == {}
    assert red.link_names() == ["lo"]

    # And the other way: our runner adds, upstream checks and deletes from our cache.
    tools.ours("add", blue, CNI_ARGS=K8S_ARGS.format("blue"))
    (our_entry,) = cache_entries(lab.cache_dir, network.name)
    address = our_entry.result["ips"][0]["address"]
    assert ipaddress.ip_interface(address).network == network.subnet
    assert_attached(network, blue, address)
    assert_same_cache_shape(upstream_entry, our_entry)
    tools.upstream("check", blue)
    tools.upstream("del", blue)
    assert network.leftovers(lab.cache_dir) == {}
    assert blue.link_names() == ["lo"]

    # Both sides agree that nothing is cached any more.
    assert tools.upstream("check", blue, check=False).returncode != 0
    assert tools.ours("check", blue, check=False).returncode != 0


def assert_same_cache_shape(upstream: CacheEntry, ours: CacheEntry) -> None:
    """Our runner writes what libcni writes: the same keys (plus "netns", which libcni >= 1.2
    caches and Debian's 1.1.2 does not), the conflist bytes verbatim, the same result keys."""
    no_capability_args = set(upstream.body) - {"capabilityArgs"}
    assert no_capability_args <= set(ours.body) <= set(upstream.body) | {"netns"}, ours.body
    assert ours.config_bytes == upstream.config_bytes
    assert ours.body["ifName"] == upstream.body["ifName"] == "eth0"
    assert set(ours.result) == set(upstream.result), (ours.result, upstream.result)


def each(tools: Tools, verb: str, targets: list[Namespace]) -> Callable[[], object]:
    """An action that runs `cnitool VERB` on the next namespace of `targets` at each call."""
    remaining = iter(targets)
    return lambda: tools.upstream(verb, next(remaining))


def test_cnitool_start_time_ours_vs_reference(
    lab: Lab, networks: NetworkFactory, namespaces: NamespaceFactory, timings: Timings
) -> None:
    """`cnitool add` then `del` on fresh netns, with our plugin and with the reference
    bridge + host-local (same network shape, own bridge and subnet)."""
    ref_bin = reference_bin_dir(lab.scratch / "ref-bin")
    ours, reference = networks("ours"), networks("ref")
    lanes = (
        ("our plugin", ours, lab.tools(ours)),
        ("reference bridge + host-local", reference, lab.tools(reference, "bridge", str(ref_bin))),
    )
    for label, network, tools in lanes:
        targets = [namespaces.new(f"t{i}") for i in range(3)]
        timings.measure("cnitool", f"cnitool add ({label})", each(tools, "add", targets))
        timings.measure("cnitool", f"cnitool del ({label})", each(tools, "del", targets))
        assert network.leftovers(lab.cache_dir) == {}, label
