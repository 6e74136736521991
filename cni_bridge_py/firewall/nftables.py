"""The nftables masquerade backend (ipMasqBackend "nftables"): the layout of nft_layout, applied
with one `nft -j list` and at most one `nft -f -` transaction per call."""

from __future__ import annotations

from collections.abc import Callable, Collection

from cni_bridge_py.errors import IOFailure
from cni_bridge_py.firewall import nft_layout as layout
from cni_bridge_py.firewall.layout import MasqRequest
from cni_bridge_py.firewall.nft_json import Ruleset
from cni_bridge_py.firewall.nft_run import Nft

_TABLE = ("table", layout.FAMILY, layout.TABLE)


class NftablesMasq:
    name = "nftables"

    def __init__(self, nft: Nft) -> None:
        self.nft = nft

    def setup(self, request: MasqRequest) -> None:
        def write(current: Ruleset) -> None:
            batch = layout.render_setup(current, request)
            self.nft.apply(batch, f"installing masquerade rules for {request.container_id}")

        self.nft.transact(_TABLE, write)

    def teardown(self, request: MasqRequest) -> None:
        """Every rule of the attachment goes, whatever request.addresses says: the comment
        names the attachment (network, ifname, container), so no address is needed, and a
        DEL without a netns or a reservation still finds them."""

        def write(current: Ruleset) -> None:
            batch = layout.render_delete(layout.attachment_rules(current, request))
            if batch is not None:
                self.nft.apply(batch, f"removing masquerade rules of {request.container_id}")

        self._cleanup(write)

    def missing(self, request: MasqRequest) -> list[str]:
        return layout.rules_missing(Ruleset.parse(self.nft.listing(*_TABLE)), request)

    def gc(self, network: str, valid: Collection[tuple[str, str]]) -> list[str]:
        """Delete, in one transaction, the rules of `network` that belong to no valid
        (containerID, ifname); returns their comments."""
        removed: list[str] = []

        def write(current: Ruleset) -> None:
            stale = layout.stale_rules(current, network, valid)
            batch = layout.render_delete(stale)
            if batch is not None:
                self.nft.apply(batch, f"collecting stale masquerade rules of {network}")
            # One line per attachment, not per address.
            removed[:] = dict.fromkeys(layout.describe_rule(r) for r in stale)

        self._cleanup(write)
        return removed

    def _cleanup(self, write: Callable[[Ruleset], None]) -> None:
        try:
            self.nft.transact(_TABLE, write)
        except IOFailure:
            # The reference's rule: a backend the kernel cannot run holds no rules to remove
            # (DEL must not fail forever on a host without nf_tables).
            if self.nft.usable():
                raise
