"""The plain records inspect works on: what was read (inputs of join) and what it concluded.

Addresses are kept as text ("192.168.15.1/24", "192.168.15.1"): they are shown and written as
JSON, and compared as text, which the kernel, the store and the cache all print alike.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cni_bridge_py.ipam.ranges import RangeSet

# A row's state when nothing is missing or extra.
OK = "ok"
UNKNOWN = "unknown"


@dataclass(frozen=True)
class NetworkSpec:
    """What the config says the network should look like."""

    name: str
    bridge: str
    is_gateway: bool
    ip_masq: bool
    # "iptables-nft", "iptables-legacy", "nftables", or "none" (no tool for the masquerade).
    masq_backend: str
    range_sets: tuple[RangeSet, ...] = ()
    # Where the host-local store of this network lives ("" without host-local IPAM).
    store_dir: str = ""
    config_file: str = ""
    # ADD replaces another address where the gateway goes (instead of refusing) when set.
    force_address: bool = False


@dataclass(frozen=True)
class Reservation:
    address: str
    container_id: str
    # None: a reservation of host-local before 0.7, naming the container only.
    ifname: str | None


@dataclass(frozen=True)
class ContainerSide:
    """The container end of a host veth, found by its namespace's nsid."""

    netns: str
    ifname: str
    mac: str
    addresses: tuple[str, ...]


@dataclass(frozen=True)
class HostVeth:
    name: str
    index: int
    mac: str
    # The name of the bridge it is a port of ("" when none).
    master: str
    # Its ifalias; ours names (network, container ID, ifname), the reference's is empty.
    alias: str
    operstate: str = ""
    peer: ContainerSide | None = None


@dataclass(frozen=True)
class NatState:
    """One attachment's masquerade state: an iptables chain (container-wide: the chain is a
    hash of network + container ID) or nftables rules (per interface, by their comment)."""

    backend: str
    name: str
    container_id: str
    # nftables names the interface; iptables does not (None).
    ifname: str | None = None
    sources: tuple[str, ...] = ()


@dataclass(frozen=True)
class CacheEntry:
    path: str
    container_id: str
    ifname: str
    netns: str
    # From the cached result: the container's addresses and the host interface's name.
    addresses: tuple[str, ...] = ()
    host_ifname: str = ""


@dataclass(frozen=True)
class BridgeState:
    name: str
    mac: str
    operstate: str
    addresses: tuple[str, ...]


@dataclass(frozen=True)
class Observed:
    """Everything read for one network: the join's input."""

    spec: NetworkSpec
    bridge: BridgeState | None
    # Host veths that are ports of the bridge or whose alias names this network.
    veths: tuple[HostVeth, ...]
    reservations: tuple[Reservation, ...]
    nat: tuple[NatState, ...]
    cache: tuple[CacheEntry, ...]
    # What could not be read (a tool missing, a permission): shown, and an anomaly.
    unreadable: tuple[str, ...] = ()


@dataclass(frozen=True)
class Row:
    """One attachment (or one leftover that belongs to none)."""

    network: str
    container_id: str
    ifname: str
    netns: str
    addresses: tuple[str, ...]
    host_veth: str
    mac: str
    nat: str
    cache: str
    problems: tuple[str, ...] = ()

    @property
    def state(self) -> str:
        return "; ".join(self.problems) if self.problems else OK

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class RangeUse:
    ranges: str
    used: int
    size: int


@dataclass(frozen=True)
class NetworkSummary:
    name: str
    bridge: str
    bridge_present: bool
    gateways: tuple[str, ...]
    ports: tuple[str, ...]
    masquerade: str
    range_use: tuple[RangeUse, ...]
    rows: tuple[Row, ...]
    problems: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return not self.problems and all(row.ok for row in self.rows)
