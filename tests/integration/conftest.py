"""The integration suite: the installed executable as root against throwaway namespaces. The
shared fixtures (installed, namespaces, host, plugin) are in tests/conftest.py."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support.netns import Namespace, unique
from tests.support.plugin import Plugin
from tests.support.preconditions import require_root
from tests.support.state import unchanged as unchanged_since

Unchanged = Callable[..., Callable[[], None]]


@pytest.fixture(scope="session", autouse=True)
def root() -> None:
    require_root("the integration suite", ("ip", "iptables", "iptables-save", "ping"))


@pytest.fixture(scope="session")
def install_aliases() -> tuple[str, ...]:
    return ("bridge-py-alias",)  # test_install runs the launcher under another name


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    path = tmp_path / "networks"
    path.mkdir()
    return path


@pytest.fixture
def bridge_name() -> str:
    return "br" + unique("x")[-8:].replace("-", "")


@pytest.fixture
def netconf(data_dir: Path, bridge_name: str) -> dict[str, Any]:
    """The seed network: gateway on the bridge, default route, masquerade."""
    return {
        "cniVersion": "1.0.0",
        "name": "testnet",
        "type": "cni-bridge-py",
        "bridge": bridge_name,
        "isGateway": True,
        "isDefaultGateway": True,
        "ipMasq": True,
        "ipam": {
            "type": "host-local",
            "subnet": "192.168.15.0/24",
            "gateway": "192.168.15.5",
            "dataDir": str(data_dir),
        },
    }


@pytest.fixture
def unchanged(plugin: Plugin, data_dir: Path) -> Unchanged:
    """unchanged(*containers) snapshots the host namespace, those containers and the data dir
    now and returns the check that none of them changed (tests/support/state.py)."""

    def take(*containers: Namespace) -> Callable[[], None]:
        return unchanged_since(*containers, host=plugin.host, data_dir=data_dir)

    return take


@pytest.fixture
def conf_file(netconf: dict[str, Any], tmp_path: Path) -> Path:
    """The network as a one-plugin conflist file (what inspect and doctor read)."""
    path = tmp_path / f"{netconf['name']}.conflist"
    conflist = {"cniVersion": "1.0.0", "name": netconf["name"], "plugins": [netconf]}
    path.write_text(json.dumps(conflist))
    return path
