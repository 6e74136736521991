"""SIGKILL at every step of ADD and DEL — the one-shot plugin, or the agent itself — then the
runtime's recovery: DEL (and GC with an empty valid list) leave no veth, reservation, NAT chain
or rule, nft rule or cache entry, and another container's ADD succeeds.

Kills come from the plugin's test hook CNI_BRIDGE_PY_FAULT=kill:<step>. The runtime is the
cnitool-compatible runner (libcni's result cache included), which passes its environment on to
the plugin; the front forwards the whole environment to the agent, so there the agent process
is what dies. The matrix of (mode, masquerade backend) comes from the profile; the nftables
backend also turns macspoofchk on, so both kinds of nft rules are made and must go.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.reliability.figures import Figures
from tests.reliability.lab import Lab, lab_in, network_config, wait_for
from tests.reliability.profile import current
from tests.support.agent import ONE_SHOT_ENV
from tests.support.netns import Namespace, NamespaceFactory
from tests.support.plugin import FAULT_ENV

ADD_STEPS = ("bridge", "ipam", "veth", "container", "gateway", "masq", "port")
DEL_STEPS = ("del-link", "del-ipam")
NETWORK, BRIDGE, SUBNET, GATEWAY = "crashnet", "cbrcrash", "10.124.0.0/24", "10.124.0.1"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "combo" in metafunc.fixturenames:
        combos = current().crash_matrix
        metafunc.parametrize("combo", combos, ids=[f"{m}-{b}" for m, b in combos])


@pytest.fixture
def lab(
    combo: tuple[str, str], installed: Path, namespaces: NamespaceFactory, tmp_path: Path
) -> Iterator[Lab]:
    mode, backend = combo
    conf = network_config(NETWORK, BRIDGE, SUBNET, tmp_path / "data", backend)
    with lab_in(namespaces, installed, tmp_path, conf, mode) as lab:
        yield lab


def assert_killed(lab: Lab, outcome_stderr: str, killed_add_in_agent: bool) -> None:
    """The one-shot plugin died by SIGKILL; in agent mode the agent's worker serving it did,
    its supervisor started another (the agent serves on, nothing restarted), and the front
    answered an ADD with code 11."""
    if lab.agent is None:
        assert "killed by signal 9" in outcome_stderr, outcome_stderr
        return
    lab.agent.wait_logged(b"ended (killed by signal 9); starting another")
    assert lab.agent.alive()
    if killed_add_in_agent:
        assert "error 11" in outcome_stderr, outcome_stderr


def recover_and_prove(lab: Lab, victim: Namespace, figures: Figures) -> None:
    """The runtime's DEL after the failure, then GC with an empty valid list; nothing of the
    crashed attachment may remain, and the network must still serve a new container."""
    lab.runtime.run("del", NETWORK, victim).ok()
    left = lab.leftovers([victim])
    _, removed = lab.gc([])
    left_after_gc = lab.leftovers([victim])
    figures.add("faults", leaks=len(left) + len(left_after_gc), gc_removed=len(removed))
    assert left == [], left
    assert removed == [], removed  # DEL alone was complete
    assert left_after_gc == [], left_after_gc
    assert lab.host.addresses(BRIDGE) in ([], [f"{GATEWAY}/24"])

    fresh = lab.namespaces.new("next")
    result = lab.runtime.run("add", NETWORK, fresh).ok().json
    address = result["ips"][0]["address"]
    assert fresh.addresses("eth0") == [address]
    assert fresh.ping(GATEWAY)
    figures.add("faults", follow_up_adds=1)
    lab.runtime.run("del", NETWORK, fresh).ok()
    assert lab.leftovers([victim, fresh]) == []


@pytest.mark.parametrize("step", ADD_STEPS)
def test_kill_during_add(lab: Lab, step: str, figures: Figures) -> None:
    victim = lab.namespaces.new("victim")
    outcome = lab.runtime.run("add", NETWORK, victim, {FAULT_ENV: f"kill:{step}"})
    assert outcome.code != 0, outcome.stdout
    figures.add("faults", injected=1)
    assert_killed(lab, outcome.stderr, killed_add_in_agent=True)
    assert lab.runtime.cache_entries(NETWORK) == []  # a failed ADD is not cached
    # The kill really came mid-way: what the steps so far made is still there.
    half_done = lab.leftovers([victim])
    made = ADD_STEPS.index(step)
    assert (made >= ADD_STEPS.index("ipam")) == any("store " in x for x in half_done), half_done
    assert (made >= ADD_STEPS.index("veth")) == any("host veth" in x for x in half_done)
    nat = any(x.startswith(("iptables", "nft masquerade")) for x in half_done)
    # The rules are written beside the container and gateway steps: killed there, they may
    # be in or not yet; before the veth they are not, after the masq step they are.
    beside = ADD_STEPS.index("veth") < made < ADD_STEPS.index("masq")
    if not beside:
        assert (made >= ADD_STEPS.index("masq")) == nat, half_done
    recover_and_prove(lab, victim, figures)


@pytest.mark.parametrize("step", DEL_STEPS)
def test_kill_during_del(lab: Lab, step: str, figures: Figures) -> None:
    victim = lab.namespaces.new("victim")
    lab.runtime.run("add", NETWORK, victim).ok()
    cached = lab.runtime.cache_entries(NETWORK)
    assert len(cached) == 1
    outcome = lab.runtime.run("del", NETWORK, victim, {FAULT_ENV: f"kill:{step}"})
    assert outcome.code != 0, outcome.stdout
    figures.add("faults", injected=1)
    if lab.agent is not None:
        # The agent's worker died; the front then ran the DEL itself, with the same hook: it
        # died too.
        assert "killed by signal 9" in outcome.stderr, outcome.stderr
    assert_killed(lab, outcome.stderr, killed_add_in_agent=False)
    assert lab.runtime.cache_entries(NETWORK) == cached  # kept until a DEL succeeds
    recover_and_prove(lab, victim, figures)


# --- what a crash leaves in the store must not block or corrupt later calls ---------------


@pytest.fixture
def one_shot_lab(installed: Path, namespaces: NamespaceFactory, tmp_path: Path) -> Iterator[Lab]:
    conf = network_config(NETWORK, BRIDGE, SUBNET, tmp_path / "data")
    with lab_in(namespaces, installed, tmp_path, conf, "one-shot") as lab:
        yield lab


def test_crash_leftovers_in_the_store_do_not_block_later_calls(one_shot_lab: Lab) -> None:
    """What a crashed writer can leave: a `lock` with odd content and mode, an empty
    reservation (the reference dies between O_EXCL create and write), a temporary file of
    ours (we die between writing it and linking it), a truncated last_reserved_ip.0."""
    lab = one_shot_lab
    store = lab.data_dir / NETWORK
    store.mkdir(parents=True)
    (store / "lock").write_bytes(b"garbage")
    (store / "lock").chmod(0)
    (store / "10.124.0.2").write_bytes(b"")
    (store / ".reserving-4242-deadbeef").write_bytes(b"crashed\r\neth0")
    (store / "last_reserved_ip.0").write_bytes(b"")
    red = lab.namespaces.new("red")
    started = time.monotonic()
    result = lab.runtime.run("add", NETWORK, red).ok().json
    assert time.monotonic() - started < 10  # nothing waited on the stale lock
    assert result["ips"][0]["address"] == "10.124.0.3/24"  # .2 is taken by the empty file
    assert not (store / ".reserving-4242-deadbeef").exists()  # cleaned under the lock
    red_id = lab.runtime.container_id(red)
    assert (store / "10.124.0.3").read_bytes() == f"{red_id}\r\neth0".encode()
    lab.runtime.run("del", NETWORK, red).ok()
    # The empty file belongs to nobody, so no DEL can release it; GC does.
    _, removed = lab.gc([])
    assert removed == ["gc crashnet: removed reservation 10.124.0.2"], removed
    assert sorted(p.name for p in store.iterdir()) == ["last_reserved_ip.0", "lock"]
    assert lab.leftovers([red]) == []


def test_a_killed_lock_holder_does_not_block_the_next_add(
    one_shot_lab: Lab, figures: Figures
) -> None:
    """flock dies with its holder: a process killed while holding the store lock leaves
    only the file, and the next ADD goes through at once."""
    lab = one_shot_lab
    store = lab.data_dir / NETWORK
    store.mkdir(parents=True)
    script = (
        "import fcntl,os,time;"
        f"fd=os.open({str(store / 'lock')!r},os.O_RDONLY|os.O_CREAT,0o750);"
        "fcntl.flock(fd,fcntl.LOCK_EX);print('locked',flush=True);time.sleep(600)"
    )
    with subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True) as p:
        try:
            assert p.stdout is not None and p.stdout.readline().strip() == "locked"
        finally:
            p.send_signal(signal.SIGKILL)  # our own child: the crash of a lock holder
            p.wait(timeout=10)
    assert p.returncode == -signal.SIGKILL
    figures.add("faults", injected=1)
    red = lab.namespaces.new("red")
    started = time.monotonic()
    lab.runtime.run("add", NETWORK, red, ONE_SHOT_ENV).ok()
    assert time.monotonic() - started < 10
    lab.runtime.run("del", NETWORK, red).ok()
    wait_for(lambda: lab.leftovers([red]) == [], what="a clean network")
