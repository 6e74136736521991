"""Dual stack on the node, one-shot and with the agent: the node config with an IPv4 and an
IPv6 range set gives each pod one address of each, and PodSandboxStatus reports both (the
IPv4 one in network.ip, the IPv6 one in additional_ips, as containerd orders them)."""

from __future__ import annotations

import ipaddress
import json
import time

import pytest

from tests.runtimes.cri.client import Pod, PodStatus
from tests.runtimes.cri.conftest import Lane, NodeFactory
from tests.runtimes.cri.node import Node, node_conflist
from tests.runtimes.cri.test_pods import assert_attached, reaches

V6_CIDR = ipaddress.IPv6Network("fd00:10:244:1::/64")  # ULA, inside the node's netns only
V6_GATEWAY = str(V6_CIDR.network_address + 1)


@pytest.fixture(scope="module")
def node(nodes: NodeFactory) -> Node:
    """This module's node: conf/k8s-node.conflist with an IPv6 range set and route added."""
    conflist = node_conflist()
    ipam = conflist["plugins"][0]["ipam"]
    ipam["ranges"].append([{"subnet": str(V6_CIDR), "gateway": V6_GATEWAY}])
    ipam["routes"].append({"dst": "::/0"})
    return nodes(conflist=conflist)


def settle(node: Node, *pods: PodStatus, timeout: float = 20) -> None:
    """Wait out IPv6 duplicate address detection on the bridge and in the pods."""
    deadline = time.monotonic() + timeout
    while '"tentative":true' in node.sh("ip -j -6 addr").stdout + "".join(
        node.in_pod(pod, "ip", "-j", "-6", "addr").stdout for pod in pods
    ):
        assert time.monotonic() < deadline, "IPv6 addresses stay tentative"
        time.sleep(0.2)


def v6_default_routes(node: Node, pod: PodStatus) -> list[tuple[str, str]]:
    routes = json.loads(node.in_pod(pod, "ip", "-j", "-6", "route", "show").stdout)
    return [(r.get("gateway", ""), r["dev"]) for r in routes if r["dst"] == "default"]


def test_a_dual_stack_node_gives_each_pod_both_families_and_the_status_reports_both(
    lane: Lane,
) -> None:
    node = lane.node
    a, b = (node.start(Pod(f"dual-{i}")) for i in range(2))
    for pod in (a, b):
        assert_attached(node, pod)  # the IPv4 side, as on a single-stack node
        (v6,) = pod.additional_ips
        assert ipaddress.IPv6Address(v6) in V6_CIDR and v6 != V6_GATEWAY, pod
        addresses = node.in_pod(pod, "ip", "-6", "addr", "show", "dev", "eth0").stdout
        assert f"{v6}/64 scope global" in addresses, addresses
        assert v6_default_routes(node, pod) == [(V6_GATEWAY, "eth0")]
        assert any(rule.startswith("ip6tables: ") and pod.id in rule for rule in node.nat_rules())
    bridge = node.sh(f"ip -6 addr show dev {node.bridge}").stdout
    assert f"{V6_GATEWAY}/64" in bridge, bridge
    settle(node, a, b)
    assert reaches(node, a, V6_GATEWAY) and reaches(node, a, b.additional_ips[0])

    for pod in (a, b):
        node.client.stop(pod.id)
        node.client.remove(pod.id)
    assert node.leftovers() == {}
    lane.check_mode()
