"""Talking to nftables: listings to read and batches (one kernel transaction each) to write.

Commands go through libnftables in process (nft_lib); only where the library cannot be loaded
is the `nft` executable run (nft_binary). Neither is imported before it is needed, so a
process that never touches nftables loads neither ctypes nor subprocess for it.

No lock is held between a read and the write rendered from it. The writes add rules, create
chains and delete rules by handle; a handle is never reused while its table exists, so a
write based on a stale read fails (its handle or chain is gone, or a chain it creates now
exists) rather than removing something it did not read, and the caller then reads again
(`retrying`). The CNI runtime never runs two operations on one container at a time, so two
writers only meet on the shared chains, whose rewrites are idempotent.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from cni_bridge_py.errors import IOFailure
from cni_bridge_py.firewall.nft_json import Ruleset
from cni_bridge_py.firewall.nft_text import parse_chain
from cni_bridge_py.firewall.nft_transport import Outcome, Transport

# How often a read-then-write is tried before its failure is reported: a retry only happens
# when another writer changed what was read, which an idle retry does not repeat.
ATTEMPTS = 3
_MISSING = "No such file or directory"


class Nft:
    def __init__(self, transport: Transport) -> None:
        self.transport = transport

    def listing(self, *what: str) -> dict[str, Any] | None:
        """`nft -j list <what>`; None when that table or chain does not exist."""
        outcome = self.transport.run(f"list {' '.join(what)}", json=True)
        if not outcome.ok:
            if _MISSING in outcome.error:
                return None
            raise IOFailure(f"nft list {' '.join(what)} failed", outcome.error.strip())
        value = json.loads(outcome.output) if outcome.output.strip() else {}
        if not isinstance(value, dict):
            raise IOFailure(f"nft list {' '.join(what)}: unexpected output", outcome.output[:200])
        return value

    def chain(self, family: str, table: str, name: str) -> Ruleset | None:
        """The rules of one chain with their handles and comments (nft_text); None when the
        table or the chain does not exist."""
        what = f"chain {family} {table} {name}"
        outcome = self.transport.run(f"list {what}", handles=True)
        if not outcome.ok:
            if _MISSING in outcome.error:
                return None
            raise IOFailure(f"nft list {what} failed", outcome.error.strip())
        return parse_chain(outcome.output, family, table, name)

    def usable(self) -> bool:
        """Whether this kernel answers nftables at all (no module, no permission: False)."""
        return self.transport.run("list tables").ok

    def apply(self, batch: str, what: str) -> None:
        """A text batch: one transaction, applied entirely or not at all."""
        self._check(self.transport.run(batch), batch, what)

    def apply_json(self, batch: dict[str, Any], what: str) -> None:
        """A JSON batch, for names that nft's text syntax cannot quote."""
        text = json.dumps(batch)
        self._check(self.transport.run(text, json=True), text, what)

    def retrying(self, attempt: Callable[[int], None]) -> None:
        """attempt(0), then again after a failure (another writer changed what it read), up
        to ATTEMPTS times; the last failure is raised."""
        for number in range(ATTEMPTS):
            try:
                attempt(number)
                return
            except IOFailure:
                if number == ATTEMPTS - 1:
                    raise

    @staticmethod
    def _check(outcome: Outcome, batch: str, what: str) -> None:
        if not outcome.ok:
            raise IOFailure(f"nft failed {what}", f"{outcome.error.strip()}\nbatch:\n{batch}")


def open_nft(executable: str) -> Nft:
    """nftables through libnftables in this process, or through `executable` where the library
    cannot be loaded."""
    from cni_bridge_py.firewall import nft_lib  # noqa: PLC0415 - ctypes only when used

    library = nft_lib.load()
    if library is not None:
        return Nft(library)
    from cni_bridge_py.firewall.nft_binary import NftBinary  # noqa: PLC0415

    return Nft(NftBinary(executable))
