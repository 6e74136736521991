"""One node: its service leases a subnet in etcd and writes it locally; the plugin allocates
inside it, and answers code 11 (try again later) while there is no lease."""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path

from tests.cluster.lab import CLUSTER_RANGE, Cluster
from tests.support.plugin import reservations


def test_a_node_leases_a_subnet_and_the_plugin_allocates_in_it(cluster: Cluster) -> None:
    node = cluster.add_node()
    node.start()
    subnet = ipaddress.IPv4Network(node.wait_subnet())
    assert subnet.prefixlen == 24 and subnet.subnet_of(ipaddress.IPv4Network(CLUSTER_RANGE))
    key = f"{cluster.key_prefix}/podnet/subnets/{subnet.network_address}-24"
    assert cluster.etcd_keys() == [key]
    record = json.loads(cluster.etcd.etcdctl("get", "--print-value-only", key).stdout)
    assert record["node"] == node.name and record["address"] == node.address
    assert record["backend"] == "host-gw"
    lease = json.loads(cluster.etcd.etcdctl("get", "-w", "json", key).stdout)["kvs"][0]["lease"]
    assert lease, "the key is bound to an etcd lease"

    result = cluster.add_pod(node, "a").ok().json
    address = ipaddress.ip_interface(result["ips"][0]["address"])
    assert address.network == subnet
    assert result["ips"][0]["gateway"] == str(subnet.network_address + 1)
    pod, ip = node.pods["a"]
    assert node.ns.ping(ip)
    assert pod.ping(str(subnet.network_address + 1))
    assert "leased subnet" in node.log_text()

    # CHECK holds the masquerade rules to the cluster range too; DEL removes everything.
    rules = node.ns.nat_rules()
    assert any(f"-d {CLUSTER_RANGE} " in rule and "ACCEPT" in rule for rule in rules), rules
    checked = {**node.config, "prevResult": result}
    node.plugin.run("CHECK", checked, container_id=f"{node.name}-a", netns=pod.path).ok()
    node.plugin.run("DEL", node.config, container_id=f"{node.name}-a", netns=pod.path).ok()
    assert reservations(Path(node.config["ipam"]["dataDir"]), "podnet") == {}
    assert node.ns.nat_rules() == []


def test_without_a_lease_add_answers_try_again_later(cluster: Cluster) -> None:
    node = cluster.add_node()  # its service is not started: no lease, no file
    outcome = cluster.add_pod(node, "a")
    body = outcome.error(11)
    assert "no subnet lease yet" in body["msg"], body
    assert "cni-bridge-py node" in body["details"], body
    # Nothing reserved, no container interface: the runtime's retry starts afresh.
    assert reservations(Path(node.config["ipam"]["dataDir"]), "podnet") == {}
    assert node.pods == {}


def test_nftables_masquerade_also_spares_the_cluster_range(cluster: Cluster) -> None:
    node = cluster.add_node()
    node.config["ipMasqBackend"] = "nftables"  # what the plugin gets; the service ignores it
    node.start()
    node.wait_subnet()
    cluster.add_pod(node, "a").ok()
    _, address = node.pods["a"]
    ruleset = node.ns.exec("nft", "list", "ruleset")
    assert f"ip saddr {address} ip daddr != {CLUSTER_RANGE} masquerade" in ruleset, ruleset
    assert node.ns.nat_rules() == []  # no iptables rule besides
