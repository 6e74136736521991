"""Fixtures of the reliability suite: the profile, the figures, the installed plugin and
throwaway namespaces. Every kernel-touching test runs the plugin inside a namespace of its own;
the machine's namespaces, rules and files outside temporary directories are never touched."""

from __future__ import annotations

import os
import shutil
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from cni_bridge_py.install import install
from tests.reliability.figures import Figures
from tests.reliability.profile import Profile, current
from tests.reliability.support import Namespaces

HERE = Path(__file__).parent
_FIGURES = Figures()
_OUTCOMES: Counter[str] = Counter()
_DURATIONS: dict[str, float] = {}
_DESELECTED: list[str] = []


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if Path(str(item.fspath)).is_relative_to(HERE):
            item.add_marker(pytest.mark.reliability)


def pytest_deselected(items: list[pytest.Item]) -> None:
    _DESELECTED.extend(i.nodeid for i in items if Path(str(i.fspath)).is_relative_to(HERE))


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    name = report.nodeid.split("::", 1)[0].rsplit("/", 1)[-1]
    _DURATIONS[name] = _DURATIONS.get(name, 0.0) + report.duration
    if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
        _OUTCOMES[report.outcome] += 1
    if name == "test_properties.py" and report.when == "call":
        _FIGURES.add("bad_input", property_failures=int(report.failed))


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Record this run's figures; a run of part of the suite (some files, -k, -m) goes to
    <profile>-partial.json, so it never stands in for the figures of a whole run."""
    if not _OUTCOMES:
        return
    whole = set(_DURATIONS) == {p.name for p in HERE.glob("test_*.py")} and not _DESELECTED
    name = current().name if whole else f"{current().name}-partial"
    _FIGURES.write(name, dict(_OUTCOMES), _DURATIONS)


@pytest.fixture(scope="session")
def profile() -> Profile:
    return current()


@pytest.fixture(scope="session")
def figures() -> Figures:
    return _FIGURES


@pytest.fixture(scope="session")
def root() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root: network namespaces, bridges, iptables and nftables")
    tools = ("ip", "iptables-save", "ip6tables-save", "iptables-restore", "nft", "ping")
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        pytest.fail(f"the reliability suite needs {missing}: run .ci/run or apt-get install them")


@pytest.fixture(scope="session")
def installed(root: None, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The plugin as `make install` lays it out, in a private bin dir."""
    bin_dir = tmp_path_factory.mktemp("cni-bin")
    install(bin_dir, python=sys.executable)
    return bin_dir


@pytest.fixture
def namespaces(root: None) -> Iterator[Namespaces]:
    factory = Namespaces()
    try:
        yield factory
    finally:
        factory.cleanup()


@pytest.fixture(scope="module")
def module_namespaces(root: None) -> Iterator[Namespaces]:
    factory = Namespaces()
    try:
        yield factory
    finally:
        factory.cleanup()
