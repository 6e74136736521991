"""The plugin's side of a cluster network: allocate inside the node's leased subnet, and
masquerade only what leaves the cluster range.

With a "cluster" section, host-local's ranges are not in the config: they are the subnet the
node service leased, read from its local file at each request (no etcd on this path). Before
there is a lease, ADD answers code 11 (try again later), as the runtime retries that.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from cni_bridge_py.cluster import lease_file
from cni_bridge_py.cluster.config import ClusterConf
from cni_bridge_py.config import NetConf
from cni_bridge_py.errors import InvalidConfig, PluginUnavailable, TryAgainLater
from cni_bridge_py.ipam.ranges import Range, RangeSet
from cni_bridge_py.netaddr import IPInterface
from cni_bridge_py.record import replace

# What a verb can do without a lease: DEL, CHECK and GC release or read by container, never by
# range, so they run with no range at all (a node that lost its file can still clean up).
NEEDS_LEASE = {"ADD": TryAgainLater, "STATUS": PluginUnavailable}


def with_lease(conf: NetConf, command: str) -> NetConf:
    """`conf` with host-local's range set replaced by the node's leased subnet."""
    cluster = conf.cluster
    if cluster is None or conf.ipam is None or conf.ipam.host_local is None:
        return conf
    lease = _read(cluster, command)
    if lease is None:
        return conf
    if not lease.subnet.subnet_of(cluster.cluster_range):
        raise InvalidConfig(
            f"the leased subnet {lease.subnet} is outside the cluster range"
            f" {cluster.cluster_range}",
            f"{cluster.subnet_file} belongs to another cluster: stop the node service, remove"
            " the file and start it again",
        )
    ranges = (RangeSet((Range.build(lease.subnet),)),)
    host_local = replace(conf.ipam.host_local, range_sets=ranges)
    return replace(conf, ipam=replace(conf.ipam, host_local=host_local))


def _read(cluster: ClusterConf, command: str) -> lease_file.LocalLease | None:
    error = NEEDS_LEASE.get(command)
    try:
        lease = lease_file.read(cluster.subnet_file)
    except (lease_file.UnreadableLease, OSError) as exc:
        if error is None:
            return None
        raise error(f"cannot read the node's subnet lease: {exc}", _hint(cluster)) from exc
    if lease is None and error is not None:
        raise error(
            f"no subnet lease yet for network {cluster.network!r}: {cluster.subnet_file} does"
            " not exist",
            _hint(cluster),
        )
    return lease


def _hint(cluster: ClusterConf) -> str:
    return (
        "the node service (cni-bridge-py node) writes it once it holds a lease from etcd"
        f" ({', '.join(cluster.endpoints)}); try again later"
    )


def masq_addresses(conf: NetConf, addresses: Iterable[IPInterface]) -> tuple[IPInterface, ...]:
    """The addresses as the masquerade rules see them: with a cluster, an address of the
    cluster range gets the range's prefix, so the rules' "destination inside the subnet:
    accept" covers every node's pods and pod-to-pod traffic keeps its source address."""
    cluster = conf.cluster
    out = []
    for address in addresses:
        inside = cluster is not None and address.ip in cluster.cluster_range
        prefix = cluster.cluster_range.prefixlen if cluster is not None and inside else None
        out.append(address if prefix is None else ipaddress.ip_interface(f"{address.ip}/{prefix}"))
    return tuple(out)
