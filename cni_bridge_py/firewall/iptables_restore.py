"""Masquerade rules through iptables-save/iptables-restore: one read and one batch per family.

This is how rules reach iptables-nft (Debian 12's default), which python-iptables cannot write.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Collection

from cni_bridge_py.errors import IOFailure
from cni_bridge_py.filelock import exclusive
from cni_bridge_py.firewall.layout import (
    MasqRequest,
    NatTable,
    render_gc,
    render_setup,
    render_teardown,
    rules_missing,
)

LOCK_DIR = "/run/cni-bridge-py"
TOOLS = {4: "iptables", 6: "ip6tables"}


class RestoreIptables:
    name = "iptables"

    def __init__(self, path_env: str | None = None, lock_dir: str = LOCK_DIR) -> None:
        self.path_env = path_env
        self.lock_dir = lock_dir

    def setup(self, request: MasqRequest) -> None:
        with self._lock():
            for family in sorted({a.version for a in request.addresses}):
                batch = render_setup(self._nat(family), request, family)
                self._restore(family, batch)

    def teardown(self, request: MasqRequest) -> None:
        chain, sources = request.chain, request.addresses
        with self._lock():
            for family in TOOLS:
                if self._tool(family, "-save") is None:
                    continue
                batch = render_teardown(self._nat(family), chain, sources)
                if batch is not None:
                    self._restore(family, batch)

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
            out += rules_missing(self._nat(family), request, family)
        return out

    def _nat(self, family: int) -> NatTable:
        return NatTable.parse(self._run(family, "-save", ["-t", "nat"]))

    def _restore(self, family: int, batch: str) -> None:
        self._run(family, "-restore", ["--noflush", "-w"], stdin=batch)

    def _tool(self, family: int, suffix: str) -> str | None:
        return shutil.which(TOOLS[family] + suffix, path=self.path_env)

    def _run(self, family: int, suffix: str, args: list[str], stdin: str | None = None) -> str:
        tool = self._tool(family, suffix)
        if tool is None:
            raise IOFailure(
                f"{TOOLS[family]}{suffix} not found", "install iptables or set ipMasq false"
            )
        proc = subprocess.run(
            [tool, *args], input=stdin, capture_output=True, text=True, check=False
        )
        if proc.returncode != 0:
            raise IOFailure(
                f"{TOOLS[family]}{suffix} failed (exit {proc.returncode})",
                (proc.stderr.strip() + ("\nbatch:\n" + stdin if stdin else "")).strip(),
            )
        return proc.stdout

    def _lock(self) -> contextlib.AbstractContextManager[None]:
        """Our read-then-write is one critical section across concurrent plugin runs."""
        return exclusive(os.path.join(self.lock_dir, "iptables.lock"))
