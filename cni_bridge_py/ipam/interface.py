"""What a main plugin's verbs get from IPAM, whichever plugin does the work (pure)."""

from __future__ import annotations

from collections.abc import Set
from dataclasses import dataclass, field
from typing import Protocol

from cni_bridge_py.config import NetConf
from cni_bridge_py.front import Request
from cni_bridge_py.netaddr import IPAddress, IPInterface
from cni_bridge_py.result import DNS, IPConfig, Route


@dataclass(frozen=True)
class IpamResult:
    # Without an interface index: only the main plugin knows its interfaces.
    ips: tuple[IPConfig, ...] = ()
    routes: tuple[Route, ...] = ()
    dns: DNS = field(default_factory=DNS)


class Ipam(Protocol):
    def add(self, request: Request, conf: NetConf) -> IpamResult: ...

    def delete(self, request: Request, conf: NetConf) -> list[IPInterface]:
        """Release the attachment's addresses; returns them (with prefix) when known."""

    def check(self, request: Request, conf: NetConf) -> None: ...

    def gc(
        self, request: Request, conf: NetConf, valid: Set[tuple[str, str]] | None = None
    ) -> list[IPAddress]:
        """Release what no valid (containerID, ifname) owns; returns the addresses when known.
        `valid` defaults to the request's cni.dev/valid-attachments."""

    def status(self, request: Request, conf: NetConf) -> None:
        """PluginUnavailable (50) when an ADD could not succeed now."""
