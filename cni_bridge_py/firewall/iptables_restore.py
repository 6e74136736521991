"""Masquerade rules for iptables-nft (Debian 12's default, which python-iptables cannot
write): in process over nf_tables netlink, with iptables-restore as the fallback.

ADD writes blind: the rules rendered from the network, the container ID and the addresses
alone (layout.render_fresh_setup), as one nf_tables transaction in process
(iptables_nft_write), which commits only when the kernel holds exactly the state it expects.
Each transaction is atomic, so it needs no lock: concurrent ADDs of different containers
touch different chains and only append to POSTROUTING. When the kernel refuses it (no nat
table yet on a fresh host, the chain already there), the same batch goes through
`iptables-restore --noflush` (which makes the table), and when that fails too, the state was
not the expected one (a second interface of the container, a repeated call, rules made by
someone else) and the kernel is read: iptables-save, then a batch rendered from what it said,
under our lock so that two such read-then-writes never interleave.

DEL and CHECK read the container's chain and POSTROUTING's jumps to it from the kernel's rule
dump (nft_netlink; libnftables where that cannot tell). DEL deletes what it read by handle in
one transaction, which the kernel refuses if the state changed since (then the iptables-restore
path runs); CHECK compares, unless this process wrote the rules itself and the kernel's ruleset
generation shows that nobody has committed since (nft_ledger). An iptables-restore process
costs ~3 ms of an ADD here, more under concurrency, and ~13 ms on a DEL, whose socket's close
waits for the kernel to free the deleted rules. Without netlink or libnftables, DEL writes
blind as ADD does (layout.render_known_teardown) and CHECK reads iptables-save. GC always
reads iptables-save: it needs the rules' comments, which nft does not print.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Collection
from typing import Protocol

from cni_bridge_py.errors import IOFailure
from cni_bridge_py.filelock import exclusive
from cni_bridge_py.firewall import iptables_nft_view as view
from cni_bridge_py.firewall.layout import (
    MasqRequest,
    NatTable,
    render_fresh_setup,
    render_gc,
    render_known_teardown,
    render_setup,
    render_teardown,
    rules_missing,
)
from cni_bridge_py.firewall.nft_netlink import CannotRead
from cni_bridge_py.firewall.nft_transport import Outcome
from cni_bridge_py.which import which

LOCK_DIR = "/run/cni-bridge-py"
TOOLS = {4: "iptables", 6: "ip6tables"}
RESTORE_ARGS = ("--noflush", "-w")

_MISSING = "No such file or directory"


class CannotTell(Exception):
    """libnftables could not list a chain (not nf_tables, not loadable, an odd error)."""


class NatLister(Protocol):
    """What reads and writes iptables-nft's tables in process (nft_transport.Transport)."""

    def run(self, commands: str, *, json: bool = False, handles: bool = False) -> Outcome: ...


class NatNetlink(Protocol):
    """iptables-nft's nat table through nf_tables netlink, in process
    (iptables_nft_write.NetlinkNat). Reads raise nft_netlink.CannotRead when they cannot
    tell and answer None for a chain that does not exist; writes answer whether they
    committed (one transaction each, nothing applied when not)."""

    def rules(self, family: int, chain: str) -> list[view.NftRule] | None: ...

    def jumps(self, family: int, chain: str, target: str) -> list[view.NftRule] | None: ...

    def known_jumps(self, family: int, chain: str, target: str) -> list[view.NftRule]: ...

    def unchanged(self, request: MasqRequest, family: int) -> bool:
        """Whether the process's own transaction wrote these rules and nobody has committed
        since (False when that cannot be told)."""
        ...

    def write_fresh_setup(self, request: MasqRequest, family: int) -> bool: ...

    def write_teardown(
        self, family: int, chain: str, jumps: Collection[int], whole: bool
    ) -> bool: ...


