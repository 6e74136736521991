"""macspoofchk: the spoof_layout rules, one transaction per call.

ADD writes blind (spoof_layout.render_fresh_setup): the attachment's chains are created, which
fails when they exist, so success means the rules are exactly right; on failure (the table
or PREROUTING not made yet, a repeated ADD) the table is read and rewritten. DEL must delete
the PREROUTING jump by its handle, so it reads first, in process and only what it removes:
PREROUTING's rules and whether the attachment's two chains exist; a write that fails is tried
again from a full JSON read of the table.
"""

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
        what = f"installing macspoofchk rules for {spec.host_veth}"
        try:
            self.nft.apply_json(layout.render_fresh_setup(spec), what)
            return
        except IOFailure:
            pass  # not the state a first ADD finds: read it

        def attempt(_: int) -> None:
            self.nft.apply_json(layout.render_setup(self._table(), spec), what)

        self.nft.retrying(attempt)

    def teardown(self, spec: SpoofCheck) -> None:
        def attempt(number: int) -> None:
            current = self._attachment(spec) if number == 0 else self._table()
            batch = layout.render_teardown(current, spec)
            if batch is not None:
                self.nft.apply_json(batch, f"removing macspoofchk rules of {spec.ref_id}")

        try:
            self.nft.retrying(attempt)
        except IOFailure:
            # No nf_tables in this kernel: then no rules exist to remove either.
            if self.nft.usable():
                raise

    def missing(self, spec: SpoofCheck) -> list[str]:
        return layout.rules_missing(self._table(), spec)

    def _attachment(self, spec: SpoofCheck) -> Ruleset:
        """What render_teardown looks at: PREROUTING's rules and the attachment's chains."""
        current = Ruleset()
        for name in (layout.BASE_CHAIN, spec.iface_chain, spec.mac_chain):
            found = self.nft.chain(layout.FAMILY, layout.TABLE, name)
            if found is not None:
                current = current.merged(found)
        return current

    def _table(self) -> Ruleset:
        return Ruleset.parse(self.nft.listing(*_TABLE))
