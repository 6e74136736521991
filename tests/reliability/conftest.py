"""Fixtures of the reliability suite: the profile and the figures; the installed plugin and
throwaway namespaces are the shared ones (tests/conftest.py), named cbpr*. Every
kernel-touching test runs the plugin inside a namespace of its own; the machine's namespaces,
rules and files outside temporary directories are never touched. `root` is not autouse: the
hypothesis properties (test_properties.py) run without it."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from tests.reliability.figures import Figures
from tests.reliability.profile import Profile, current
from tests.support.preconditions import require_root

HERE = Path(__file__).parent
_FIGURES = Figures()
_OUTCOMES: Counter[str] = Counter()
_DURATIONS: dict[str, float] = {}
_DESELECTED: list[str] = []


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
    tools = ("ip", "iptables-save", "ip6tables-save", "iptables-restore", "nft", "ping")
    require_root("the reliability suite", tools)


@pytest.fixture(scope="session")
def netns_prefix() -> str:
    return "cbpr"  # told apart from the other suites' (cbpt*), which may run at the same time
