"""Fixtures and hooks shared by the root suites; their helpers are in tests/support/.

pytest offers these to every test below tests/ without an import. A suite changes one by
defining the same name in its own conftest.py: each defines `root` (its tools; integration and
conformance make it autouse), and `install_aliases` or `netns_prefix` where it needs other
values. Nothing here runs unless a test asks for it, so the unit tests never need root.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from cni_bridge_py.install import install
from tests.support.netns import PREFIX, Namespace, NamespaceFactory
from tests.support.plugin import Plugin, installed_plugin
from tests.support.preconditions import require_root

TESTS = Path(__file__).parent
# Each root suite's directory name is also its marker (registered in pyproject.toml).
SUITE_MARKERS = {"integration", "conformance", "reliability", "runtimes", "cluster"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        path = Path(str(item.fspath))
        if path.is_relative_to(TESTS):
            suite = path.relative_to(TESTS).parts[0]
            if suite in SUITE_MARKERS:
                item.add_marker(getattr(pytest.mark, suite))


@pytest.fixture(scope="session")
def root() -> None:
    """The machine can run this suite: overridden by each suite with the tools it drives."""
    require_root("this test")


@pytest.fixture(scope="session")
def install_aliases() -> tuple[str, ...]:
    """Extra names `make install ALIASES=...` gives the launcher in `installed`."""
    return ()


@pytest.fixture(scope="module")
def installed(
    root: None, install_aliases: tuple[str, ...], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The plugins as `make install` lays them out, in a private bin dir (its path). Per
    module, not per session: suites ask for different aliases (install_aliases), and a session
    value would be whichever suite ran first (installing takes a millisecond)."""
    bin_dir = tmp_path_factory.mktemp("cni-bin")
    install(bin_dir, python=sys.executable, aliases=install_aliases)
    return bin_dir


@pytest.fixture(scope="session")
def netns_prefix() -> str:
    return PREFIX


def throwaway(prefix: str) -> Iterator[NamespaceFactory]:
    factory = NamespaceFactory(prefix)
    try:
        yield factory
    finally:
        factory.cleanup()


@pytest.fixture
def namespaces(root: None, netns_prefix: str) -> Iterator[NamespaceFactory]:
    """Every namespace a test makes, deleted afterwards even when the test fails."""
    yield from throwaway(netns_prefix)


@pytest.fixture(scope="module")
def module_namespaces(root: None, netns_prefix: str) -> Iterator[NamespaceFactory]:
    """The same for a module's shared world (set up once, used by many tests)."""
    yield from throwaway(netns_prefix)


@pytest.fixture
def host(namespaces: NamespaceFactory) -> Namespace:
    return namespaces.host()


@pytest.fixture
def plugin(installed: Path, host: Namespace) -> Plugin:
    return installed_plugin(installed, host)
