from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cni_bridge_py.install import install
from tests.integration.netns import Namespace, NamespaceFactory, unique
from tests.integration.plugin import Plugin


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if Path(str(item.fspath)).is_relative_to(here):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session", autouse=True)
def _root_and_tools() -> None:
    if os.geteuid() != 0:
        pytest.skip("integration tests need root (network namespaces, bridges, iptables)")
    missing = [t for t in ("ip", "iptables", "iptables-save", "ping") if shutil.which(t) is None]
    if missing:
        pytest.fail(f"integration tests need {missing}: run .ci/run or apt-get install them")


@pytest.fixture(scope="session")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The plugin as `make install` lays it out, in a private bin dir."""
    bin_dir = tmp_path_factory.mktemp("cni-bin")
    install(bin_dir, python=sys.executable, aliases=("bridge-py-alias",))
    return bin_dir


@pytest.fixture
def namespaces() -> Iterator[NamespaceFactory]:
    factory = NamespaceFactory()
    try:
        yield factory
    finally:
        factory.cleanup()


@pytest.fixture
def host(namespaces: NamespaceFactory) -> Namespace:
    ns = namespaces.new("host")
    ns.exec("ip", "link", "set", "lo", "up")
    return ns


@pytest.fixture
def plugin(installed: Path, host: Namespace) -> Plugin:
    return Plugin(installed / "cni-bridge-py", host, str(installed))


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
