"""What the verbs need from a masquerade backend, and how one is picked for this host.

Backends are imported only once chosen: python-iptables (libiptc through ctypes) loads only
on a legacy-iptables host, libnftables (ctypes) only for the nftables backend or the spoof
checker, subprocess only when a binary is driven. nftables is chosen by `nft` on PATH, as the
reference does; the commands then go through libnftables in process where it loads.
"""

from __future__ import annotations

import os
from collections.abc import Collection
from typing import Protocol

from cni_bridge_py.firewall.layout import MasqRequest
from cni_bridge_py.firewall.nft_transport import Outcome
from cni_bridge_py.firewall.spoof_layout import SpoofCheck
from cni_bridge_py.lookups import DIRECT, Lookups


class MasqBackend(Protocol):
    name: str

    def setup(self, request: MasqRequest) -> None:
        """Install (or rewrite) the attachment's rules for request.addresses; idempotent."""

    def teardown(self, request: MasqRequest) -> None:
        """Remove the rules for request.addresses (every rule of the attachment when empty;
        nftables always removes the whole attachment, named by network+ifname+container);
        fine when nothing exists."""

    def missing(self, request: MasqRequest) -> list[str]:
        """The expected rules that are not installed (empty when all are)."""

    def gc(self, network: str, valid: Collection[tuple[str, str]]) -> list[str]:
        """Remove, in one batch per table, the masquerade state of `network` owned by no
        valid (containerID, ifname) pair; other networks are never touched. iptables state
        has no ifname, so there a container stays while any of its pairs is valid. Returns
        one readable line per removed attachment."""


class SpoofChecker(Protocol):
    """macspoofchk: drop frames from the container's veth whose source MAC is not its own."""

    def setup(self, spec: SpoofCheck) -> None:
        """Install (or rewrite) the attachment's rules; needs spec.host_veth and spec.mac."""

    def teardown(self, spec: SpoofCheck) -> None:
        """Remove the attachment's rules, found by container ID and ifname; fine when none."""

    def missing(self, spec: SpoofCheck) -> list[str]:
        """The expected rules that are not installed (empty when all are)."""


def iptables_variant(path_env: str | None, lookups: Lookups = DIRECT) -> str | None:
    """'nft', 'legacy' or None (no iptables on PATH), from where `iptables` really points."""
    found = lookups.which("iptables", path_env)
    if found is None:
        return None
    if "legacy" in os.path.basename(lookups.link_target(found)):
        return "legacy"
    return "nft"


def _iptables(path_env: str | None, lookups: Lookups) -> MasqBackend | None:
    variant = iptables_variant(path_env, lookups)
    if variant == "legacy":
        from cni_bridge_py.firewall.iptables_legacy import LegacyIptables  # noqa: PLC0415

        return LegacyIptables()
    if variant == "nft":
        from cni_bridge_py.firewall.iptables_nft_write import NetlinkNat  # noqa: PLC0415
        from cni_bridge_py.firewall.iptables_restore import RestoreIptables  # noqa: PLC0415

        return RestoreIptables(path_env, nft=_libnftables(path_env, lookups), netlink=NetlinkNat())
    return None


class _LibnftablesOnFirstUse:
    """libnftables for iptables-nft's DEL and CHECK, loaded when one of them first asks: an
    ADD never reads, and ctypes costs a one-shot ADD a few milliseconds."""

    def run(self, commands: str, *, json: bool = False, handles: bool = False) -> Outcome:
        from cni_bridge_py.firewall.nft_lib import load  # noqa: PLC0415

        library = load()
        if library is None:
            return Outcome(False, "", "libnftables cannot be loaded here")
        return library.run(commands, json=json, handles=handles)


def _libnftables(path_env: str | None, lookups: Lookups) -> _LibnftablesOnFirstUse | None:
    """Where `nft` is here too (the nftables package brings libnftables with it)."""
    return _LibnftablesOnFirstUse() if lookups.which("nft", path_env) else None


def _nftables(path_env: str | None, lookups: Lookups) -> MasqBackend | None:
    found = lookups.which("nft", path_env)
    if found is None:
        return None
    from cni_bridge_py.firewall.nft_run import open_nft  # noqa: PLC0415
    from cni_bridge_py.firewall.nftables import NftablesMasq  # noqa: PLC0415

    return NftablesMasq(open_nft(found))


def default_backend(
    path_env: str | None, preference: str = "", lookups: Lookups = DIRECT
) -> MasqBackend | None:
    """The backend for ADD and CHECK. `preference` is the config's ipMasqBackend: "iptables"
    or "nftables" is taken as asked (None if its tool is missing); "" means iptables in the
    variant the host's `iptables` is (nft or legacy), else nftables when only nft exists.
    Presence of the binaries decides, not a probe that needs CAP_NET_ADMIN (plugins#1280).
    `lookups`: an agent's kept answers of where the tools are."""
    if preference == "nftables":
        return _nftables(path_env, lookups)
    found = _iptables(path_env, lookups)
    if found is not None or preference == "iptables":
        return found
    return _nftables(path_env, lookups)


def spoof_checker(path_env: str | None, lookups: Lookups = DIRECT) -> SpoofChecker | None:
    """The macspoofchk implementation (nft, bridge family); None without `nft` on PATH."""
    found = lookups.which("nft", path_env)
    if found is None:
        return None
    from cni_bridge_py.firewall.macspoofchk import NftSpoofChecker  # noqa: PLC0415
    from cni_bridge_py.firewall.nft_run import open_nft  # noqa: PLC0415

    return NftSpoofChecker(open_nft(found))


def all_backends(path_env: str | None, lookups: Lookups = DIRECT) -> list[MasqBackend]:
    """Every backend that can run here, for DEL and GC to clean whichever wrote the rules
    (the config's ipMasqBackend may have changed since ADD, or the reference wrote them)."""
    found = (_iptables(path_env, lookups), _nftables(path_env, lookups))
    return [b for b in found if b is not None]
