"""The plain records doctor judges (what the edge read) and what it concludes (Finding).

Sysctl values stay text ("1", "0") as /proc/sys prints them; None means unreadable (the key
does not exist in this kernel or namespace).
"""

from __future__ import annotations

from dataclasses import dataclass

from cni_bridge_py.inspect.model import NetworkSpec, NetworkSummary

ERROR = "error"
WARNING = "warning"


@dataclass(frozen=True)
class Finding:
    """One thing wrong: an error breaks (or will break) a network, exit 1; a warning is worth
    knowing but has no strict rule (exit 0 unless --strict)."""

    severity: str
    subject: str  # a network's name, or "host"
    what: str
    todo: str

    def line(self) -> str:
        return f"{self.severity}: {self.subject}: {self.what} -> {self.todo}"


@dataclass(frozen=True)
class IptablesVariant:
    """One iptables variant's tables as its -save printed them (only tables that exist)."""

    variant: str  # "legacy" or "nft"
    tool: str  # the -save executable that was read, e.g. "iptables-legacy-save"
    cni_chains: tuple[str, ...]  # CNI-* chains (ours and the reference's masquerade chains)
    rules: int  # -A lines in every table


@dataclass(frozen=True)
class BrNetfilter:
    loaded: bool
    call_iptables: str | None  # net/bridge/bridge-nf-call-iptables
    call_ip6tables: str | None


@dataclass(frozen=True)
class AgentSocket:
    path: str
    is_socket: bool
    mode: int  # permission bits of the socket file
    uid: int
    dir_mode: int
    dir_uid: int
    # True: something accepts connections there; False: nothing listens (refused).
    listening: bool


@dataclass(frozen=True)
class HostFacts:
    ip_forward: str | None  # net/ipv4/ip_forward
    ipv6_forwarding: str | None  # net/ipv6/conf/all/forwarding
    # The variant `iptables` on PATH is ("nft", "legacy"), None without iptables.
    iptables_in_use: str | None
    iptables: tuple[IptablesVariant, ...]
    br_netfilter: BrNetfilter
    agent: AgentSocket | None  # None: no socket file (the agent is optional) or "off"
    unreadable: tuple[str, ...] = ()


@dataclass(frozen=True)
class Route:
    """A main-table route: its destination and the name of its output interface."""

    dst: str
    dev: str


@dataclass(frozen=True)
class NetworkFacts:
    spec: NetworkSpec
    summary: NetworkSummary  # inspect's join: rows and their anomalies
    # The kind of the link named as the bridge ("" when there is none).
    bridge_kind: str
    # Every non-link-local address on that link (whatever its kind).
    bridge_addresses: tuple[str, ...]
    routes: tuple[Route, ...]  # main-table routes of the host
    # The data dir's problem (None when a reservation could be written there).
    data_dir_problem: str | None
    # (container ID, ifname) pairs libcni's cache holds: GC keeps these.
    cached: frozenset[tuple[str, str]] = frozenset()
    # Host veths on the bridge whose owner alias names this network: the ones GC may delete.
    owned_veths: frozenset[str] = frozenset()
