"""The key layout in etcd and what a node's key holds (pure).

    <keyPrefix>/<network>/subnets/<a.b.c.d>-<len>  ->  NodeRecord JSON, bound to the node's
                                                       etcd lease (gone when it expires)

One key per leased subnet, so "is this subnet free" is "does this key exist", which one etcd
transaction can test and set atomically. The record names the node, so a restarted service
finds its own subnet again while the key lives.
"""

from __future__ import annotations

import ipaddress
import json

from cni_bridge_py.record import fields, record

SUBNETS = "subnets/"


@record(frozen=True)
class NodeRecord:
    node: str
    subnet: ipaddress.IPv4Network
    address: ipaddress.IPv4Address  # the node's underlay address
    backend: str
    # vxlan: the MAC of the node's VXLAN device (the other nodes' FDB and neighbour entries).
    vtep_mac: str = ""
    # When the node took this subnet (Unix time): `node --status` shows the lease's age.
    since: float = 0.0

    @property
    def vtep_address(self) -> ipaddress.IPv4Address:
        """vxlan: the node's VXLAN device has the subnet's network address (flannel's layout:
        it is never a pod's, and the routes to the node's pods go through it)."""
        return self.subnet.network_address

    def to_json(self) -> str:
        data = {name: getattr(self, name) for name in fields(type(self))}
        data["subnet"] = str(self.subnet)
        data["address"] = str(self.address)
        return json.dumps(data, sort_keys=True)


class BadRecord(ValueError):
    """A key under our prefix that this version cannot read (it is skipped, not fatal)."""


def parse_record(text: str | bytes) -> NodeRecord:
    try:
        data = json.loads(text)
        return NodeRecord(
            node=str(data["node"]),
            subnet=ipaddress.IPv4Network(data["subnet"]),
            address=ipaddress.IPv4Address(data["address"]),
            backend=str(data["backend"]),
            vtep_mac=str(data.get("vtep_mac", "")),
            since=float(data.get("since", 0.0)),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise BadRecord(f"unreadable node record: {exc}") from exc


def subnets_prefix(network_prefix: str) -> str:
    return network_prefix + SUBNETS


def subnet_key(network_prefix: str, subnet: ipaddress.IPv4Network) -> str:
    # "/" inside a key would read as another level: the prefix length follows a dash.
    return f"{subnets_prefix(network_prefix)}{subnet.network_address}-{subnet.prefixlen}"


def subnet_of_key(network_prefix: str, key: str) -> ipaddress.IPv4Network | None:
    head = subnets_prefix(network_prefix)
    if not key.startswith(head):
        return None
    address, _, length = key[len(head) :].rpartition("-")
    try:
        return ipaddress.IPv4Network(f"{address}/{length}")
    except ValueError:
        return None
