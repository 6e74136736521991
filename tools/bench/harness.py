"""Processes and namespaces for the benchmark, and the kernel inspection that verifies runs.

Everything happens inside namespaces made here. A side's "host" is a named namespace (plugins
run as `ip netns exec <host> <exe>`, the way the integration tests run them); its container
namespaces are made ahead of time and then held open by this process only, passed to the
plugins as /proc/<pid>/fd/<n>. So no bind mount per container: each mount would make every
`ip netns exec` slower (it copies the mount table: ~2 ms more with 750 of them, measured), and
the containers vanish with this process even if it is killed.

A plugin call is timed from just before its spawn to its reaping by os.wait4, which also gives
the rusage of that one process (ru_maxrss: its peak RSS, or that of a child it waited for if
larger; `ip netns exec` execs the plugin, so it is the plugin's).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import IO, Any, NoReturn

PREFIX = "cbpb"  # every namespace, bridge and temp dir the benchmark makes starts with this
MINIMAL_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"  # what a runtime gives a plugin
NETNS_DIR = Path("/var/run/netns")


class BenchError(Exception):
    """The benchmark cannot go on (a tool is missing, a plugin fails its warm-up)."""


# --- signals: ^C, SIGTERM and SIGHUP unwind through every finally, but never cut a cleanup short.
_held: list[int] = []  # signals that arrived during a cleanup, acted on after it
_cleanups = 0


def _on_signal(signum: int, _frame: FrameType | None) -> None:
    if _cleanups:
        _held.append(signum)
        return
    _interrupt(signum)


def _interrupt(signum: int) -> NoReturn:
    if signum == signal.SIGINT:
        raise KeyboardInterrupt
    raise SystemExit(128 + signum)


def handle_signals() -> None:
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _on_signal)


@contextlib.contextmanager
def cleanup() -> Iterator[None]:
    """A block no signal interrupts (held, the ones that came are acted on after it): a
    half-done cleanup would leave namespaces, containers or agents behind. A handler is
    used, not SIG_IGN or a blocked mask, which the commands the cleanup runs would inherit."""
    global _cleanups  # noqa: PLW0603 (one process-wide state, like the handlers themselves)
    _cleanups += 1
    try:
        yield
    finally:
        _cleanups -= 1
        if not _cleanups and _held:
            signum = _held[0]
            _held.clear()
            _interrupt(signum)


def tool(name: str) -> str:
    found = shutil.which(name, path=MINIMAL_PATH)
    if found is None:
        raise BenchError(f"{name} not found on {MINIMAL_PATH}: run `make deps`")
    return found


def sh(*args: str, check: bool = True, stdin: str | None = None, timeout: float = 120) -> str:
    proc = subprocess.run(
        args, input=stdin, capture_output=True, text=True, check=False, timeout=timeout
    )
    if check and proc.returncode != 0:
        raise BenchError(f"{' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc.stdout


@dataclass(frozen=True)
class CallResult:
    code: int
    stdout: str
    stderr: str
    seconds: float
    maxrss_kb: int

    def json(self) -> dict[str, Any]:
        try:
            value = json.loads(self.stdout)
        except ValueError:
            return {}
        return value if isinstance(value, dict) else {}

    def describe(self) -> str:
        body = (self.stdout.strip() or self.stderr.strip()).splitlines()
        return f"exit {self.code}: {body[-1][:200] if body else '(no output)'}"


class Running:
    """One plugin process: files for its stdin/stdout/stderr are made before start() so that
    timing covers only the spawn, the run and the reaping (no pipe can fill up either)."""

    def __init__(self, argv: list[str], env: dict[str, str], stdin: bytes) -> None:
        self.argv, self.env = argv, env
        # Closed by wait()/kill(): they outlive this method, so no `with`.
        self._files: list[IO[bytes]] = [tempfile.TemporaryFile() for _ in range(3)]  # noqa: SIM115
        self._files[0].write(stdin)
        self._files[0].seek(0)
        self.proc: subprocess.Popen[bytes] | None = None
        self.started = 0.0
        self.result: CallResult | None = None

    def start(self) -> Running:
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(
            self.argv,
            stdin=self._files[0],
            stdout=self._files[1],
            stderr=self._files[2],
            env=self.env,
        )
        return self

    def wait(self) -> CallResult:
        if self.result is not None:
            return self.result
        assert self.proc is not None, "start() first"
        _pid, status, usage = os.wait4(self.proc.pid, 0)
        seconds = time.perf_counter() - self.started
        self.proc.returncode = os.waitstatus_to_exitcode(status)
        out, err = (self._read(f) for f in self._files[1:])
        self.close()
        self.result = CallResult(self.proc.returncode, out, err, seconds, usage.ru_maxrss)
        return self.result

    def kill(self) -> None:
        """Cleanup on failure: end this process (ours, by its Popen handle) and reap it."""
        if self.proc is not None and self.result is None and self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            # Popen.kill() polls first and may have reaped it already (no child left to wait
            # for), e.g. when a signal interrupted wait() just as the process ended.
            with contextlib.suppress(ChildProcessError):
                self.wait()
        self.close()

    def close(self) -> None:
        for f in self._files:
            f.close()

    @staticmethod
    def _read(f: IO[bytes]) -> str:
        f.seek(0)
        return f.read().decode(errors="replace")


class NetnsPool:
    """Container namespaces made ahead of time (not timed) and held by file descriptor."""

    def __init__(self, names: list[str]) -> None:
        self.fds: list[int] = []
        ip = tool("ip")
        try:
            sh(ip, "-batch", "-", stdin="".join(f"netns add {n}\n" for n in names))
            for name in names:
                self.fds.append(os.open(NETNS_DIR / name, os.O_RDONLY | os.O_CLOEXEC))
        except BaseException:
            self.close()
            raise
        finally:
            # The names go at once: the open descriptors keep the namespaces alive.
            sh(ip, "-force", "-batch", "-", stdin="".join(f"netns del {n}\n" for n in names),
               check=False)  # fmt: skip
        self.paths = [f"/proc/{os.getpid()}/fd/{fd}" for fd in self.fds]

    def close(self) -> None:
        for fd in self.fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self.fds.clear()


class Workspace:
    """Owns everything the benchmark makes: a temp dir, host namespaces, container pools, agent
    processes and plugin processes. close() removes all of it, also after a failure or ^C."""

    def __init__(self) -> None:
        self.tag = f"{PREFIX}{os.getpid() % 10000:04d}{secrets.token_hex(2)}"
        self.tmp = Path(tempfile.mkdtemp(prefix=f"{PREFIX}-"))
        self.hosts: list[str] = []
        self.pools: list[NetnsPool] = []
        self.running: set[Running] = set()
        # Called first at close(), last registered first: agents, runtime namespaces.
        self.stoppers: list[Callable[[], object]] = []

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def host_namespace(self, side: str) -> str:
        name = f"{self.tag}-{side}"
        self.hosts.append(name)
        sh(tool("ip"), "netns", "add", name)
        sh(tool("ip"), "-n", name, "link", "set", "lo", "up")
        return name

    def pool(self, side: str, count: int) -> NetnsPool:
        pool = NetnsPool([f"{self.tag}-{side}-c{i}" for i in range(count)])
        self.pools.append(pool)
        return pool

    def drop_host(self, name: str) -> None:
        """A host namespace removed before close() (everything in it goes with it)."""
        with cleanup():
            sh(tool("ip"), "netns", "del", name, check=False)
            if name in self.hosts and not (NETNS_DIR / name).exists():  # else: at close()
                self.hosts.remove(name)

    def drop_pool(self, pool: NetnsPool) -> None:
        """A pool's namespaces released before close()."""
        with cleanup():
            pool.close()
            if pool in self.pools:
                self.pools.remove(pool)

    def prepare(self, argv: list[str], env: dict[str, str], stdin: bytes) -> Running:
        run = Running(argv, env, stdin)
        self.running.add(run)
        return run

    def finished(self, run: Running) -> CallResult:
        result = run.wait()
        self.running.discard(run)
        return result

    def owned_namespaces(self) -> list[str]:
        """Named namespaces of this run still present (none after close())."""
        if not NETNS_DIR.is_dir():
            return []
        return sorted(p.name for p in NETNS_DIR.iterdir() if p.name.startswith(self.tag))

    def close(self) -> None:
        with cleanup():
            for run in list(self.running):
                with contextlib.suppress(Exception):
                    run.kill()
            self.running.clear()
            for stop in reversed(self.stoppers):
                with contextlib.suppress(Exception):
                    stop()
            self.stoppers.clear()
            for pool in self.pools:
                pool.close()
            self.pools.clear()
            for host in reversed(self.hosts):
                sh(tool("ip"), "netns", "del", host, check=False)
            self.hosts.clear()
            shutil.rmtree(self.tmp, ignore_errors=True)


