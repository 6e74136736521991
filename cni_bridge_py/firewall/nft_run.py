"""Running `nft`: a JSON listing to read and one batch (one kernel transaction) to write.

Callers hold `lock()` across read-then-write, so concurrent runs of this plugin never delete
a rule handle another run just read. Writers outside the lock (the reference plugin) can
still race; the backends retry a failed batch once after reading again.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
from collections.abc import Callable
from typing import Any

from cni_bridge_py.errors import IOFailure
from cni_bridge_py.filelock import exclusive
from cni_bridge_py.firewall.nft_json import Ruleset

LOCK_DIR = "/run/cni-bridge-py"
# nft's messages come from strerror: the C locale keeps "No such file or directory" stable.
_ENV = {"LC_ALL": "C"}
_MISSING = "No such file or directory"


class Nft:
    def __init__(self, executable: str, lock_dir: str = LOCK_DIR) -> None:
        self.executable = executable
        self.lock_dir = lock_dir

    def listing(self, *what: str) -> dict[str, Any] | None:
        """`nft -j list <what>`; None when that table or chain does not exist."""
        proc = self._run(["-j", "list", *what])
        if proc.returncode != 0:
            if _MISSING in proc.stderr:
                return None
            raise IOFailure(f"nft list {' '.join(what)} failed", proc.stderr.strip())
        value = json.loads(proc.stdout) if proc.stdout.strip() else {}
        if not isinstance(value, dict):
            raise IOFailure(f"nft list {' '.join(what)}: unexpected output", proc.stdout[:200])
        return value

    def usable(self) -> bool:
        """Whether this kernel answers nftables at all (no module, no permission: False)."""
        return self._run(["list", "tables"]).returncode == 0

    def apply(self, batch: str, what: str) -> None:
        """`nft -f -`: the whole batch is one transaction, applied entirely or not at all."""
        self._apply(["-f", "-"], batch, what)

    def apply_json(self, batch: dict[str, Any], what: str) -> None:
        """`nft -j -f -`, for names that nft's text syntax cannot quote."""
        self._apply(["-j", "-f", "-"], json.dumps(batch), what)

    def transact(self, read: tuple[str, ...], write: Callable[[Ruleset], None]) -> None:
        """Under the lock: read `read`, let `write` apply its batch; on failure read and write
        once more (a rule handle may have vanished under a writer that ignores our lock)."""
        with self.lock():
            try:
                write(Ruleset.parse(self.listing(*read)))
            except IOFailure:
                write(Ruleset.parse(self.listing(*read)))

    def _apply(self, args: list[str], batch: str, what: str) -> None:
        proc = self._run(args, batch)
        if proc.returncode != 0:
            raise IOFailure(f"nft failed {what}", f"{proc.stderr.strip()}\nbatch:\n{batch}")

    def _run(self, args: list[str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.executable, *args],
            input=stdin,
            capture_output=True,
            text=True,
            errors="surrogateescape",
            env=_ENV,
            check=False,
        )

    def lock(self) -> contextlib.AbstractContextManager[None]:
        return exclusive(os.path.join(self.lock_dir, "nftables.lock"))
