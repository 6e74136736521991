"""Namespaces, the plugin, the resident agent and a runtime (the cnitool-compatible runner), for
the reliability suite. Built on tests/integration's helpers; namespaces are named cbpr* so they
are told apart from other suites' (cbpt*) that may run at the same time."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from cni_bridge_py.runner.cnitool import container_id_for
from tests.integration.netns import Namespace, NamespaceFactory, sh
from tests.integration.plugin import MINIMAL_PATH, Outcome, Plugin

PREFIX = "cbpr"
AGENT_ENV = "CNI_BRIDGE_PY_AGENT"
FAULT_ENV = "CNI_BRIDGE_PY_FAULT"
ONE_SHOT_ENV = {AGENT_ENV: "off"}


def ns_name(tag: str) -> str:
    return f"{PREFIX}{os.getpid() % 1000:03d}{secrets.token_hex(2)}-{tag}"


@dataclass
class Namespaces(NamespaceFactory):
    """Throwaway namespaces, deleted (only these) when the test or module ends."""

    def new(self, tag: str) -> Namespace:
        ns = Namespace(ns_name(tag))
        sh("ip", "netns", "add", ns.name)
        self.made.append(ns)
        return ns

    def host(self, tag: str = "host") -> Namespace:
        """A namespace that stands in for the machine: the plugin runs inside it."""
        ns = self.new(tag)
        ns.exec("ip", "link", "set", "lo", "up")
        return ns


class Agent:
    """The resident agent inside a host namespace. Only the process started here is ever
    signalled; `ip netns exec` execs the launcher, so its pid is the agent's."""

    def __init__(self, host: Namespace, launcher: Path, workdir: Path) -> None:
        self.host = host
        self.launcher = launcher
        self.workdir = workdir
        # A directory the agent creates itself (0700), as it would under /run.
        self.socket = workdir / "run" / "agent.sock"
        self.starts = 0
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def log(self) -> Path:
        return self.workdir / f"agent-{self.starts}.log"

    def env(self) -> dict[str, str]:
        return {AGENT_ENV: str(self.socket)}

    def host_exec(self) -> list[str]:
        return ["ip", "netns", "exec", self.host.name]

    def start(self) -> Agent:
        assert not self.alive(), "the agent is already running"
        self.starts += 1
        with self.log.open("wb") as sink:
            self.proc = subprocess.Popen(
                [*self.host_exec(), str(self.launcher), "agent", "--socket", str(self.socket)],
                stdout=sink,
                stderr=sink,
            )
        deadline = time.monotonic() + 20
        while b"listening" not in self.log.read_bytes():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"agent did not start: {self.log.read_text()}")
            time.sleep(0.02)
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait_exit(self, timeout: float = 10) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout=timeout)

    def served(self) -> list[str]:
        lines: list[str] = []
        for n in range(1, self.starts + 1):
            path = self.workdir / f"agent-{n}.log"
            lines += [ln for ln in path.read_text().splitlines() if "container=" in ln]
        return lines

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@dataclass
class Runtime:
    """A runtime driving the plugin: `cni-bridge-py cnitool` (libcni's conventions: container
    ID from the netns path, the result cache) with configs from `conf_dir`."""

    launcher: Path
    host: Namespace
    conf_dir: Path
    cache_dir: Path
    cni_path: str
    env: dict[str, str] = field(default_factory=dict)

    def run(
        self, verb: str, network: str, netns: Namespace, extra_env: dict[str, str] | None = None
    ) -> Outcome:
        env = {
            "PATH": MINIMAL_PATH,
            "NETCONFPATH": str(self.conf_dir),
            "CNI_PATH": self.cni_path,
            "CNI_CACHE_DIR": str(self.cache_dir),
            "CNI_IFNAME": "eth0",
            **self.env,
            **(extra_env or {}),
        }
        proc = subprocess.run(
            [*self.host_exec(), str(self.launcher), "cnitool", verb, network, netns.path],
            capture_output=True,
            env=env,
            check=False,
            timeout=120,
        )
        return Outcome(proc.returncode, proc.stdout.decode(), proc.stderr.decode())

    def host_exec(self) -> list[str]:
        return ["ip", "netns", "exec", self.host.name]

    @staticmethod
    def container_id(netns: Namespace) -> str:
        return container_id_for(netns.path)

    def cache_entries(self, network: str) -> list[str]:
        results = self.cache_dir / "results"
        if not results.is_dir():
            return []
        return sorted(p.name for p in results.iterdir() if p.name.startswith(f"{network}-"))


def plugin_in(host: Namespace, bin_dir: Path) -> Plugin:
    return Plugin(bin_dir / "cni-bridge-py", host, str(bin_dir))


__all__ = [
    "AGENT_ENV",
    "FAULT_ENV",
    "ONE_SHOT_ENV",
    "Agent",
    "Namespace",
    "Namespaces",
    "Outcome",
    "Plugin",
    "Runtime",
    "invoke",
    "plugin_in",
    "sh",
]


def invoke(
    plugin: Plugin,
    command: str,
    config: dict[str, object],
    *,
    container_id: str,
    netns: str,
    env: dict[str, str],
    timeout: float = 600,
) -> Outcome:
    """Plugin.run with a longer timeout: under load a one-shot run waits for CPU and locks."""
    full_env = {
        "PATH": MINIMAL_PATH,
        "CNI_COMMAND": command,
        "CNI_CONTAINERID": container_id,
        "CNI_NETNS": netns,
        "CNI_IFNAME": "eth0",
        "CNI_ARGS": "",
        "CNI_PATH": plugin.cni_path,
        **env,
    }
    proc = subprocess.run(
        ["ip", "netns", "exec", plugin.host.name, str(plugin.executable)],
        input=json.dumps(config).encode(),
        capture_output=True,
        env=full_env,
        check=False,
        timeout=timeout,
    )
    return Outcome(proc.returncode, proc.stdout.decode(), proc.stderr.decode())
