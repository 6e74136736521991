"""The conformance suite: the reference plugins and ours side by side, as root. The shared
fixtures (installed, namespaces) are in tests/conftest.py."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import pytest

from tests.conformance.harness import Lane, make_lane
from tests.support.netns import NamespaceFactory
from tests.support.plugin import REFERENCE_DIR
from tests.support.preconditions import require_root

REFERENCE_PLUGINS = ("bridge", "host-local", "static", "portmap", "firewall", "tuning", "bandwidth")
TOOLS = ("ip", "bridge", "tc", "iptables", "ip6tables", "nft", "python3")


class LaneFactory(Protocol):
    def __call__(self, name: str, default: str, only: str = "") -> Lane: ...


@pytest.fixture(scope="session", autouse=True)
def root() -> None:
    require_root(
        "the conformance suite", TOOLS, [REFERENCE_DIR / plugin for plugin in REFERENCE_PLUGINS]
    )


@pytest.fixture
def lane(namespaces: NamespaceFactory, tmp_path: Path, installed: Path) -> LaneFactory:
    """lane(name, default_plugin[, only]) -> a fresh host namespace and data dir (make_lane)."""

    def make(name: str, default: str, only: str = "") -> Lane:
        return make_lane(name, default, namespaces, tmp_path, installed, only=only)

    return make
