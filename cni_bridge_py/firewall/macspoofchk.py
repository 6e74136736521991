"""macspoofchk: the spoof_layout rules applied with one `nft -j list` and one `nft -j -f -`."""

from __future__ import annotations

from cni_bridge_py.errors import IOFailure
from cni_bridge_py.firewall import spoof_layout as layout
from cni_bridge_py.firewall.nft_json import Ruleset
from cni_bridge_py.firewall.nft_run import Nft
from cni_bridge_py.firewall.spoof_layout import SpoofCheck

_TABLE = ("table", layout.FAMILY, layout.TABLE)


class NftSpoofChecker:
    def __init__(self, nft: Nft) -> None:
        self.nft = nft

    def setup(self, spec: SpoofCheck) -> None:
        def write(current: Ruleset) -> None:
            batch = layout.render_setup(current, spec)
            self.nft.apply_json(batch, f"installing macspoofchk rules for {spec.host_veth}")

        self.nft.transact(_TABLE, write)

    def teardown(self, spec: SpoofCheck) -> None:
        def write(current: Ruleset) -> None:
            batch = layout.render_teardown(current, spec)
            if batch is not None:
                self.nft.apply_json(batch, f"removing macspoofchk rules of {spec.ref_id}")

        try:
            self.nft.transact(_TABLE, write)
        except IOFailure:
            # No nf_tables in this kernel: then no rules exist to remove either.
            if self.nft.usable():
                raise

    def missing(self, spec: SpoofCheck) -> list[str]:
        return layout.rules_missing(Ruleset.parse(self.nft.listing(*_TABLE)), spec)
