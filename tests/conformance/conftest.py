from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import pytest

from cni_bridge_py.install import install
from tests.conformance.harness import REFERENCE_DIR, Lane, make_lane
from tests.integration.netns import NamespaceFactory

REFERENCE_PLUGINS = ("bridge", "host-local", "static", "portmap", "firewall", "tuning", "bandwidth")
TOOLS = ("ip", "bridge", "tc", "iptables", "ip6tables", "nft", "python3")


class LaneFactory(Protocol):
    def __call__(self, name: str, default: str, only: str = "") -> Lane: ...


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if Path(str(item.fspath)).is_relative_to(here):
            item.add_marker(pytest.mark.conformance)


@pytest.fixture(scope="session", autouse=True)
def _root_tools_and_reference() -> None:
    if os.geteuid() != 0:
        pytest.skip("the conformance suite needs root (network namespaces, bridges, iptables)")
    missing = [t for t in TOOLS if shutil.which(t) is None]
    missing += [
        str(REFERENCE_DIR / p) for p in REFERENCE_PLUGINS if not (REFERENCE_DIR / p).is_file()
    ]
    if missing:
        pytest.fail(
            f"the conformance suite needs {missing}: apt-get install containernetworking-plugins"
            " iproute2 iptables nftables"
        )


@pytest.fixture(scope="session")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Our plugin as `make install` lays it out, in a private bin dir (the launcher)."""
    bin_dir = tmp_path_factory.mktemp("cni-bin")
    install(bin_dir, python=sys.executable)
    return bin_dir / "cni-bridge-py"


@pytest.fixture
def namespaces() -> Iterator[NamespaceFactory]:
    """Every namespace a test makes, deleted afterwards even when the test fails."""
    factory = NamespaceFactory()
    try:
        yield factory
    finally:
        factory.cleanup()


@pytest.fixture
def lane(namespaces: NamespaceFactory, tmp_path: Path, installed: Path) -> LaneFactory:
    """lane(name, default_plugin[, only]) -> a fresh host namespace and data dir (make_lane)."""

    def make(name: str, default: str, only: str = "") -> Lane:
        return make_lane(name, default, namespaces, tmp_path, installed, only=only)

    return make
