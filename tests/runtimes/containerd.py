"""A containerd of the test's own (Debian's containerd 1.6 + runc) and `ctr` lanes.

The daemon gets its own config, root, state dir, socket and opt dir under a temporary
directory, the CRI plugin off (or on, with the caller's CRI section: tests/runtimes/cri), and
runs in a private mount namespace where /run/containerd (hard-wired for shim sockets and runc's
state) is a test directory too: its own, or one the caller gives (a node's). Its Popen handle is
kept: stopping it never looks a process up by name.

`ctr run --cni` reads only /etc/cni/net.d (the first file by name) and /opt/cni/bin (then
/usr/lib/cni), with no flag to change that. A lane is a mount namespace where those are the
test's directories and /usr/lib/cni is empty, so no reference plugin is used by mistake.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from tests.runtimes.hostnet import HostNetwork, remove_cgroups, unique
from tests.runtimes.mountns import MountNamespace, dies_with_parent
from tests.runtimes.support import run

CONFIG = """\
version = 2
root = "{root}"
state = "{state}"
disabled_plugins = [{disabled}]

[grpc]
  address = "{socket}"

[plugins."io.containerd.internal.v1.opt"]
  path = "{opt}"
"""
CRI_PLUGIN = "io.containerd.grpc.v1.cri"


class InNamespace(Protocol):
    """Where a `ctr` runs: a CtrLane, or a seed host with /run/containerd shadowed."""

    @property
    def ns(self) -> MountNamespace: ...


@dataclass
class CtrLane:
    """What one `ctr` sees: its conf dir, bin dir and libcni cache, in its mount namespace."""

    ns: MountNamespace
    network: HostNetwork
    conf_dir: Path
    bin_dir: Path
    cache_dir: Path

    @classmethod
    def make(
        cls, scratch: Path, network: HostNetwork, bin_dir: Path, plugin_type: str, run_dir: Path
    ) -> CtrLane:
        conf_dir, cache_dir = scratch / "net.d", scratch / "cache"
        network.write_conflist(conf_dir, plugin_type)
        cache_dir.mkdir()
        ns = MountNamespace(scratch / "mnt")
        try:
            ns.shadow("/run/containerd", run_dir)  # the daemon's: ctr's default fifo dir
            ns.shadow("/etc/cni/net.d", conf_dir)
            ns.shadow("/opt/cni/bin", bin_dir)
            ns.hide("/usr/lib/cni")
            ns.shadow("/var/lib/cni", cache_dir)
        except BaseException:
            ns.close()
            raise
        return cls(ns, network, conf_dir, bin_dir, cache_dir)

    def close(self) -> None:
        self.ns.close()


class Containerd:
    def __init__(
        self,
        scratch: Path,
        *,
        cri: str | None = None,
        ns: MountNamespace | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        """cri: the CRI plugin's config section (the plugin is disabled without one); ns: a
        mount namespace to run in, the caller's to close (else one of its own); env: added to
        the daemon's environment, which libcni passes on to every plugin it runs."""
        self.scratch = scratch
        self.socket = scratch / "containerd.sock"
        self.run_dir = scratch / "run-containerd"
        # ctr's namespace, also the parent cgroup of our containers (/sys/fs/cgroup/*/<it>).
        self.namespace = unique("ctrd")
        for directory in ("root", "state", "opt", "run-containerd"):
            (scratch / directory).mkdir(parents=True)
        self.config = scratch / "config.toml"
        config = CONFIG.format(
            root=scratch / "root",
            state=scratch / "state",
            socket=self.socket,
            opt=scratch / "opt",
            disabled="" if cri is not None else f'"{CRI_PLUGIN}"',
        )
        self.config.write_text(config + ("\n" + cri if cri is not None else ""))
        self.env = {**os.environ, **(env or {})}
        self.log = scratch / "containerd.log"
        self._own_ns = ns is None
        self.ns = ns if ns is not None else MountNamespace(scratch / "mnt")
        self.proc: subprocess.Popen[bytes] | None = None
        try:
            self.ns.shadow("/run/containerd", self.run_dir)
            self.start()
        except BaseException:
            self.stop()
            raise

    def start(self) -> None:
        """Start the daemon (again: its containers, shims and state are still there)."""
        assert self.proc is None or self.proc.poll() is not None, "containerd is running"
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                self.ns.argv("containerd", "--config", str(self.config)),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                preexec_fn=dies_with_parent(signal.SIGTERM),  # noqa: PLW1509 (no threads here)
            )
        self._wait_ready(self.proc)

    def stop_daemon(self) -> None:
        """SIGTERM to our daemon alone: its shims, and so its containers, keep running."""
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)

    def restart(self) -> None:
        self.stop_daemon()
        self.start()

    def _wait_ready(self, proc: subprocess.Popen[bytes]) -> None:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"containerd exited:\n{self.log.read_text()[-3000:]}")
            ready = self.socket.exists() and self.ctr(None, "version", check=False).returncode == 0
            if ready:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"containerd not ready:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.05)

    def ctr_argv(self, lane: InNamespace | None, *args: str) -> list[str]:
        base = ["ctr", "--address", str(self.socket), "--namespace", self.namespace, *args]
        return lane.ns.argv(*base) if lane is not None else base

    def ctr(
        self, lane: InNamespace | None, *args: str, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        return run(self.ctr_argv(lane, *args), check=check, timeout=timeout)

    def tasks(self) -> dict[str, int]:
        """Running tasks: container ID -> PID."""
        out = self.ctr(None, "task", "ls").stdout.splitlines()[1:]
        return {fields[0]: int(fields[1]) for fields in (line.split() for line in out) if fields}

    def remove_container(self, container: str) -> None:
        self.ctr(None, "task", "rm", "--force", container, check=False)
        self.ctr(None, "container", "rm", container, check=False)

    def remove_all_containers(self) -> None:
        listed = self.ctr(None, "container", "ls", "--quiet", check=False).stdout.split()
        for container in listed:
            self.remove_container(container)

    def stop(self) -> list[str]:
        """Remove every container of our namespace, stop our daemon, and report what remains
        (shims of our socket, our cgroups) after a last cleanup."""
        problems: list[str] = []
        if self.proc is not None and self.proc.poll() is None:
            self.remove_all_containers()
        self.stop_daemon()
        for pid in self._our_shims():
            # A shim our containerd started for a container that could not be removed.
            problems.append(f"killed leftover shim {pid}")
            os.kill(pid, signal.SIGKILL)
        if self._own_ns:
            self.ns.close()
        problems += remove_cgroups(self.namespace)
        return problems

    def _our_shims(self) -> list[int]:
        """Processes whose command line carries our daemon's unique socket path."""
        pids = []
        needle = str(self.socket).encode()
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if needle in cmdline and b"containerd-shim" in cmdline[0]:
                pids.append(int(entry))
        return pids
