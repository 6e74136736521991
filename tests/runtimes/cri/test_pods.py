"""A kubelet's calls, on a node whose network is conf/k8s-node.conflist with our plugin in
place of the reference bridge and host-local (portmap and bandwidth chained after it), each
test run with the plugin one-shot and with its agent: what RunPodSandbox leaves in the pod's
netns and on the node, what reaches the plugin, hostPort and bandwidth, and that every way a
pod ends (StopPodSandbox, twice; its netns gone first) leaves nothing behind."""

from __future__ import annotations

import ipaddress
import json
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from tests.runtimes.cri.client import Pod, PodStatus, PortMapping
from tests.runtimes.cri.conftest import Lane
from tests.runtimes.cri.node import Node
from tests.runtimes.libcni import cache_entries

OWNER = "cni-bridge-py {network} {pod_id} eth0"  # our host veth's alias: ours ran, for this pod
CONTAINER_PORT, HOST_PORT = 8080, 30080
RATE = "10M"  # bits/s, as the kubernetes.io/*-bandwidth annotations say it
RATE_BYTES = 10_000_000 // 8

# A listener in the pod: one line to each connection (up to argv[2] of them), then it exits.
SERVER = """
import socket, sys
server = socket.create_server(("0.0.0.0", int(sys.argv[1])))
server.settimeout(60)
print("listening", flush=True)
for _ in range(int(sys.argv[2])):
    conn, peer = server.accept()
    conn.sendall(b"hello from the pod\\n")
    conn.close()
"""
CLIENT = """
import socket, sys
with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5) as conn:
    print(conn.makefile().readline().strip())
"""


def pod_cidr(node: Node) -> ipaddress.IPv4Network:
    conflist = json.loads((node.seed.dir("/etc/cni/net.d") / "k8s-node.conflist").read_text())
    (first,) = conflist["plugins"][0]["ipam"]["ranges"][0]
    return ipaddress.IPv4Network(first["subnet"])


def gateway(node: Node) -> str:
    return str(pod_cidr(node).network_address + 1)


def eth0(node: Node, pod: PodStatus) -> dict[str, Any]:
    (link,) = json.loads(node.in_pod(pod, "ip", "-j", "addr", "show", "dev", "eth0").stdout)
    assert isinstance(link, dict)
    return link


def assert_attached(node: Node, pod: PodStatus) -> None:
    """Point 1: the pod's IP is from the pod CIDR, on eth0 in its netns, default route via the
    gateway; the host end is ours (owner alias) and on the node's bridge, which has the
    gateway address."""
    assert pod.ready, pod
    address = ipaddress.ip_address(pod.ip)
    assert address in pod_cidr(node) and pod.ip != gateway(node), pod.ip
    addresses = [f"{a['local']}/{a['prefixlen']}" for a in eth0(node, pod)["addr_info"]]
    assert f"{pod.ip}/24" in addresses, addresses
    routes = json.loads(node.in_pod(pod, "ip", "-j", "-4", "route", "show").stdout)
    defaults = [(r["gateway"], r["dev"]) for r in routes if r["dst"] == "default"]
    assert defaults == [(gateway(node), "eth0")], routes
    owner = OWNER.format(network=node.network, pod_id=pod.id)
    assert owner in node.host_veths().values(), node.host_veths()
    bridge_addresses = [
        f"{a['local']}/{a['prefixlen']}"
        for e in node.ip_json(f"-4 addr show dev {node.bridge}")
        for a in e["addr_info"]
    ]
    assert bridge_addresses == [f"{gateway(node)}/24"]


def reaches(node: Node, pod: PodStatus, address: str) -> bool:
    ping = node.in_pod(pod, "ping", "-c", "1", "-W", "2", address, check=False)
    return ping.returncode == 0


def host_veth(node: Node, pod: PodStatus) -> str:
    owner = OWNER.format(network=node.network, pod_id=pod.id)
    (veth,) = [name for name, alias in node.host_veths().items() if alias == owner]
    return veth


def qdiscs(node: Node, device: str) -> list[dict[str, Any]]:
    out = node.sh(f"tc -j qdisc show dev {device}").stdout
    value = json.loads(out) if out.strip() else []
    assert isinstance(value, list)
    return value


def stop_and_remove(node: Node, *pods: PodStatus) -> None:
    for pod in pods:
        node.client.stop(pod.id)
    for pod in pods:
        node.client.remove(pod.id)


def test_a_pod_gets_an_address_of_the_pod_cidr_and_reaches_the_gateway_and_another_pod(
    lane: Lane,
) -> None:
    node = lane.node
    annotations = {"example.com/owner": "team-net", "kubernetes.io/config.source": "api"}
    a = node.start(Pod("web-0", namespace="shop", annotations=annotations))
    b = node.start(Pod("web-1", namespace="shop"))
    for pod in (a, b):
        assert_attached(node, pod)
    assert a.ip != b.ip
    assert reaches(node, a, gateway(node)) and reaches(node, a, b.ip) and reaches(node, b, a.ip)
    # The result libcni got from the chain is containerd's: it shows our eth0 and address.
    ips = [c["IP"] for c in a.info["cniResult"]["Interfaces"]["eth0"]["IPConfigs"]]
    assert ips == [a.ip], a.info["cniResult"]

    # Point 2: the Kubernetes CNI_ARGS and the pod annotations (a capability our plugin
    # declares in the node config) reached the plugins of the ADD that succeeded.
    (entry,) = [
        e
        for e in cache_entries(node.seed.dir("/var/lib/cni"), node.network)
        if e.container_id == a.id
    ]
    cni_args = dict(entry.body["cniArgs"])
    assert cni_args["K8S_POD_NAMESPACE"] == "shop" and cni_args["K8S_POD_NAME"] == "web-0"
    assert cni_args["K8S_POD_INFRA_CONTAINER_ID"] == a.id
    assert cni_args["K8S_POD_UID"] == a.info["config"]["metadata"]["uid"]
    assert cni_args["IgnoreUnknown"] == "1"
    assert entry.body["capabilityArgs"]["io.kubernetes.cri.pod-annotations"] == annotations
    assert entry.result["ips"][0]["address"] == f"{a.ip}/24"

    stop_and_remove(node, a, b)
    assert node.leftovers() == {}
    lane.check_mode()


