"""IPAM as a main plugin's verbs see it: add, delete, check, gc and status of one attachment.

host-local runs in process against the store; any other ipam.type is a plugin executable
found on CNI_PATH (delegate.py, loaded only then). The verbs call only this module.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Sequence, Set

from cni_bridge_py.config import NetConf
from cni_bridge_py.errors import InvalidConfig, UnknownContainer
from cni_bridge_py.front import Request
from cni_bridge_py.ipam import allocator
from cni_bridge_py.ipam.allocator import Attachment
from cni_bridge_py.ipam.config import HostLocalConf
from cni_bridge_py.ipam.effective import effective, known_range_sets
from cni_bridge_py.ipam.gc import gc, valid_attachments
from cni_bridge_py.ipam.interface import Ipam, IpamResult
from cni_bridge_py.ipam.ranges import RangeSet
from cni_bridge_py.ipam.resolvconf import read_resolv_conf
from cni_bridge_py.ipam.status import status
from cni_bridge_py.ipam.store import Store
from cni_bridge_py.netaddr import IPAddress, IPInterface
from cni_bridge_py.result import DNS

# Re-exported for the verbs: the GC and STATUS helpers and the result type.
__all__ = [
    "HostLocal",
    "Ipam",
    "IpamResult",
    "NoIpam",
    "gc",
    "ipam_for",
    "status",
    "valid_attachments",
]

StoreOpener = Callable[[str, str], Store]


class NoIpam:
    """L2 mode: no addresses."""

    def add(self, request: Request, conf: NetConf) -> IpamResult:
        return IpamResult()

    def delete(self, request: Request, conf: NetConf) -> list[IPInterface]:
        return []

    def check(self, request: Request, conf: NetConf) -> None:
        return None

    def gc(
        self, request: Request, conf: NetConf, valid: Set[tuple[str, str]] | None = None
    ) -> list[IPAddress]:
        return []

    def status(self, request: Request, conf: NetConf) -> None:
        return None


class HostLocal:
    def __init__(
        self,
        settings: HostLocalConf,
        open_store: StoreOpener,
        read_dns: Callable[[str], DNS] = read_resolv_conf,
    ) -> None:
        self.settings = settings
        self.open_store = open_store
        self.read_dns = read_dns

    def _store(self, conf: NetConf) -> Store:
        return self.open_store(self.settings.data_dir, conf.name)

    def add(self, request: Request, conf: NetConf) -> IpamResult:
        plan = effective(self.settings, request.config, conf.cni_version, conf.requested_ips)
        # Read before allocating, as the reference does: a bad file leaves nothing reserved.
        dns = self.read_dns(self.settings.resolv_conf) if self.settings.resolv_conf else DNS()
        who = Attachment(request.container_id, request.ifname)
        ips = allocator.allocate(self._store(conf), plan.range_sets, who, plan.requested)
        return IpamResult(tuple(ips), self.settings.routes, dns)

    def delete(self, request: Request, conf: NetConf) -> list[IPInterface]:
        who = Attachment(request.container_id, request.ifname)
        released = allocator.release(self._store(conf), who)
        range_sets = known_range_sets(self.settings, request.config)
        return [_with_prefix(a, range_sets) for a in released]

    def check(self, request: Request, conf: NetConf) -> None:
        who = Attachment(request.container_id, request.ifname)
        if not allocator.owned(self._store(conf), who):
            raise UnknownContainer(
                f"host-local: failed to find address added by container {request.container_id}",
                f"no reservation for ({request.container_id}, {request.ifname}) in"
                f" {self.settings.data_dir}/{conf.name}",
            )

    def gc(
        self, request: Request, conf: NetConf, valid: Set[tuple[str, str]] | None = None
    ) -> list[IPAddress]:
        keep = valid_attachments(request.config) if valid is None else valid
        return gc(self._store(conf), keep)

    def status(self, request: Request, conf: NetConf) -> None:
        range_sets = known_range_sets(self.settings, request.config)
        status(self.open_store, self.settings.data_dir, conf.name, range_sets)


def _with_prefix(addr: IPAddress, range_sets: Sequence[RangeSet]) -> IPInterface:
    for range_set in range_sets:
        r = range_set.range_for(addr)
        if r is not None:
            return ipaddress.ip_interface(f"{addr}/{r.subnet.prefixlen}")
    return ipaddress.ip_interface(f"{addr}/{addr.max_prefixlen}")


def ipam_for(conf: NetConf, open_store: StoreOpener) -> Ipam:
    if conf.ipam is None:
        return NoIpam()
    if conf.ipam.host_local is not None:
        return HostLocal(conf.ipam.host_local, open_store)
    if conf.type and conf.ipam.type == conf.type:
        # The plugin would run itself with the same config, again and again.
        raise InvalidConfig(
            f'invalid network config: "ipam.type" {conf.ipam.type!r} is the plugin itself',
            'name an IPAM plugin, e.g. "host-local"',
        )
    # Loaded only here: the only module that spawns processes.
    from cni_bridge_py.ipam.delegate import Delegated  # noqa: PLC0415

    return Delegated(conf.ipam.type)
