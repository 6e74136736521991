"""The nftables masquerade backend (ipMasqBackend "nftables"): the layout of nft_layout, with one
transaction per call.

nftables deletes a rule only by its handle, and the reference's layout has nothing of an
attachment but its rules (no chain of its own whose creation could fail when it exists), so
ADD and DEL cannot write blind as the iptables backends do: each reads first, in process and
only the chains it needs (masq_checks, and postrouting for ADD, as text with handles), then
writes one transaction. A write that fails (something changed since the read) is tried again
from a full JSON read of the table, the kernel's exact state.
"""

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
        def attempt(number: int) -> None:
            current = self._chains(layout.POSTROUTING) if number == 0 else self._table()
            batch = layout.render_setup(current, request)
            self.nft.apply(batch, f"installing masquerade rules for {request.container_id}")

        self.nft.retrying(attempt)

    def teardown(self, request: MasqRequest) -> None:
        """Every rule of the attachment goes, whatever request.addresses says: the comment
        names the attachment (network, ifname, container), so no address is needed, and a
        DEL without a netns or a reservation still finds them."""

        def attempt(number: int) -> None:
            current = self._chains() if number == 0 else self._table()
            batch = layout.render_delete(layout.attachment_rules(current, request))
            if batch is not None:
                self.nft.apply(batch, f"removing masquerade rules of {request.container_id}")

        self._cleanup(attempt)

    def missing(self, request: MasqRequest) -> list[str]:
        return layout.rules_missing(self._table(), request)

    def gc(self, network: str, valid: Collection[tuple[str, str]]) -> list[str]:
        """Delete, in one transaction, the rules of `network` that belong to no valid
        (containerID, ifname); returns their comments."""
        removed: list[str] = []

        def attempt(number: int) -> None:
            current = self._chains() if number == 0 else self._table()
            stale = layout.stale_rules(current, network, valid)
            batch = layout.render_delete(stale)
            if batch is not None:
                self.nft.apply(batch, f"collecting stale masquerade rules of {network}")
            # One line per attachment, not per address.
            removed[:] = dict.fromkeys(layout.describe_rule(r) for r in stale)

        self._cleanup(attempt)
        return removed

    def _chains(self, *more: str) -> Ruleset:
        """masq_checks and the `more` chains, as far as they exist (empty without the table)."""
        current = Ruleset()
        for name in (layout.MASQ_CHAIN, *more):
            found = self.nft.chain(layout.FAMILY, layout.TABLE, name)
            if found is None:
                break  # without masq_checks (or the table) the whole layout is written anyway
            current = current.merged(found)
        return current

    def _table(self) -> Ruleset:
        return Ruleset.parse(self.nft.listing(*_TABLE))

    def _cleanup(self, attempt: Callable[[int], None]) -> None:
        try:
            self.nft.retrying(attempt)
        except IOFailure:
            # The reference's rule: a backend the kernel cannot run holds no rules to remove
            # (DEL must not fail forever on a host without nf_tables).
            if self.nft.usable():
                raise
