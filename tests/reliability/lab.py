"""A small world for the crash, load and restart tests: a host namespace with the plugin, a
network config installed for the runtime, an optional agent, and helpers to add, delete and
list what the network still holds."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.reliability.profile import AGENT, NFTABLES
from tests.support.agent import ONE_SHOT_ENV, Agent
from tests.support.netns import Namespace, NamespaceFactory
from tests.support.plugin import LAUNCHER, Outcome, Plugin, installed_plugin
from tests.support.runtime import Runtime
from tests.support.state import leftovers

VALID = "cni.dev/valid-attachments"


def network_config(
    name: str, bridge: str, subnet: str, data_dir: Path, backend: str = "iptables"
) -> dict[str, Any]:
    """The seed network's shape: gateway, default route and masquerade; with the nftables
    backend also macspoofchk, so both kinds of nft rules are made."""
    conf: dict[str, Any] = {
        "cniVersion": "1.1.0",
        "name": name,
        "type": "cni-bridge-py",
        "bridge": bridge,
        "isGateway": True,
        "isDefaultGateway": True,
        "ipMasq": True,
        "ipMasqBackend": backend,
        "ipam": {"type": "host-local", "subnet": subnet, "dataDir": str(data_dir)},
    }
    if backend == NFTABLES:
        conf["macspoofchk"] = True
    return conf


@dataclass
class Lab:
    namespaces: NamespaceFactory
    host: Namespace
    bin_dir: Path
    workdir: Path
    conf: dict[str, Any]
    mode: str
    agent: Agent | None = None
    runtime: Runtime = field(init=False)

    def __post_init__(self) -> None:
        conf_dir = self.workdir / "net.d"
        conf_dir.mkdir(exist_ok=True)
        conflist = {
            "cniVersion": self.conf["cniVersion"],
            "name": self.network,
            "plugins": [{k: v for k, v in self.conf.items() if k not in ("cniVersion", "name")}],
        }
        (conf_dir / f"{self.network}.conflist").write_text(json.dumps(conflist))
        self.runtime = Runtime(
            self.launcher, self.host, conf_dir, self.workdir / "cache", str(self.bin_dir)
        )
        if self.mode == AGENT:
            self.agent = Agent(self.host, self.launcher, self.workdir).start()
        self.runtime.env = self.env()

    @property
    def launcher(self) -> Path:
        return self.bin_dir / LAUNCHER

    @property
    def network(self) -> str:
        return str(self.conf["name"])

    @property
    def data_dir(self) -> Path:
        return Path(self.conf["ipam"]["dataDir"])

    @property
    def plugin(self) -> Plugin:
        return installed_plugin(self.bin_dir, self.host)

    def env(self) -> dict[str, str]:
        return self.agent.env() if self.agent is not None else dict(ONE_SHOT_ENV)

    def gc(self, valid: list[tuple[str, str]]) -> tuple[Outcome, list[str]]:
        """The plugin's GC with the runtime's list; returns what it says it removed."""
        body = {**self.conf, VALID: [{"containerID": c, "ifname": i} for c, i in valid]}
        outcome = self.plugin.run("GC", body, extra_env=self.env())
        removed = [ln for ln in outcome.stderr.splitlines() if ln.startswith("gc ")]
        return outcome, removed

    def leftovers(
        self, containers: list[Namespace], keep: tuple[str, ...] = (), *, cache: bool = True
    ) -> list[str]:
        """What the network holds; `cache=False` leaves the runtime's own cache out (a
        runtime that lost its containers cleans its cache itself, the plugin cannot)."""
        return leftovers(
            self.host,
            containers,
            self.data_dir,
            self.network,
            cache_entries=self.runtime.cache_entries(self.network) if cache else (),
            keep=keep,
        )

    def stop(self) -> None:
        if self.agent is not None:
            self.agent.stop()


@contextmanager
def lab_in(
    namespaces: NamespaceFactory, bin_dir: Path, workdir: Path, conf: dict[str, Any], mode: str
) -> Iterator[Lab]:
    """A Lab on a fresh host namespace; its agent is stopped on the way out (the namespaces
    are the fixture's to delete)."""
    lab = Lab(namespaces, namespaces.host(), bin_dir, workdir, conf, mode)
    try:
        yield lab
    finally:
        lab.stop()


def wait_for(predicate: Any, timeout: float = 10, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)
