"""Real runtimes drive the installed plugin end to end: upstream cnitool, containerd's ctr and
podman, each from Debian's packages. Their host side is the machine's root network namespace
(see hostnet.py for how that stays safe); their fixed paths are the test's own directories
inside private mount namespaces (mountns.py)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.runtimes.containerd import Containerd
from tests.runtimes.hostnet import (
    HostNetwork,
    NetworkFactory,
    read_ip_forward,
    restore_ip_forward,
    unique,
)
from tests.runtimes.support import REPO, Timings, busybox_rootfs, require_tools, unavailable
from tests.support.netns import sh

BUILD_SCRIPT = REPO / "scripts" / "build-cnitool.sh"

TIMINGS = pytest.StashKey[Timings]()


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    timings = config.stash.get(TIMINGS, None)
    if timings is not None and timings.samples:
        terminalreporter.section("container start times: our plugin vs the reference")
        for line in timings.report():
            terminalreporter.write_line(line)


@pytest.fixture(scope="session", autouse=True)
def netns_dir_mounted() -> None:
    """/run/netns a shared mount before any test's mount namespace exists: only then does a
    netns that a test adds later (`ip netns add`) show up inside those namespaces. The first
    `ip netns add` on a machine makes that mount; on a fresh machine that may be ours."""
    if os.geteuid() == 0 and not os.path.ismount("/run/netns"):
        name = unique("prime")
        sh("ip", "netns", "add", name)
        sh("ip", "netns", "del", name)


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
def root() -> None:
    """What `installed` and `namespaces` (tests/conftest.py) need first: skip or, in CI, fail."""
    if os.geteuid() != 0:
        unavailable("the runtime suites need root (bridges, namespaces, iptables, mounts)")


@pytest.fixture(scope="session")
def install_aliases() -> tuple[str, ...]:
    """As `make install ALIASES="bridge host-local"`: a runtime looking for the reference's
    names finds ours, and nothing else."""
    return ("bridge", "host-local")


@pytest.fixture(scope="module")
def readme_ready() -> None:
    """What the README's commands need here. `make install` builds the venv first when it is
    missing or older than pyproject.toml, and a seed host has no network: that must have
    happened already (make test does it)."""
    require_tools(
        "the README's commands",
        {"make": "make", "unshare": "util-linux", "nsenter": "util-linux", "ping": "iputils-ping"},
    )
    fresh = subprocess.run(["make", "-q", "venv"], cwd=REPO, capture_output=True, check=False)
    if fresh.returncode != 0:
        unavailable("the repository's venv is missing or older than pyproject.toml: make venv")


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


@pytest.fixture(scope="session")
def cnitool() -> Path:
    """scripts/build-cnitool.sh: Debian's golang-go + golang-github-appc-cni-dev + cnitool.go
    from the matching source package, GOPATH mode, no proxy. Built once into build/."""
    require_tools(
        "cnitool",
        {
            "go": "golang-go",
            "dpkg-source": "dpkg-dev",
            "/usr/share/gocode/src/github.com/containernetworking/cni/libcni": (
                "golang-github-appc-cni-dev"
            ),
            "unshare": "util-linux",
            "nsenter": "util-linux",
        },
    )
    proc = subprocess.run(
        ["bash", str(BUILD_SCRIPT), str(REPO / "build" / "cnitool")],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if proc.returncode == 3:
        unavailable(f"cnitool cannot be built here: {proc.stderr.strip().splitlines()[-1]}")
    assert proc.returncode == 0, f"build-cnitool.sh failed:\n{proc.stderr}"
    return Path(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def containerd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Containerd]:
    require_tools(
        "containerd",
        {
            "containerd": "containerd",
            "ctr": "containerd",
            "containerd-shim-runc-v2": "containerd",
            "runc": "runc",
            "unshare": "util-linux",
            "nsenter": "util-linux",
        },
    )
    daemon = Containerd(tmp_path_factory.mktemp("containerd"))
    try:
        yield daemon
    finally:
        problems = daemon.stop()
        assert not problems, problems
