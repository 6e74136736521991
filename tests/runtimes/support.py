"""Shared pieces of the runtime suites: the skip-or-fail rule, the busybox root filesystem,
command running with a readable failure, and the start-time measurements."""

from __future__ import annotations

import os
import shlex
import shutil
import statistics
import struct
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

import pytest

from tests.support.plugin import REFERENCE_DIR

REPO = Path(__file__).resolve().parents[2]
BUSYBOX = Path("/bin/busybox")


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def unavailable(reason: str) -> NoReturn:
    """Skip with the reason, except in CI, where every runtime must be installed and run."""
    if in_ci():
        pytest.fail(f"{reason} (CI is set: the runtime suites must run)", pytrace=False)
    pytest.skip(reason)


def require_tools(runtime: str, tools: Mapping[str, str]) -> None:
    """tools: executable (name on PATH or absolute path) -> Debian package providing it."""
    if os.geteuid() != 0:
        unavailable(f"{runtime} tests need root (bridges, namespaces, iptables, mounts)")
    missing = sorted({package for tool, package in tools.items() if not _executable(tool)})
    if missing:
        unavailable(
            f"{runtime} is not installed: apt-get install {' '.join(missing)} (make deps does)"
        )


def _executable(tool: str) -> bool:
    if tool.startswith("/"):
        return os.access(tool, os.X_OK)
    return shutil.which(tool) is not None


def run(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    timeout: float = 120,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        list(argv),
        env=None if env is None else dict(env),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{shlex.join(argv)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
        )
    return proc


def is_static_elf(path: Path) -> bool:
    """An ELF executable without a PT_INTERP program header (no dynamic loader needed)."""
    with path.open("rb") as f:
        header = f.read(64)
        if header[:4] != b"\x7fELF" or header[4] != 2:  # 64-bit only: what Debian amd64 ships
            return False
        (phoff,) = struct.unpack_from("<Q", header, 32)
        phentsize, phnum = struct.unpack_from("<HH", header, 54)
        f.seek(phoff)
        table = f.read(phentsize * phnum)
    types = [struct.unpack_from("<I", table, i * phentsize)[0] for i in range(phnum)]
    return 3 not in types  # PT_INTERP


def busybox_rootfs(root: Path) -> Path:
    """A root filesystem of busybox-static and its applets (sh, ip, ping, sleep, ...)."""
    if not BUSYBOX.is_file() or not is_static_elf(BUSYBOX):
        unavailable(f"{BUSYBOX} is not a static busybox: apt-get install busybox-static")
    bin_dir = root / "bin"
    bin_dir.mkdir(parents=True)
    shutil.copy2(BUSYBOX, bin_dir / "busybox")
    applets = subprocess.run(
        [str(BUSYBOX), "--list"], capture_output=True, text=True, check=True
    ).stdout.split()
    for applet in applets:
        if applet != "busybox":
            (bin_dir / applet).symlink_to("busybox")
    for directory in ("proc", "sys", "dev", "etc", "tmp", "root"):
        (root / directory).mkdir()
    (root / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (root / "etc" / "group").write_text("root:x:0:\n")
    return root


def reference_bin_dir(directory: Path, plugins: Sequence[str] = ("bridge", "host-local")) -> Path:
    """Copies of the reference plugins (the runtime's view of /usr/lib/cni may be hidden)."""
    missing = [p for p in plugins if not (REFERENCE_DIR / p).is_file()]
    if missing:
        unavailable(
            f"reference plugins {missing} missing: apt-get install containernetworking-plugins"
        )
    directory.mkdir(parents=True, exist_ok=True)
    for plugin in plugins:
        shutil.copy2(REFERENCE_DIR / plugin, directory / plugin)
    return directory


# --- start times -------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    runtime: str
    what: str
    seconds: tuple[float, ...]

    def line(self) -> str:
        s = self.seconds
        return (
            f"{self.runtime:<11} {self.what:<52} median {statistics.median(s):6.3f} s"
            f"  (min {min(s):.3f}, max {max(s):.3f}, n={len(s)})"
        )


@dataclass
class Timings:
    samples: list[Sample] = field(default_factory=list)

    def measure(
        self, runtime: str, what: str, action: Callable[[], object], repeat: int = 3
    ) -> Sample:
        seconds = []
        for _ in range(repeat):
            start = time.perf_counter()
            action()
            seconds.append(time.perf_counter() - start)
        sample = Sample(runtime, what, tuple(seconds))
        self.samples.append(sample)
        print(sample.line())
        return sample

    def report(self) -> list[str]:
        return [s.line() for s in self.samples]
