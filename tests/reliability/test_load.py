"""Load: `width` concurrent ADDs into `width` namespaces on one network, then `width` concurrent
DELs, for `rounds` rounds, one-shot, through the agent, and (full profile) mixed — half of the
callers through the agent, half one-shot, on the same store at the same time.

A code 11 ("try again later") is retried as a runtime would (DEL, then ADD again) and counted;
any other error fails. After each ADD phase: no duplicate address, every address configured in
its namespace, the store, the host veths and the NAT chains agree. After each DEL phase:
nothing of the network is left.
"""

from __future__ import annotations

import ipaddress
import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.reliability.figures import Figures
from tests.reliability.lab import network_config
from tests.reliability.profile import AGENT, MIXED, Profile, current
from tests.support.agent import ONE_SHOT_ENV, Agent
from tests.support.netns import Namespace, NamespaceFactory
from tests.support.plugin import (
    LAUNCHER,
    Outcome,
    Plugin,
    chain_name,
    installed_plugin,
    reservations,
)
from tests.support.state import bridge_ports, leftovers

NETWORK, BRIDGE, SUBNET, GATEWAY = "loadnet", "cbrload", "10.125.0.0/24", "10.125.0.1"
RETRIES = 10


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "mode" in metafunc.fixturenames:
        metafunc.parametrize("mode", current().load_modes)


@dataclass
class Tally:
    """Counts from many threads at once."""

    operations: int = 0
    retried: int = 0
    errors: list[str] = field(default_factory=list)
    _guard: threading.Lock = field(default_factory=threading.Lock)

    def count(self, *, retried: bool = False, error: str = "") -> None:
        with self._guard:
            self.operations += int(not retried and not error)
            self.retried += int(retried)
            if error:
                self.errors.append(error)


@dataclass
class Load:
    plugin: Plugin
    conf: dict[str, Any]
    spaces: list[Namespace]
    agent: Agent | None
    mode: str
    tally: Tally = field(default_factory=Tally)

    def env(self, index: int) -> dict[str, str]:
        through_agent = self.mode == AGENT or (self.mode == MIXED and index % 2 == 0)
        if through_agent and self.agent is not None:
            return self.agent.env()
        return dict(ONE_SHOT_ENV)

    def call(self, command: str, index: int, container_id: str) -> Outcome:
        # A long timeout: under load a one-shot run waits for CPU and locks.
        return self.plugin.run(
            command,
            self.conf,
            container_id=container_id,
            netns=self.spaces[index].path,
            extra_env=self.env(index),
            timeout=600,
        )

    def one(self, command: str, index: int, container_id: str) -> dict[str, Any] | None:
        """One attachment's ADD or DEL, retried on code 11 as a runtime does."""
        for attempt in range(RETRIES):
            self.tally.count()  # one operation per attempt
            outcome = self.call(command, index, container_id)
            if outcome.code == 0:
                return outcome.json if command == "ADD" else None
            if _code(outcome) != 11:
                self.tally.count(error=f"{command} {container_id}: {outcome.stdout[:300]}")
                return None
            self.tally.count(retried=True)
            if command == "ADD":  # a failed ADD is followed by DEL before the retry
                self.call("DEL", index, container_id)
            time.sleep(0.1 * (attempt + 1))
        self.tally.count(error=f"{command} {container_id}: still code 11 after {RETRIES}")
        return None

    def all(self, command: str, ids: list[str]) -> list[dict[str, Any] | None]:
        with ThreadPoolExecutor(max_workers=len(ids)) as pool:
            return list(pool.map(lambda i: self.one(command, i, ids[i]), range(len(ids))))


def _code(outcome: Outcome) -> int | None:
    try:
        body = json.loads(outcome.stdout)
    except ValueError:
        return None
    return body.get("code") if isinstance(body, dict) else None


@pytest.fixture
def load(
    mode: str, installed: Path, namespaces: NamespaceFactory, tmp_path: Path, profile: Profile
) -> Iterator[Load]:
    host = namespaces.host()
    conf = network_config(NETWORK, BRIDGE, SUBNET, tmp_path / "data")
    spaces = [namespaces.new(f"l{i}") for i in range(profile.load_width)]
    agent = Agent(host, installed / LAUNCHER, tmp_path).start() if mode != "one-shot" else None
    try:
        yield Load(installed_plugin(installed, host), conf, spaces, agent, mode)
    finally:
        if agent is not None:
            agent.stop()


@pytest.mark.timeout(1800)
def test_concurrent_adds_then_dels(load: Load, profile: Profile, figures: Figures) -> None:
    try:
        rounds(load, profile, figures)
    finally:
        figures.add(
            "load",
            operations=load.tally.operations,
            retried_11=load.tally.retried,
            other_errors=len(load.tally.errors),
        )
    if load.agent is not None:
        assert load.agent.alive()


def rounds(load: Load, profile: Profile, figures: Figures) -> None:
    host, spaces, data_dir = load.plugin.host, load.spaces, Path(load.conf["ipam"]["dataDir"])
    width = len(spaces)
    for round_no in range(profile.load_rounds):
        ids = [f"r{round_no}-c{i}" for i in range(width)]

        results = load.all("ADD", ids)
        assert load.tally.errors == [], load.tally.errors
        addresses = [r["ips"][0]["address"] for r in results if r is not None]
        duplicates = len(addresses) - len(set(addresses))
        unconfigured = [
            (ns.name, address)
            for ns, address in zip(spaces, addresses, strict=True)
            if ns.addresses("eth0") != [address]
        ]
        figures.add("load", duplicates=duplicates, unconfigured=len(unconfigured))
        assert duplicates == 0, sorted(addresses)
        assert unconfigured == [], unconfigured
        subnet = ipaddress.ip_network(SUBNET)
        assert all(ipaddress.ip_interface(a) in subnet for a in addresses)
        assert f"{GATEWAY}/24" not in addresses
        assert reservations(data_dir, NETWORK) == {
            a.split("/")[0]: f"{cid}\r\neth0".encode()
            for a, cid in zip(addresses, ids, strict=True)
        }
        assert len(bridge_ports(host, BRIDGE)) == width
        chains = {r.split()[1] for r in host.nat_rules() if r.startswith("-N ")}
        assert chains == {chain_name(NETWORK, cid) for cid in ids}
        assert host.addresses(BRIDGE) == [f"{GATEWAY}/24"]
        assert spaces[0].ping(GATEWAY)
        assert spaces[0].ping(addresses[-1].split("/")[0])

        load.all("DEL", ids)
        assert load.tally.errors == [], load.tally.errors
        left = leftovers(host, spaces, data_dir, NETWORK)
        figures.add("load", leftovers=len(left))
        assert left == [], left
