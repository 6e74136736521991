"""Restarts: reservations that outlive their containers (the reference's host-local keeps them
across reboots until the range is exhausted, plugins#697) are reclaimed by GC with the
runtime's list of valid attachments, together with their NAT chains and any host veth.

Simulated two ways: containers whose namespaces vanish without a DEL (a runtime crash), and a
reboot — the host's kernel state is gone (a new host namespace) but the data dir persisted.
docs/reliability.md describes the tmpfs / boot-scoped data dir that avoids the second.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.reliability.figures import Figures
from tests.reliability.lab import Lab, lab_in, network_config
from tests.support.netns import Namespace, NamespaceFactory, sh
from tests.support.plugin import chain_name, reservations

NETWORK, BRIDGE, GATEWAY = "restartnet", "cbrrestart", "10.126.0.1"
# .1 is the gateway, .2 - .6 are the five addresses there are.
SUBNET = "10.126.0.0/29"


@pytest.fixture
def lab(installed: Path, namespaces: NamespaceFactory, tmp_path: Path) -> Iterator[Lab]:
    conf = network_config(NETWORK, BRIDGE, SUBNET, tmp_path / "data")
    with lab_in(namespaces, installed, tmp_path, conf, "one-shot") as lab:
        yield lab


def fill_the_range(lab: Lab) -> list[Namespace]:
    spaces = [lab.namespaces.new(f"c{i}") for i in range(5)]
    for ns in spaces:
        lab.runtime.run("add", NETWORK, ns).ok()
    assert len(reservations(lab.data_dir, NETWORK)) == 5
    return spaces


def exhausted(lab: Lab) -> None:
    """A new container cannot get an address, cleanly: code 11 and nothing of it remains."""
    late = lab.namespaces.new("late")
    outcome = lab.runtime.run("add", NETWORK, late)
    assert outcome.code == 1 and "error 11" in outcome.stderr, outcome.stderr
    assert late.link_names() == ["lo"]
    lab.runtime.run("del", NETWORK, late).ok()


def test_gc_reclaims_containers_gone_without_del(lab: Lab, figures: Figures) -> None:
    a, b, c, d, e = fill_the_range(lab)
    ids = {ns.name: lab.runtime.container_id(ns) for ns in (a, b, c, d, e)}
    # The runtime crashed: a, b and c are gone without DEL; e still runs but the runtime
    # forgot it (not in its list); only d is valid.
    for ns in (a, b, c):
        ns.delete()
    exhausted(lab)
    valid = [(ids[d.name], "eth0")]

    _, removed = lab.gc(valid)

    held = reservations(lab.data_dir, NETWORK)
    assert list(held.values()) == [f"{ids[d.name]}\r\neth0".encode()]
    chains = {r.split()[1] for r in lab.host.nat_rules() if r.startswith("-N ")}
    assert chains == {chain_name(NETWORK, ids[d.name])}
    assert e.link_names() == ["lo"]  # its host veth went, and the container end with it
    assert any("veth" in line and ids[e.name] in line for line in removed), removed
    stale = 4
    reclaimed = sum("removed reservation" in line for line in removed)
    left = lab.leftovers([e], keep=(ids[d.name],), cache=False)
    figures.add("restarts", stale=stale, reclaimed=reclaimed, leftovers=len(left))
    assert reclaimed == stale and left == []
    # The runtime's own container is untouched and working.
    assert d.ping(GATEWAY)
    # The range serves new containers again.
    fresh = lab.namespaces.new("fresh")
    lab.runtime.run("add", NETWORK, fresh).ok()
    assert fresh.ping(GATEWAY)
    for ns in (d, fresh):
        lab.runtime.run("del", NETWORK, ns).ok()
    assert lab.leftovers([d, fresh], cache=False) == []


def test_after_a_reboot_gc_with_the_runtimes_list_frees_the_range(
    lab: Lab, figures: Figures
) -> None:
    """Nothing survives a reboot but the data dir: every reservation is stale, the same
    container IDs get "duplicate allocation" (nerdctl#665) and new ones find the range full.
    The runtime, which knows no container yet, sends GC with an empty list."""
    spaces = fill_the_range(lab)
    ids = [lab.runtime.container_id(ns) for ns in spaces]
    # The reboot: the host namespace (bridge, veths, NAT rules) and all containers are gone.
    for ns in [*spaces, lab.host]:
        ns.delete()
    lab.host = lab.namespaces.host("rebooted")
    lab.runtime.host = lab.host
    exhausted(lab)
    # The runtime starts its first container again at the same namespace path, so with the
    # same (cnitool) container ID, which still holds a reservation.
    again = spaces[0]
    sh("ip", "netns", "add", again.name)
    outcome = lab.runtime.run("add", NETWORK, again)
    assert outcome.code == 1 and "duplicate allocation" in outcome.stderr, outcome.stderr
    lab.runtime.run("del", NETWORK, again).ok()  # a runtime's cleanup after a failed ADD

    _, removed = lab.gc([])

    reclaimed = sum("removed reservation" in line for line in removed)
    left = lab.leftovers([again], cache=False)
    figures.add("restarts", stale=4, reclaimed=reclaimed, leftovers=len(left))
    # DEL of the first container already released its reservation (same ID); GC the rest.
    assert reclaimed == 4 and reservations(lab.data_dir, NETWORK) == {}
    assert left == []
    result = lab.runtime.run("add", NETWORK, again).ok().json
    assert again.ping(GATEWAY), result
    assert ids[0] == lab.runtime.container_id(again)
    lab.runtime.run("del", NETWORK, again).ok()
    assert lab.leftovers([again], cache=False) == []
