"""IPAM as a main plugin's verbs see it: add, delete, check, gc and status of one attachment.

host-local runs in process against the store; any other ipam.type is a plugin executable
found on CNI_PATH (delegate.py, loaded only then). The verbs call only this module.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Sequence, Set

from cni_bridge_py.errors import UnknownContainer
from cni_bridge_py.ipam import allocator
from cni_bridge_py.ipam.allocator import Attachment
from cni_bridge_py.ipam.config import HostLocalConf, IpamConf
from cni_bridge_py.ipam.gc import gc
from cni_bridge_py.ipam.interface import Ipam, IpamResult
from cni_bridge_py.ipam.ranges import RangeSet
from cni_bridge_py.ipam.resolvconf import read_resolv_conf
from cni_bridge_py.ipam.status import status
from cni_bridge_py.ipam.store import Store
from cni_bridge_py.netaddr import IPAddress, IPInterface
from cni_bridge_py.request import Notes, Request
from cni_bridge_py.result import DNS

__all__ = ["Attachment", "HostLocal", "Ipam", "IpamResult", "NoIpam", "ipam_for"]

StoreOpener = Callable[[str, str], Store]


class NoIpam:
    """L2 mode: no addresses."""

    def ready(self) -> None:
        return None

    def add(self, who: Attachment) -> IpamResult:
        return IpamResult()

    def delete(self, who: Attachment) -> list[IPInterface]:
        return []

    def check(self, who: Attachment, likely: Sequence[IPAddress] = ()) -> None:
        return None

    def gc(self, valid: Set[tuple[str, str]]) -> list[IPAddress]:
        return []

    def status(self) -> None:
        return None


class HostLocal:
    def __init__(
        self,
        network: str,
        settings: HostLocalConf,
        open_store: StoreOpener,
        read_dns: Callable[[str], DNS] = read_resolv_conf,
    ) -> None:
        self.network = network
        self.settings = settings
        self.open_store = open_store
        self.read_dns = read_dns

    def _store(self) -> Store:
        return self.open_store(self.settings.data_dir, self.network)

    def ready(self) -> None:
        settings = self.settings
        allocator.assign_requested(settings.range_sets, settings.requested)

    def add(self, who: Attachment) -> IpamResult:
        settings = self.settings
        # Read before allocating, as the reference does: a bad file leaves nothing reserved.
        dns = self.read_dns(settings.resolv_conf) if settings.resolv_conf else DNS()
        ips = allocator.allocate(self._store(), settings.range_sets, who, settings.requested)
        return IpamResult(tuple(ips), settings.routes, dns)

    def delete(self, who: Attachment) -> list[IPInterface]:
        released = allocator.release(self._store(), who)
        return [_with_prefix(a, self.settings.range_sets) for a in released]

    def check(self, who: Attachment, likely: Sequence[IPAddress] = ()) -> None:
        if not allocator.holds_any(self._store(), who, likely):
            raise UnknownContainer(
                f"host-local: failed to find address added by container {who.container_id}",
                f"no reservation for ({who.container_id}, {who.ifname}) in"
                f" {self.settings.data_dir}/{self.network}",
            )

    def gc(self, valid: Set[tuple[str, str]]) -> list[IPAddress]:
        return gc(self._store(), valid)

    def status(self) -> None:
        status(self.open_store, self.settings.data_dir, self.network, self.settings.range_sets)


def _with_prefix(addr: IPAddress, range_sets: Sequence[RangeSet]) -> IPInterface:
    for range_set in range_sets:
        r = range_set.range_for(addr)
        if r is not None:
            return ipaddress.ip_interface(f"{addr}/{r.subnet.prefixlen}")
    return ipaddress.ip_interface(f"{addr}/{addr.max_prefixlen}")


def ipam_for(
    conf: IpamConf | None, request: Request, open_store: StoreOpener, notes: Notes
) -> Ipam:
    """The IPAM of a parsed config: none (L2), host-local in process, or a delegated plugin
    run with this request's environment and stdin (its stderr goes to `notes`)."""
    if conf is None:
        return NoIpam()
    if conf.host_local is not None:
        return HostLocal(conf.network, conf.host_local, open_store)
    # Loaded only here: the only module that spawns processes.
    from cni_bridge_py.ipam.delegate import Delegated  # noqa: PLC0415

    return Delegated(conf.type, request, notes)
