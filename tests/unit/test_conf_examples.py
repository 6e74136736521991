"""The example configs in conf/ are valid for our plugin (and stay so)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cni_bridge_py import config

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"
EXAMPLES = sorted(CONF_DIR.glob("*.conflist"))


def test_there_are_examples() -> None:
    assert any(p.name == "mynet.conflist" for p in EXAMPLES)


# Examples for a drop-in swap name our plugin by the reference's type: `make install
# ALIASES="bridge host-local"` makes `bridge` ours (README: "On a Kubernetes node").
DROP_IN = {"k8s-node.conflist"}


def our_type(path: Path) -> str:
    return "bridge" if path.name in DROP_IN else "cni-bridge-py"


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_parses(path: Path) -> None:
    conflist = json.loads(path.read_text())
    ours = [p for p in conflist["plugins"] if p["type"] == our_type(path)]
    assert ours, "each example starts with our plugin"
    for plugin in ours:
        conf = config.parse({**plugin, "name": conflist["name"]}, conflist["cniVersion"])
        assert conf.name == conflist["name"]


def test_seed_network_is_the_tutorial_one() -> None:
    conflist = json.loads((CONF_DIR / "mynet.conflist").read_text())
    conf = config.parse({**conflist["plugins"][0], "name": "mynet"}, conflist["cniVersion"])
    assert conf.bridge == "v-net-0" and conf.is_gateway and conf.ip_masq
    assert conf.ipam is not None and conf.ipam.host_local is not None
    [range_set] = conf.ipam.host_local.range_sets
    assert str(range_set.ranges[0].subnet) == "192.168.15.0/24"
    assert str(range_set.ranges[0].gateway) == "192.168.15.5"


# libcni before 1.2 (Debian 12's cnitool, containerd 1.6, podman 4.3) parses results up to
# 1.0.0 only; the one 1.1.0 example is for newer runtimes and says so in its name.
NEWER_RUNTIMES_ONLY = {"mynet-1.1.0.conflist": "1.1.0"}


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_is_in_a_version_its_runtimes_read(path: Path) -> None:
    version = json.loads(path.read_text())["cniVersion"]
    assert version == NEWER_RUNTIMES_ONLY.get(path.name, "1.0.0"), path.name


def test_the_1_1_0_example_is_the_seed_network_and_differs_only_in_version() -> None:
    seed = json.loads((CONF_DIR / "mynet.conflist").read_text())
    newer = json.loads((CONF_DIR / "mynet-1.1.0.conflist").read_text())
    assert {**newer, "cniVersion": seed["cniVersion"]} == seed


def test_every_example_is_described_in_conf_readme() -> None:
    readme = (CONF_DIR / "README.md").read_text()
    for path in [*EXAMPLES, *CONF_DIR.glob("*.service"), *CONF_DIR.glob("*.socket")]:
        assert f"`{path.name}`" in readme, path.name


def test_the_kubernetes_node_example_is_a_node_network_with_portmap_and_bandwidth() -> None:
    """What a node runs: bridge cni0 with the gateway, masquerade and host-local on the pod
    CIDR, then the reference portmap and bandwidth with the capabilities containerd's CRI
    plugin fills in (hostPorts, the bandwidth annotations), and the pod annotations for ours."""
    conflist = json.loads((CONF_DIR / "k8s-node.conflist").read_text())
    bridge, portmap, bandwidth = conflist["plugins"]
    conf = config.parse({**bridge, "name": conflist["name"]}, conflist["cniVersion"])
    assert conf.bridge == "cni0" and conf.is_gateway and conf.ip_masq
    assert conf.ipam is not None and conf.ipam.host_local is not None
    [range_set] = conf.ipam.host_local.range_sets
    assert str(range_set.ranges[0].subnet) == "10.244.1.0/24"
    assert bridge["capabilities"]["io.kubernetes.cri.pod-annotations"] is True
    assert (portmap["type"], portmap["capabilities"]) == ("portmap", {"portMappings": True})
    assert (bandwidth["type"], bandwidth["capabilities"]) == ("bandwidth", {"bandwidth": True})