class RestoreIptables:
    name = "iptables"

    def __init__(
        self,
        path_env: str | None = None,
        lock_dir: str = LOCK_DIR,
        nft: NatLister | None = None,
        netlink: NatNetlink | None = None,
    ) -> None:
        self.path_env = path_env
        self.lock_dir = lock_dir
        # libnftables for DEL and CHECK where netlink cannot tell; None: iptables processes.
        self.nft = nft
        # The kernel's rules read and written in process: ADD's blind batch, DEL's deletions
        # by handle, CHECK's reads; None, or a refusal: libnftables and iptables processes.
        self.netlink = netlink

    def setup(self, request: MasqRequest) -> None:
        families = sorted({a.version for a in request.addresses})
        if self.netlink is not None:
            families = [f for f in families if not self.netlink.write_fresh_setup(request, f)]
        failed = self._restore_blind({f: render_fresh_setup(request, f) for f in families})
        if not failed:
            return
        with self._lock():
            for family in failed:
                self._restore(family, render_setup(self._nat(family), request, family))

    def teardown(self, request: MasqRequest) -> None:
        # A family whose tools are missing here holds no rules of ours to remove.
        families = [f for f in TOOLS if self._tool(f, "-save") and self._tool(f, "-restore")]
        left = [f for f in families if not self._teardown_in_process(f, request)]
        if left:
            self._teardown_restore(left, request)

    def _teardown_in_process(self, family: int, request: MasqRequest) -> bool:
        """Read the chain and POSTROUTING, delete by handle: True when that did it all."""
        try:
            if self._chain(family, request.chain) is None:
                return True  # no chain: nothing can jump to it
            postrouting = self._jumps(family, request.chain)
        except CannotTell:
            return False
        hosts = {str(a.ip) for a in request.addresses}
        doomed, whole = view.teardown_plan(request.chain, postrouting, hosts)
        if self.netlink is not None:
            return self.netlink.write_teardown(family, request.chain, doomed, whole)
        commands = view.teardown_commands(family, request.chain, doomed, whole)
        assert self.nft is not None
        return not commands or self.nft.run("\n".join(commands)).ok

    def _teardown_restore(self, families: list[int], request: MasqRequest) -> None:
        batches = {f: render_known_teardown(request, f) for f in families}
        failed = self._restore_blind({f: b for f, b in batches.items() if b is not None})
        # A family with no known address is read when no address is known at all (the
        # container's jumps are found there), or when its chain exists all the same.
        unknown = [
            f
            for f in families
            if batches[f] is None and (not request.addresses or self._has_chain(f, request))
        ]
        if not failed and not unknown:
            return
        with self._lock():
            for family in sorted({*failed, *unknown}):
                batch = render_teardown(self._nat(family), request.chain, request.addresses)
                if batch is not None:
                    self._restore(family, batch)

    def _has_chain(self, family: int, request: MasqRequest) -> bool:
        try:
            return self._chain(family, request.chain) is not None
        except CannotTell:
            return False  # only the families with known addresses are written

    def _jumps(self, family: int, chain: str) -> list[view.NftRule]:
        """POSTROUTING's jumps to `chain`."""
        if self.netlink is not None:
            try:
                return self.netlink.jumps(family, view.POSTROUTING, chain) or []
            except CannotRead:
                pass  # libnftables, or iptables-save, may still tell
        return self._chain(family, view.POSTROUTING, chain) or []

    def _chain(self, family: int, chain: str, jumping_to: str = "") -> list[view.NftRule] | None:
        """The chain's rules as the kernel's rule dump reads them, or libnftables lists them
        where that cannot tell (with `jumping_to`, only the jumps to that chain, through
        libnftables); None when it does not exist."""
        if self.netlink is not None and not jumping_to:
            try:
                return self.netlink.rules(family, chain)
            except CannotRead:
                pass
        if self.nft is None:
            raise CannotTell("no libnftables")
        outcome = self.nft.run(view.list_command(family, chain), json=True)
        if outcome.ok:
            return view.parse_chain(outcome.output, jumping_to)
        if _MISSING in outcome.error:
            return None  # no such chain, or not even the table
        raise CannotTell(outcome.error)

    def gc(self, network: str, valid: Collection[tuple[str, str]]) -> list[str]:
        """One iptables-restore batch per family removing the chains of `network` whose
        container has no valid attachment (a chain has no ifname: any valid pair keeps it)."""
        valid_ids = {container_id for container_id, _ in valid}
        removed: list[str] = []
        with self._lock():
            for family, tool in TOOLS.items():
                if self._tool(family, "-save") is None:
                    continue
                batch, stale = render_gc(self._nat(family), network, valid_ids)
                if batch is not None:
                    self._restore(family, batch)
                removed += [f"{tool} {chain} id: {cid}" for chain, cid in stale.items()]
        return removed

    def missing(self, request: MasqRequest) -> list[str]:
        out: list[str] = []
        for family in sorted({a.version for a in request.addresses}):
            if self._unchanged(request, family):
                continue
            try:
                own = self._chain(family, request.chain)
                known = self._known_jumps(family, request)
                # Nothing known, or something missing: only the whole of POSTROUTING can tell.
                absent = view.missing(request, family, own, known) if known else None
                if absent is None or absent:
                    absent = view.missing(request, family, own, self._jumps(family, request.chain))
            except CannotTell:
                absent = rules_missing(self._nat(family), request, family)
            out += absent
        return out

    def _unchanged(self, request: MasqRequest, family: int) -> bool:
        """The rules are as our own transaction wrote them: nothing to read."""
        return self.netlink is not None and self.netlink.unchanged(request, family)

    def _known_jumps(self, family: int, request: MasqRequest) -> list[view.NftRule]:
        """Some of POSTROUTING's jumps to the chain, quickly (NatNetlink.known_jumps): when
        they are all CHECK expects, POSTROUTING's other rules need not be read."""
        if self.netlink is None:
            return []
        try:
            return self.netlink.known_jumps(family, view.POSTROUTING, request.chain)
        except CannotRead:
            return []

    def _restore_blind(self, batches: dict[int, str]) -> list[int]:
        """Every batch at once (a dual-stack attachment's two families run side by side);
        the families whose batch did not commit."""
        tools = {family: self._need(family, "-restore") for family in batches}
        running = [
            (family, _start([tools[family], *RESTORE_ARGS]), batch)
            for family, batch in batches.items()
        ]
        failed = []
        for family, proc, batch in running:
            proc.communicate(batch)
            if proc.returncode != 0:
                failed.append(family)
        return sorted(failed)

    def _nat(self, family: int) -> NatTable:
        return NatTable.parse(self._run(family, "-save", ["-t", "nat"]))

    def _restore(self, family: int, batch: str) -> None:
        self._run(family, "-restore", list(RESTORE_ARGS), stdin=batch)

    def _tool(self, family: int, suffix: str) -> str | None:
        return which(TOOLS[family] + suffix, path=self.path_env)

    def _need(self, family: int, suffix: str) -> str:
        tool = self._tool(family, suffix)
        if tool is None:
            raise IOFailure(
                f"{TOOLS[family]}{suffix} not found", "install iptables or set ipMasq false"
            )
        return tool

    def _run(self, family: int, suffix: str, args: list[str], stdin: str | None = None) -> str:
        proc = _start([self._need(family, suffix), *args])
        stdout, stderr = proc.communicate(stdin)
        if proc.returncode != 0:
            raise IOFailure(
                f"{TOOLS[family]}{suffix} failed (exit {proc.returncode})",
                (stderr.strip() + ("\nbatch:\n" + stdin if stdin else "")).strip(),
            )
        return stdout

    def _lock(self) -> contextlib.AbstractContextManager[None]:
        """Only around a read-then-write: what was read must still hold when the batch
        rendered from it is applied, against our own other read-then-writes."""
        return exclusive(os.path.join(self.lock_dir, "iptables.lock"))


def _start(command: list[str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        command,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
