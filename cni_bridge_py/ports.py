"""The interfaces the verbs receive: netlink sessions, the firewall, sysctls and the store.

Real implementations live in kernel/, firewall/ and ipam/ (verbs/system.py wires them);
unit tests pass fakes (tests/doubles/).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from contextlib import AbstractContextManager
from typing import Protocol

from cni_bridge_py.firewall.backend import MasqBackend, SpoofChecker
from cni_bridge_py.ipam.config import IpamConf
from cni_bridge_py.ipam.interface import Ipam
from cni_bridge_py.netaddr import IPAddress, IPInterface, IPNetwork
from cni_bridge_py.record import field, record
from cni_bridge_py.request import Notes, Request
from cni_bridge_py.vlan import VlanOp


@record(frozen=True)
class PortFlags:
    hairpin: bool = False
    isolated: bool = False


class LinkView(Protocol):
    @property
    def index(self) -> int: ...
    @property
    def name(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def mac(self) -> str: ...
    @property
    def master(self) -> int | None: ...
    @property
    def peer_index(self) -> int | None: ...
    @property
    def operstate(self) -> str: ...
    @property
    def promisc(self) -> bool: ...
    @property
    def vlan_filtering(self) -> bool: ...
    @property
    def alias(self) -> str: ...


class Links(Protocol):
    """Netlink operations on one namespace (kernel.netlink.NetlinkSession)."""

    def link(self, name: str) -> LinkView | None: ...
    def link_by_index(self, index: int) -> LinkView | None: ...
    def links(self) -> Sequence[LinkView]: ...
    def create_bridge(self, name: str, mtu: int, vlan_filtering: bool = False) -> bool: ...
    def create_veth(
        self, host_name: str, peer_name: str, peer_netns: str, mtu: int, peer_mac: str
    ) -> None: ...
    def set_up(self, index: int, what: str) -> None: ...
    def retire(self, index: int, name: str, what: str) -> None:
        """Down and renamed to `name`: off its bridge at once, and its old name free for
        a new interface before the link itself is deleted."""

    def set_promisc(self, index: int, what: str) -> None: ...
    def set_mac(self, index: int, mac: str, what: str) -> None: ...
    def attach_port(
        self, index: int, master: int, flags: PortFlags, alias: str, what: str
    ) -> None: ...
    def set_port_vlans(self, index: int, ops: list[VlanOp], what: str) -> None: ...
    def delete_link(self, index: int, what: str) -> bool: ...
    def addresses(self, index: int, versions: Collection[int] = (4, 6)) -> list[IPInterface]: ...
    def add_address(
        self, index: int, iface: IPInterface, what: str, nodad: bool = False
    ) -> bool: ...
    def delete_address(self, index: int, iface: IPInterface, what: str) -> None: ...
    def add_route(
        self, dst: IPNetwork, gateway: IPAddress | None, index: int, what: str
    ) -> None: ...
    def routes(
        self, index: int, versions: Collection[int] = (4, 6)
    ) -> list[tuple[IPNetwork, IPAddress | None]]:
        """The main table's (dst, gateway) through link `index`, of these IP versions."""

    def wait_operstate_up(self, index: int, what: str, delays_ms: tuple[int, ...]) -> str: ...


class Background(Protocol):
    """Work a request may leave to finish after its answer: a veth's deletion waits for the
    kernel's RCU grace periods (tens of ms) and nobody needs to wait for it. Keyed by the
    attachment (container ID, ifname), so a new ADD of the same attachment settles it first."""

    def later(self, key: tuple[str, str], work: Callable[[], object]) -> None: ...
    def settle(self, key: tuple[str, str]) -> None: ...


class Immediate:
    """No background: `later` does the work now (the one-shot plugin, which exits after)."""

    def later(self, key: tuple[str, str], work: Callable[[], object]) -> None:
        work()

    def settle(self, key: tuple[str, str]) -> None:
        return None


# Starts work that may run beside the caller's; the returned function waits for it and
# raises what it raised.
Alongside = Callable[[Callable[[], None]], Callable[[], None]]


def in_turn(work: Callable[[], None]) -> Callable[[], None]:
    """Alongside without a second thread: the work runs now, and its failure is raised at the
    wait, where a thread's would be (the fakes, and whatever must stay ordered)."""
    failure: list[Exception] = []
    try:
        work()
    except Exception as exc:  # raised at the wait, as from a thread
        failure.append(exc)

    def wait() -> None:
        if failure:
            raise failure[0]

    return wait


class Steps(Protocol):
    """Where a verb marks the end of each of its steps (log.StepTimer when the config has a
    logFile: each step's time goes into the request's log line)."""

    def mark(self, step: str) -> None: ...


class NoSteps:
    """No log configured: marking costs a method call and nothing else."""

    def mark(self, step: str) -> None:
        return None


NO_STEPS = NoSteps()


class Sysctl(Protocol):
    def write(self, key: str, value: str, *, required: bool = True) -> None: ...


@record
class Ports:
    host: Links
    # A session of its own on the host namespace (work that outlives the request's `host`).
    open_host: Callable[[], AbstractContextManager[Links]]
    open_netns: Callable[[str], AbstractContextManager[Links]]
    sysctl: Sysctl
    # The network's IPAM for this request (ipam.engine.ipam_for over the store).
    ipam: Callable[[IpamConf | None, Request], Ipam]
    # The backend for ADD/CHECK given the config's ipMasqBackend; None when none works here.
    masq: Callable[[str], MasqBackend | None]
    # Every backend usable here: DEL and GC clean all of them.
    masq_all: Callable[[], list[MasqBackend]]
    netns_exists: Callable[[str], bool]
    check_netns: Callable[[str], None]
    # Write sysctls inside a namespace: (path, settings, keys whose failure is an error).
    netns_sysctl: Callable[[str, Sequence[tuple[str, str]], Sequence[str]], None]
    random_suffix: Callable[[], str]
    # What the runtime should read on stderr (rollback failures, GC's removals, ...).
    notes: Notes
    # macspoofchk (firewall): the nft spoof checker, None when nft is missing.
    spoof: Callable[[], SpoofChecker | None] = lambda: None
    background: Background = field(default_factory=Immediate)
    # ADD writes the masquerade rules (an iptables-restore process: milliseconds of waiting)
    # while it configures the container and the gateway.
    alongside: Alongside = in_turn
    # The request log's step timer (log.RequestLog); no-op without a logFile.
    steps: Steps = NO_STEPS
