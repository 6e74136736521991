"""The fixed corpus (corpus.py) through the installed executable, one-shot and (full profile)
through the agent: every bad request gets exactly one well-formed CNI error with the expected
code, exit 1 and no traceback, and changes nothing — links, addresses and routes in the host
and in two container namespaces, iptables, ip6tables and nftables rules, forwarding, the data
dir, and no namespace or file appears at a path the request named.

Speed: cases run in batches of BATCH concurrent plugin processes between two snapshots. When a
batch changed anything, each of its cases is run again alone between snapshots, so the one
that changes state is the one that fails; a change no case reproduces alone fails the batch's
last case.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from cni_bridge_py.version import SUPPORTED_VERSIONS
from tests.reliability import corpus
from tests.reliability.corpus import CORPUS, Case
from tests.reliability.figures import Figures
from tests.reliability.profile import AGENT, current
from tests.support.agent import ONE_SHOT_ENV, Agent
from tests.support.netns import Namespace, NamespaceFactory
from tests.support.plugin import LAUNCHER, Outcome, Plugin, installed_plugin
from tests.support.state import differences, settle, snapshot

ERROR_KEYS = {"cniVersion", "code", "msg", "details"}
RELATIVE_NETNS = "cbpr-relative-netns"  # resolved against the plugin's working directory
BATCH = 12
BATCH_OF = {case.name: index // BATCH for index, case in enumerate(CORPUS)}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "mode" in metafunc.fixturenames:
        metafunc.parametrize("mode", current().corpus_modes)
    if "case" in metafunc.fixturenames:
        metafunc.parametrize("case", CORPUS, ids=[c.name for c in CORPUS])


@dataclass
class World:
    host: Namespace
    victim: Namespace
    resident: Namespace
    plugin: Plugin
    tmp: Path
    bin_dir: Path
    agent: Agent | None
    resident_prev: dict[str, Any]
    state: dict[str, Any] = field(default_factory=dict)
    cases_run: set[str] = field(default_factory=set)
    outcomes: dict[tuple[str, str], Outcome] = field(default_factory=dict)
    # (mode, batch) -> what the batch as a whole changed
    batch_changes: dict[tuple[str, int], list[str]] = field(default_factory=dict)

    def netns_path(self, kind: str) -> str:
        return {
            "victim": self.victim.path,
            "resident": self.resident.path,
            "file": str(self.tmp / "file"),
            "dir": str(self.tmp / "dir"),
            "symlink": str(self.tmp / "link"),
            "missing": str(self.tmp / "missing-netns"),
            "relative": RELATIVE_NETNS,
            "self": "/proc/self/ns/net",
            "host": self.host.path,
            "devnull": "/dev/null",
            "mnt-ns": "/proc/self/ns/mnt",
            "uts-ns": "/proc/self/ns/uts",
        }[kind]

    def fill(self, data: bytes) -> bytes:
        prev = json.dumps(self.resident_prev).encode()
        return (
            data.replace(b"@DATA@", str(self.tmp / "data").encode())
            .replace(b"@TMP@", str(self.tmp).encode())
            .replace(b'"@RESIDENT_PREV@"', prev)
        )

    def fill_text(self, text: str) -> str:
        return text.replace("@DATA@", str(self.tmp / "data")).replace("@TMP@", str(self.tmp))

    def snapshot(self) -> dict[str, Any]:
        must_not_appear = [self.tmp / "missing-netns", Path.cwd() / RELATIVE_NETNS]
        return snapshot(self.host, [self.victim, self.resident], self.tmp, must_not_appear)

    def run(self, case: Case, mode: str) -> Outcome:
        agent_env = self.agent.env() if mode == AGENT and self.agent else ONE_SHOT_ENV
        env = {k: self.fill_text(v) for k, v in case.env.items()}
        return self.plugin.run(
            case.command,
            self.fill(case.stdin),
            container_id=case.container_id,
            netns=self.netns_path(case.netns),
            ifname=case.ifname,
            extra_env={**env, **agent_env},
            unset=case.unset,
        )

    def outcome(self, case: Case, mode: str) -> Outcome:
        """This case's answer, running its whole batch concurrently the first time."""
        if (mode, case.name) not in self.outcomes:
            batch = [c for c in CORPUS if BATCH_OF[c.name] == BATCH_OF[case.name]]
            before = self.state
            with ThreadPoolExecutor(max_workers=len(batch)) as pool:
                answers = list(pool.map(lambda c: self.run(c, mode), batch))
            self.state = self.snapshot()
            self.batch_changes[mode, BATCH_OF[case.name]] = differences(before, self.state)
            self.outcomes.update({(mode, c.name): a for c, a in zip(batch, answers, strict=True)})
        return self.outcomes[mode, case.name]

    def changes_alone(self, case: Case, mode: str) -> list[str]:
        before = self.snapshot()
        self.run(case, mode)
        self.state = self.snapshot()
        return differences(before, self.state)


