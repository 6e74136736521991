"""IPAM as the bridge plugin sees it: add, delete and check one attachment.

host-local runs in process against the store; any other ipam.type is a plugin executable
found on CNI_PATH (see delegate.py). The verbs call only this module.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from cni_bridge_py.config import NetConf
from cni_bridge_py.errors import UnknownContainer
from cni_bridge_py.front import Request
from cni_bridge_py.ipam import allocator
from cni_bridge_py.ipam.allocator import Attachment
from cni_bridge_py.ipam.config import HostLocalConf
from cni_bridge_py.ipam.store import Store
from cni_bridge_py.netaddr import IPAddress, IPInterface
from cni_bridge_py.result import DNS, IPConfig, Route


@dataclass(frozen=True)
class IpamResult:
    ips: tuple[IPConfig, ...] = ()
    routes: tuple[Route, ...] = ()
    dns: DNS = field(default_factory=DNS)


class Ipam(Protocol):
    def add(self, request: Request, conf: NetConf) -> IpamResult: ...

    def delete(self, request: Request, conf: NetConf) -> list[IPInterface]:
        """Release the attachment's addresses; returns them (with prefix) when known."""

    def check(self, request: Request, conf: NetConf) -> None: ...


class NoIpam:
    """L2 mode: no addresses."""

    def add(self, request: Request, conf: NetConf) -> IpamResult:
        return IpamResult()

    def delete(self, request: Request, conf: NetConf) -> list[IPInterface]:
        return []

    def check(self, request: Request, conf: NetConf) -> None:
        return None


class HostLocal:
    def __init__(self, settings: HostLocalConf, open_store: Callable[[str, str], Store]) -> None:
        self.settings = settings
        self.open_store = open_store

    def _store(self, conf: NetConf) -> Store:
        return self.open_store(self.settings.data_dir, conf.name)

    def add(self, request: Request, conf: NetConf) -> IpamResult:
        who = Attachment(request.container_id, request.ifname)
        ips = allocator.allocate(
            self._store(conf), self.settings.range_sets, who, conf.requested_ips
        )
        return IpamResult(tuple(ips), self.settings.routes, DNS())

    def delete(self, request: Request, conf: NetConf) -> list[IPInterface]:
        who = Attachment(request.container_id, request.ifname)
        return [self._with_prefix(a) for a in allocator.release(self._store(conf), who)]

    def check(self, request: Request, conf: NetConf) -> None:
        who = Attachment(request.container_id, request.ifname)
        if not allocator.owned(self._store(conf), who):
            raise UnknownContainer(
                f"host-local: failed to find address added by container {request.container_id}"
            )

    def _with_prefix(self, addr: IPAddress) -> IPInterface:
        for range_set in self.settings.range_sets:
            r = range_set.range_for(addr)
            if r is not None:
                return ipaddress.ip_interface(f"{addr}/{r.subnet.prefixlen}")
        return ipaddress.ip_interface(f"{addr}/{addr.max_prefixlen}")


def ipam_for(conf: NetConf, open_store: Callable[[str, str], Store]) -> Ipam:
    if conf.ipam is None:
        return NoIpam()
    if conf.ipam.host_local is not None:
        return HostLocal(conf.ipam.host_local, open_store)
    raise NotImplementedError(f"ipam type {conf.ipam.type!r}")  # delegation: later
