"""What the verbs need from a masquerade backend, and how one is picked for this host."""

from __future__ import annotations

import os
import shutil
from typing import Protocol

from cni_bridge_py.firewall.layout import MasqRequest


class MasqBackend(Protocol):
    name: str

    def setup(self, request: MasqRequest) -> None:
        """Install (or rewrite) the container's chain and jumps; idempotent."""

    def teardown(self, request: MasqRequest) -> None:
        """Remove the rules for request.addresses (every rule of the container when empty);
        fine when nothing exists."""

    def missing(self, request: MasqRequest) -> list[str]:
        """The expected rules that are not installed (empty when all are)."""


def iptables_variant(path_env: str | None) -> str | None:
    """'nft', 'legacy' or None (no iptables on PATH), from where `iptables` really points."""
    found = shutil.which("iptables", path=path_env)
    if found is None:
        return None
    target = os.path.basename(os.path.realpath(found))
    if "legacy" in target:
        return "legacy"
    return "nft"


def default_backend(path_env: str | None, preference: str = "") -> MasqBackend | None:
    """`preference` is the config's ipMasqBackend ("" = whatever works here)."""
    variant = iptables_variant(path_env)
    if variant == "legacy":
        from cni_bridge_py.firewall.iptables_legacy import LegacyIptables  # noqa: PLC0415

        return LegacyIptables()
    if variant == "nft":
        from cni_bridge_py.firewall.iptables_restore import RestoreIptables  # noqa: PLC0415

        return RestoreIptables(path_env)
    return None


def all_backends(path_env: str | None) -> list[MasqBackend]:
    """Every backend that can run here, for cleaning up whichever one wrote the rules."""
    found = default_backend(path_env, "iptables")
    return [found] if found is not None else []
