"""Real runtimes drive the installed plugin end to end: upstream cnitool, containerd's ctr and
podman, each from Debian's packages. Their host side is the machine's root network namespace
(see hostnet.py for how that stays safe); their fixed paths are the test's own directories
inside private mount namespaces (mountns.py)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from cni_bridge_py.install import install
from tests.runtimes.hostnet import (
    HostNetwork,
    NetworkFactory,
    read_ip_forward,
    restore_ip_forward,
)
from tests.runtimes.support import Timings, busybox_rootfs

TIMINGS = pytest.StashKey[Timings]()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if Path(str(item.fspath)).is_relative_to(here):
            item.add_marker(pytest.mark.runtimes)


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    timings = config.stash.get(TIMINGS, None)
    if timings is not None and timings.samples:
        terminalreporter.section("container start times: our plugin vs the reference")
        for line in timings.report():
            terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def timings(pytestconfig: pytest.Config) -> Timings:
    return pytestconfig.stash.setdefault(TIMINGS, Timings())


@pytest.fixture(scope="session")
def ip_forward_restored() -> Iterator[None]:
    """isGateway turns on the host's ip_forward (the host is real here): put it back."""
    original = read_ip_forward()
    try:
        yield
    finally:
        restore_ip_forward(original)


@pytest.fixture(scope="session")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Our plugins as `make install ALIASES="bridge host-local"` lays them out, in a private
    bin dir: a runtime looking for the reference's names finds ours, and nothing else."""
    bin_dir = tmp_path_factory.mktemp("cni-bin")
    install(bin_dir, python=sys.executable, aliases=("bridge", "host-local"))
    return bin_dir


@pytest.fixture(scope="session")
def rootfs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return busybox_rootfs(tmp_path_factory.mktemp("busybox") / "rootfs")


@pytest.fixture
def networks(tmp_path: Path, ip_forward_restored: None) -> Iterator[NetworkFactory]:
    """networks(tag) -> a HostNetwork of this test; its bridge, veths and NAT rules are
    removed afterwards even when the test fails."""
    made: list[HostNetwork] = []

    def make(tag: str) -> HostNetwork:
        network = HostNetwork.make(tag, tmp_path / f"ipam-{tag}")
        made.append(network)
        return network

    try:
        yield make
    finally:
        for network in made:
            network.cleanup()
