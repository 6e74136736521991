"""A private mount namespace in which fixed paths that runtimes use (/etc/cni/net.d,
/opt/cni/bin, /usr/lib/cni, /var/lib/cni, /run/containerd, ...) are the test's own directories.

The namespace is held open by a `sleep` process this module starts (`unshare --mount
--propagation slave`), and commands enter it with `nsenter --mount=/proc/<pid>/ns/mnt`
(which execs, so a Popen of it is the command itself). Nothing mounted here propagates back,
so the host's files are never read by mistake nor written; the host's later mounts do
propagate in (a netns made with `ip netns add` after the namespace must be visible).

A path that does not exist on the host (say /opt/cni/bin on a machine without /opt/cni) needs
a mount point, and making one would write the host. Instead, the nearest existing ancestor is
mirrored: inside the namespace only, it is bind-mounted (recursively) to a scratch directory,
covered with a tmpfs, and every entry of the original is symlinked back into the tmpfs; the
missing directories are then created on the tmpfs. The rest of that ancestor stays visible.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from tests.support.netns import sh

MIRROR_SCRIPT = r"""
set -eu
original=$1 mirror=$2
mount --rbind "$original" "$mirror"
mount -t tmpfs -o mode=0755 cbpt-shadow "$original"
for entry in "$mirror"/* "$mirror"/.[!.]* "$mirror"/..?*; do
    if [ -e "$entry" ] || [ -L "$entry" ]; then ln -s "$entry" "$original/"; fi
done
"""


PR_SET_PDEATHSIG = 1


def dies_with_parent(sig: signal.Signals) -> Callable[[], None]:
    """A Popen preexec_fn: the child gets `sig` when the test process dies, so a killed test
    run leaves no holder or daemon behind (the setting survives the exec)."""

    def preexec() -> None:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0)

    return preexec


class MountNamespace:
    def __init__(self, scratch: Path, *, network: bool = False) -> None:
        self._scratch = scratch
        self._network = network
        self._scratch.mkdir(parents=True, exist_ok=True)
        self._covered: list[Path] = []  # ancestors replaced by a tmpfs (ours to mkdir in)
        self._dirs = 0
        # unshare's own complaint, if it has one, is what a failure must show.
        self._errors = scratch / "holder.stderr"
        with self._errors.open("wb") as errors:
            self._holder = subprocess.Popen(
                [
                    "unshare",
                    "--mount",
                    "--propagation",
                    "slave",
                    *(["--net"] if network else []),
                    "sleep",
                    "infinity",
                ],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=errors,
                preexec_fn=dies_with_parent(signal.SIGKILL),  # noqa: PLW1509 (no threads here)
            )
        own = os.readlink("/proc/self/ns/mnt")
        deadline = time.monotonic() + 10
        # Not in its own namespace yet: still the one it was forked in. A holder that has
        # already exited has no namespace to read at all, which must not pass for a new one.
        while (found := self._ns_id()) == own or not found:
            if self._holder.poll() is not None or time.monotonic() > deadline:
                self.close()
                why = self._why()
                raise AssertionError(f"unshare --mount did not start a mount namespace{why}")
            time.sleep(0.01)

    @property
    def pid(self) -> int:
        return self._holder.pid

    def _ns_id(self) -> str:
        try:
            return os.readlink(f"/proc/{self.pid}/ns/mnt")
        except OSError:
            return ""

    def _alive(self) -> None:
        if self._holder.poll() is not None:
            raise AssertionError(f"the mount namespace holder has exited{self._why()}")

    def _why(self) -> str:
        """How the holder ended, and what unshare printed: ": exit 1, unshare: ..."."""
        code = self._holder.poll()
        if code is None:
            return " (it is still running)"
        ended = f"killed by signal {-code}" if code < 0 else f"exit {code}"
        try:
            said = self._errors.read_text(errors="replace").strip()
        except OSError:
            said = ""
        return f": {ended}" + (f", {said}" if said else "")

    def argv(self, *command: str) -> list[str]:
        """The command line that runs `command` inside this namespace."""
        self._alive()
        net = [f"--net=/proc/{self.pid}/ns/net"] if self._network else []
        return ["nsenter", f"--mount=/proc/{self.pid}/ns/mnt", *net, "--", *command]

    def exec(self, *command: str) -> str:
        return sh(*self.argv(*command))

    def exists(self, path: Path) -> bool:
        """Whether `path` exists as seen from inside (through /proc/<pid>/root)."""
        self._alive()
        return os.path.lexists(f"/proc/{self.pid}/root{path}")

    def shadow(self, target: str, source: Path) -> None:
        """Make `target` show `source` inside the namespace (host paths stay as they are)."""
        path = Path(target)
        if not self.exists(path):
            ancestor = next(p for p in path.parents if self.exists(p))
            if not any(ancestor.is_relative_to(c) for c in self._covered):
                self._mirror(ancestor)
            self.exec("mkdir", "-p", str(path))
        self.exec("mount", "--bind", str(source), str(path))

    def hide(self, target: str) -> None:
        """Make `target` an empty directory inside the namespace (if it exists at all)."""
        if self.exists(Path(target)):
            empty = self._scratch_dir("empty")
            self.exec("mount", "--bind", "-o", "ro", str(empty), target)

    def _mirror(self, ancestor: Path) -> None:
        mirror = self._scratch_dir("mirror")
        self.exec("sh", "-c", MIRROR_SCRIPT, "mirror", str(ancestor), str(mirror))
        self._covered.append(ancestor)

    def _scratch_dir(self, tag: str) -> Path:
        self._dirs += 1
        path = self._scratch / f"{tag}-{self._dirs}"
        path.mkdir()
        return path

    def close(self) -> None:
        """End the holder (ours); the namespace and its mounts go with its last process."""
        if self._holder.poll() is None:
            self._holder.kill()
        self._holder.wait(timeout=10)
