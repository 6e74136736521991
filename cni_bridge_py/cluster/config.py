"""The network config's "cluster" section -> a frozen ClusterConf (pure, stdlib only).

The plugin parses it on every request (it needs the subnet file's path and the cluster range
for masquerade), so this module imports nothing beyond the config layer's own helpers. The
node service (cni-bridge-py node) reads the same section from the same file.
"""

from __future__ import annotations

import ipaddress

from cni_bridge_py.fields import Fields
from cni_bridge_py.netaddr import IPAddress
from cni_bridge_py.record import record
from cni_bridge_py.validate import ifname_problem

BACKENDS = ("host-gw", "vxlan")
DEFAULT_KEY_PREFIX = "/cni-bridge-py"
DEFAULT_SUBNET_DIR = "/run/cni-bridge-py"
DEFAULT_SUBNET_LEN = 24
# flannel's defaults: a lease outlives a service restart, and a dead node's subnet comes back
# within a minute.
DEFAULT_LEASE_TTL = 30
DEFAULT_SYNC_INTERVAL = 2.0
DEFAULT_VNI = 1
# Linux's historical VXLAN port, as flannel uses: 4789 may be taken by another overlay.
DEFAULT_VXLAN_PORT = 8472
DEFAULT_VXLAN_DEVICE = "cbp.vxlan"
# The headers VXLAN adds to each frame (outer IPv4 + UDP + VXLAN + inner Ethernet).
VXLAN_OVERHEAD = 50


@record(frozen=True)
class ClusterConf:
    network: str
    endpoints: tuple[str, ...]
    key_prefix: str
    cluster_range: ipaddress.IPv4Network
    subnet_len: int
    backend: str
    # "" / None: the service finds them (the hostname, the default-route interface's address).
    node_name: str = ""
    node_address: IPAddress | None = None
    subnet_file: str = ""
    lease_ttl: int = DEFAULT_LEASE_TTL
    sync_interval: float = DEFAULT_SYNC_INTERVAL
    vni: int = DEFAULT_VNI
    vxlan_port: int = DEFAULT_VXLAN_PORT
    vxlan_device: str = DEFAULT_VXLAN_DEVICE

    @property
    def network_prefix(self) -> str:
        """Every key of this network starts here (keys.py lays out the rest)."""
        return f"{self.key_prefix.rstrip('/')}/{self.network}/"


def default_subnet_file(network: str) -> str:
    return f"{DEFAULT_SUBNET_DIR}/{network}.subnet.json"


def parse_cluster(top: Fields, network: str) -> ClusterConf | None:
    """The "cluster" object of the config `top`, or None when there is none; problems are
    collected in `top` (reported with every other config problem, code 7)."""
    fields = top.obj("cluster")
    if fields is None:
        return None
    endpoints = fields.strings("etcdEndpoints")
    if not endpoints:
        fields.problem("etcdEndpoints", 'missing: e.g. ["http://10.0.0.1:2379"]')
    for endpoint in endpoints:
        if not endpoint.startswith(("http://", "https://")):
            fields.problem("etcdEndpoints", f"{endpoint!r} is not an http(s):// URL")
    cluster_range = _range(fields)
    subnet_len = fields.get("subnetLen", int, DEFAULT_SUBNET_LEN)
    if cluster_range is not None and not cluster_range.prefixlen < subnet_len <= 30:
        fields.problem(
            "subnetLen",
            f"{subnet_len} must be longer than the range's /{cluster_range.prefixlen}"
            " and at most 30",
        )
    backend = fields.get("backend", str, "host-gw")
    if backend not in BACKENDS:
        fields.problem("backend", f'{backend!r} is not "host-gw" or "vxlan"')
    address = fields.address("nodeAddress")
    if address is not None and address.version != 4:
        fields.problem("nodeAddress", f"{address} is not an IPv4 address")
    ttl = fields.get("leaseTTL", int, DEFAULT_LEASE_TTL)
    if ttl < 2:
        fields.problem("leaseTTL", f"{ttl} is too short: at least 2 seconds")
    interval = _seconds(fields, "syncInterval", DEFAULT_SYNC_INTERVAL)
    if not 0 < interval <= ttl / 2:
        # The lease is refreshed once per interval: two refreshes must fit in one TTL.
        fields.problem("syncInterval", f"{interval} must be above 0 and at most leaseTTL / 2")
    vni = fields.get("vni", int, DEFAULT_VNI)
    if not 0 < vni < 1 << 24:
        fields.problem("vni", f"{vni} is outside 1..16777215")
    port = fields.get("vxlanPort", int, DEFAULT_VXLAN_PORT)
    if not 0 < port < 1 << 16:
        fields.problem("vxlanPort", f"{port} is not a UDP port")
    prefix = fields.get("keyPrefix", str, DEFAULT_KEY_PREFIX) or DEFAULT_KEY_PREFIX
    if not prefix.startswith("/"):
        fields.problem("keyPrefix", f"{prefix!r} must start with '/'")
    return ClusterConf(
        network=network,
        endpoints=endpoints,
        key_prefix=prefix,
        cluster_range=cluster_range or ipaddress.IPv4Network("0.0.0.0/0"),
        subnet_len=subnet_len,
        backend=backend,
        node_name=fields.get("nodeName", str, ""),
        node_address=address,
        subnet_file=fields.get("subnetFile", str, "") or default_subnet_file(network),
        lease_ttl=ttl,
        sync_interval=interval,
        vni=vni,
        vxlan_port=port,
        vxlan_device=_device(fields),
    )


def _device(fields: Fields) -> str:
    name = fields.get("vxlanDevice", str, DEFAULT_VXLAN_DEVICE) or DEFAULT_VXLAN_DEVICE
    if (why := ifname_problem(name)) is not None:
        fields.problem("vxlanDevice", f"{name!r} is not a valid interface name: {why}")
    return name


def _seconds(fields: Fields, key: str, default: float) -> float:
    value = fields.data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        fields.problem(key, f"expected a number of seconds, got {value!r}")
        return default
    return float(value)


def _range(fields: Fields) -> ipaddress.IPv4Network | None:
    text = fields.get("clusterRange", str, "")
    if not text:
        fields.problem(
            "clusterRange", 'missing: the pods\' range of the cluster, e.g. "10.244.0.0/16"'
        )
        return None
    try:
        network = ipaddress.ip_network(text)
    except ValueError as exc:
        fields.problem("clusterRange", str(exc))
        return None
    if not isinstance(network, ipaddress.IPv4Network):
        fields.problem("clusterRange", f"{text} is not an IPv4 range")
        return None
    return network
