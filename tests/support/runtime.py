"""A runtime driving the installed plugin: `cni-bridge-py cnitool` (libcni's conventions:
network configs from a directory, the container ID from the netns path, the result cache),
run inside a test's host namespace."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from cni_bridge_py.runner.cnitool import container_id_for
from tests.support.netns import Namespace
from tests.support.plugin import MINIMAL_PATH, Outcome


@dataclass
class Runtime:
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