# --- inspection (untimed): from outside, with iproute2, iptables and nft ----------------------


def host_veths(host: str) -> list[str]:
    out = sh(tool("ip"), "-n", host, "-j", "link", "show", "type", "veth")
    return sorted(entry["ifname"] for entry in json.loads(out or "[]"))


def nat_leftovers(host: str) -> list[str]:
    """Every NAT chain or rule of a CNI plugin in the host namespace (iptables, either variant,
    and native nftables)."""
    ip = tool("ip")
    lines = sh(ip, "netns", "exec", host, "iptables-save", "-t", "nat", check=False).splitlines()
    found = [line for line in lines if "CNI-" in line]
    nft = shutil.which("nft", path=MINIMAL_PATH)
    if nft is not None:
        ruleset = sh(ip, "netns", "exec", host, nft, "list", "ruleset", check=False)
        found += [
            f"nft: {line.strip()}"
            for line in ruleset.splitlines()
            if "cni" in line.lower() and "CNI-" not in line
        ]
    return found


def reservations(data_dir: Path, network: str) -> list[str]:
    directory = data_dir / network
    if not directory.is_dir():
        return []
    return sorted(
        p.name
        for p in directory.iterdir()
        if p.name != "lock" and not p.name.startswith("last_reserved_ip.")
    )


def container_addresses(netns_path: str, ifname: str) -> list[str]:
    out = sh(
        tool("nsenter"), f"--net={netns_path}", tool("ip"), "-j", "addr", "show", "dev", ifname,
        check=False,
    )  # fmt: skip
    found = []
    for entry in json.loads(out or "[]"):
        for info in entry.get("addr_info", []):
            if info.get("scope") != "link":
                found.append(f"{info['local']}/{info['prefixlen']}")
    return found


def root_links() -> list[str]:
    """The real host's links (names and kinds): compared before and after, never changed."""
    out = sh(tool("ip"), "-d", "-j", "link", "show")
    return sorted(
        f"{e['ifname']}:{e.get('linkinfo', {}).get('info_kind', '')}" for e in json.loads(out)
    )
