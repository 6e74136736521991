"""The cluster suite (issue 12): nodes in namespaces lease subnets from a real 3-member etcd
cluster and route between each other. One etcd cluster and underlay per session (each test
module's cluster has its own key prefix); the failure tests start their own etcd cluster."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.cluster.lab import Cluster, EtcdCluster, Underlay
from tests.support.netns import NamespaceFactory
from tests.support.preconditions import require_root

# Namespaces of this suite start with their own prefix (a leftover is recognisable).
PREFIX = "cbpc"


@pytest.fixture(scope="session", autouse=True)
def root() -> None:
    require_root(
        "the cluster suite", ("ip", "iptables", "nft", "ping", "etcd", "etcdctl", "python3")
    )


@pytest.fixture(scope="session")
def netns_prefix() -> str:
    return PREFIX


@dataclass
class Lab:
    factory: NamespaceFactory
    underlay: Underlay
    etcd: EtcdCluster
    tmp: Path
    numbers: Iterator[int]

    def cluster(self, bin_dir: Path, backend: str = "host-gw") -> Cluster:
        home = self.tmp / f"cluster{next(self.numbers)}"
        home.mkdir()
        return Cluster(self.underlay, self.etcd, home, bin_dir, backend=backend)


def make_lab(tmp: Path) -> Iterator[Lab]:
    factory = NamespaceFactory(PREFIX)
    etcd: EtcdCluster | None = None
    try:
        underlay = Underlay(factory)
        etcd = EtcdCluster(factory, underlay, tmp)
        etcd.start()
        yield Lab(factory, underlay, etcd, tmp, itertools.count(1))
    finally:
        if etcd is not None:
            etcd.stop()
        factory.cleanup()


@pytest.fixture(scope="session")
def lab(root: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    yield from make_lab(tmp_path_factory.mktemp("lab"))


@pytest.fixture
def cluster(lab: Lab, installed: Path) -> Iterator[Cluster]:
    """A cluster for one test: its nodes' services are stopped afterwards, its namespaces go
    with the lab's."""
    world = lab.cluster(installed)
    try:
        yield world
    finally:
        world.close()