@contextmanager
def listener(node: Node, pod: PodStatus, connections: int) -> Iterator[None]:
    """A TCP listener on CONTAINER_PORT in the pod's netns, for `connections` connections."""
    argv = [sys.executable, "-I", "-c", SERVER, str(CONTAINER_PORT), str(connections)]
    with subprocess.Popen(
        node.argv("nsenter", f"--net={pod.netns}", "--", *argv),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        try:
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "listening"
            yield
            _, errors = proc.communicate(timeout=30)
            assert proc.returncode == 0, errors
        finally:
            if proc.poll() is None:
                proc.kill()


def test_a_host_port_reaches_the_pod_from_another_pod_and_the_node_and_bandwidth_is_shaped(
    lane: Lane,
) -> None:
    node = lane.node
    server = node.start(
        Pod(
            "server",
            port_mappings=[PortMapping(CONTAINER_PORT, HOST_PORT)],
            annotations={
                "kubernetes.io/ingress-bandwidth": RATE,
                "kubernetes.io/egress-bandwidth": RATE,
            },
        )
    )
    client = node.start(Pod("client"))
    # portmap's DNAT for the hostPort, chained after us: our result was its prevResult.
    dnat = node.sh(f"iptables -t nat -S {node.portmap_chains()[0].split()[1]}").stdout
    assert f"--to-destination {server.ip}:{CONTAINER_PORT}" in dnat, dnat
    target = [gateway(node), str(HOST_PORT)]
    with listener(node, server, connections=2):
        from_pod = node.in_pod(client, sys.executable, "-I", "-c", CLIENT, *target)
        from_node = subprocess.run(
            node.argv(sys.executable, "-I", "-c", CLIENT, *target),
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    assert from_pod.stdout.strip() == "hello from the pod", from_pod
    assert from_node.stdout.strip() == "hello from the pod", from_node

    # bandwidth, after portmap: ingress as a tbf on our host veth, egress as a tbf on an ifb
    # that the host veth's ingress is redirected to (the reference's layout).
    veth = host_veth(node, server)
    kinds = {q["kind"] for q in qdiscs(node, veth)}
    assert {"tbf", "ingress"} <= kinds, qdiscs(node, veth)
    (ifb,) = node.links("ifb")
    shaped = [q for q in qdiscs(node, veth) + qdiscs(node, ifb) if q["kind"] == "tbf"]
    assert [q["options"]["rate"] for q in shaped] == [RATE_BYTES, RATE_BYTES], shaped

    stop_and_remove(node, server, client)
    assert node.leftovers() == {}
    lane.check_mode()


def test_stop_runs_del_and_leaves_nothing_and_a_second_stop_and_remove_succeed(
    lane: Lane,
) -> None:
    node = lane.node
    pod = node.start(
        Pod(
            "db-0",
            port_mappings=[PortMapping(5432, 30432)],
            annotations={"kubernetes.io/egress-bandwidth": RATE},
        )
    )
    other = node.start(Pod("db-1"))
    assert len(node.host_veths()) == 2 and node.portmap_chains() and node.links("ifb")
    node.client.stop(pod.id)
    # Only the other pod's attachment is left: its veth, NAT chain, reservation, cache file.
    left = node.leftovers()
    assert pod.id not in json.dumps(left, default=str), left
    assert list(node.host_veths().values()) == [OWNER.format(network=node.network, pod_id=other.id)]
    assert list(node.seed.reservations(node.network)) == [other.ip]
    assert node.portmap_chains() == [] and node.links("ifb") == []

    node.client.stop(pod.id)  # a kubelet stops again whenever it is unsure: still fine
    node.client.remove(pod.id)
    assert pod.id not in node.client.pods()
    stop_and_remove(node, other)
    assert node.leftovers() == {}
    lane.check_mode()


def test_a_pod_whose_netns_was_removed_behind_containerds_back_stops_cleanly(
    lane: Lane,
) -> None:
    node = lane.node
    pod = node.start(Pod("orphan", port_mappings=[PortMapping(80, 30081)]))
    assert_attached(node, pod)
    node.sh(f"umount {pod.netns} && rm {pod.netns}")
    # containerd finds the netns closed and sends DEL with CNI_NETNS="" (the pause process
    # was killed first, so the kernel has already removed the netns and the veth pair).
    node.client.stop(pod.id)
    assert node.leftovers() == {}
    node.client.remove(pod.id)
    assert node.client.pods() == []
    lane.check_mode()