def _settled(world: World) -> dict[str, Any]:
    """A state that stays the same (a new port's flags and IPv6 addresses take a moment)."""
    deadline = time.monotonic() + 20
    state = world.snapshot()
    while time.monotonic() < deadline:
        settle(world.host, world.victim, world.resident)
        time.sleep(0.5)
        again = world.snapshot()
        if again == state:
            return state
        state = again
    raise AssertionError(f"the state does not settle: {differences(state, world.snapshot())}")


@pytest.fixture(scope="module")
def world(
    installed: Path,
    module_namespaces: NamespaceFactory,
    tmp_path_factory: pytest.TempPathFactory,
    figures: Figures,
) -> Iterator[World]:
    host = module_namespaces.host()
    victim, resident = module_namespaces.new("victim"), module_namespaces.new("resident")
    host.add_plain_link(corpus.NOT_A_BRIDGE)
    tmp = tmp_path_factory.mktemp("corpus")
    (tmp / "data").mkdir()
    (tmp / "file").write_text("")
    (tmp / "dir").mkdir()
    (tmp / "link").symlink_to(tmp / "file")
    plugin = installed_plugin(installed, host)
    world = World(host, victim, resident, plugin, tmp, installed, None, {})
    added = plugin.run(
        "ADD",
        world.fill(corpus.raw(corpus.BASE)),
        container_id=corpus.RESIDENT_ID,
        netns=resident.path,
        extra_env=ONE_SHOT_ENV,
    )
    result = added.ok().json
    assert result["ips"][0]["address"] == f"{corpus.RESIDENT_IP}/24"
    # CHECK with this prevResult must fail on the MAC, and change nothing.
    world.resident_prev = copy.deepcopy(result)
    world.resident_prev["interfaces"][2]["mac"] = "02:00:00:00:00:01"
    if AGENT in current().corpus_modes:
        world.agent = Agent(host, installed / LAUNCHER, tmp_path_factory.mktemp("ag"))
        world.agent.start()
    world.state = _settled(world)
    try:
        yield world
    finally:
        if world.agent is not None:
            world.agent.stop()
        figures.add("bad_input", corpus_cases=len(world.cases_run))


def judge(outcome: Outcome, case: Case) -> list[str]:
    """What is wrong with the answer, from a runtime's point of view."""
    problems = []
    if "Traceback" in outcome.stdout + outcome.stderr:
        problems.append("a traceback was printed")
    if case.code is None:
        if outcome.code != 0 or outcome.stdout.strip():
            problems.append(f"an idempotent DEL failed: exit {outcome.code} {outcome.stdout!r}")
        return problems
    if outcome.code != 1:
        problems.append(f"exit status {outcome.code}, not 1")
    try:
        body = json.loads(outcome.stdout)  # exactly one JSON value: trailing data is an error
    except ValueError:
        return [*problems, f"stdout is not one JSON object: {outcome.stdout[:300]!r}"]
    if not isinstance(body, dict) or not {"cniVersion", "code", "msg"} <= body.keys():
        return [*problems, f"not a CNI error object: {body!r:.300}"]
    if not body.keys() <= ERROR_KEYS:
        problems.append(f"unexpected keys {sorted(body.keys() - ERROR_KEYS)}")
    if body["cniVersion"] not in SUPPORTED_VERSIONS:
        problems.append(f"cniVersion {body['cniVersion']!r} is not one we speak")
    if body["code"] != case.code:
        problems.append(f"code {body['code']}, expected {case.code}: {body['msg'][:300]}")
    if not isinstance(body["msg"], str) or not body["msg"]:
        problems.append("empty msg")
    if not isinstance(body.get("details", ""), str):
        problems.append("details is not a string")
    return problems


def test_bad_request(world: World, case: Case, mode: str, figures: Figures) -> None:
    outcome = world.outcome(case, mode)
    problems = judge(outcome, case)
    batch = BATCH_OF[case.name]
    changes: list[str] = []
    if world.batch_changes[mode, batch]:
        changes = world.changes_alone(case, mode)
        last_of_batch = case.name == [c.name for c in CORPUS if BATCH_OF[c.name] == batch][-1]
        if last_of_batch and not changes:
            changes = ["the batch changed state, no case alone did:"]
            changes += world.batch_changes[mode, batch]
    world.cases_run.add(case.name)
    figures.add(
        "bad_input",
        runs=1,
        typed_errors=int(case.code is not None and not problems),
        accepted=int(case.code is None and not problems),
        bad_answers=int(bool(problems)),
        state_changes=int(bool(changes)),
    )
    assert not problems, f"{problems}\nstdout: {outcome.stdout[:500]}\nstderr: {outcome.stderr}"
    assert not changes, "\n".join(changes)


def test_the_corpus_is_large_and_names_are_unique() -> None:
    assert len(CORPUS) >= 200
    assert len({c.name for c in CORPUS}) == len(CORPUS)
    assert {c.netns for c in CORPUS} <= set(corpus.NETNS_KINDS)
