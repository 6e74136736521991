"""What a main plugin's verbs get from IPAM, whichever plugin does the work (pure)."""

from __future__ import annotations

from collections.abc import Sequence, Set
from typing import Protocol

from cni_bridge_py.ipam.allocator import Attachment
from cni_bridge_py.netaddr import IPAddress, IPInterface
from cni_bridge_py.record import field, record
from cni_bridge_py.result import DNS, IPConfig, Route


@record(frozen=True)
class IpamResult:
    # Without an interface index: only the main plugin knows its interfaces.
    ips: tuple[IPConfig, ...] = ()
    routes: tuple[Route, ...] = ()
    dns: DNS = field(default_factory=DNS)


class Ipam(Protocol):
    """One network's IPAM (built by engine.ipam_for from the parsed IpamConf)."""

    def ready(self) -> None:
        """Raise what add() would fail with before anything is made: a delegated plugin not
        on CNI_PATH, a requested address outside every range. ADD asks first, so a request
        refused for these changes nothing on the host."""

    def add(self, who: Attachment) -> IpamResult: ...

    def delete(self, who: Attachment) -> list[IPInterface]:
        """Release the attachment's addresses; returns them (with prefix) when known."""

    def check(self, who: Attachment, likely: Sequence[IPAddress] = ()) -> None:
        """UnknownContainer when the attachment holds no address; `likely` (prevResult's
        addresses) only says where to look first."""

    def gc(self, valid: Set[tuple[str, str]]) -> list[IPAddress]:
        """Release what no valid (containerID, ifname) owns; returns the addresses when known."""

    def status(self) -> None:
        """PluginUnavailable (50) when an ADD could not succeed now."""
