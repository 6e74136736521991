"""What a pod's network costs a kubelet: RunPodSandbox + StopPodSandbox on the node, with
our plugin one-shot and with its agent, with the reference bridge + host-local on a node of
the same config, and a hostNetwork pod (no CNI call) for the runtime's own share. Medians of
several pods, printed and in the suite's summary ("container start times"). `make bench` runs
this test with CRI_TIMING_JSON naming a file, and quotes what it writes there in
docs/benchmarks.md."""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.runtimes.cri.client import Pod
from tests.runtimes.cri.conftest import NodeFactory, start_agent, stop_agent
from tests.runtimes.cri.node import Node
from tests.runtimes.support import Timings

PODS = 5  # timed per lane, after one untimed pod
_names = (f"timed-{n}" for n in itertools.count())


def run_and_stop(node: Node, ran: list[str], *, host_network: bool = False) -> Callable[[], None]:
    def once() -> None:
        pod_id = node.run_pod(Pod(next(_names), host_network=host_network))
        ran.append(pod_id)
        node.client.stop(pod_id)

    return once


@pytest.fixture(scope="module")
def reference_node(nodes: NodeFactory) -> Node:
    """A node with the same config, on which the reference bridge and host-local stayed."""
    return nodes(ours=False)


def measure(timings: Timings, node: Node, what: str, *, host_network: bool = False) -> None:
    ran: list[str] = []
    lane = run_and_stop(node, ran, host_network=host_network)
    lane()  # the first pod of a node creates the bridge: not what a pod costs
    timings.measure("CRI", f"Run+StopPodSandbox ({what})", lane, repeat=PODS)
    for pod_id in ran:
        node.client.remove(pod_id)
    assert node.leftovers() == {}, what


def test_run_and_stop_pod_sandbox_times_ours_one_shot_and_agent_vs_the_reference(
    node: Node, reference_node: Node, timings: Timings, tmp_path: Path
) -> None:
    measure(timings, node, "hostNetwork: no CNI call", host_network=True)
    measure(timings, node, "our plugin, one-shot")
    agent = start_agent(node, tmp_path)
    try:
        measure(timings, node, "our plugin, agent")
        assert agent.served()
    finally:
        stop_agent(node, agent)
    # The reference ran there: its veths carry no owner alias (ours always set one).
    pod = reference_node.start(Pod("reference-check"))
    assert list(reference_node.host_veths().values()) == [""], reference_node.host_veths()
    reference_node.client.stop(pod.id)
    reference_node.client.remove(pod.id)
    measure(timings, reference_node, "reference bridge + host-local")
    if out := os.environ.get("CRI_TIMING_JSON"):
        samples = [s for s in timings.samples if s.runtime == "CRI"]
        Path(out).write_text(json.dumps([{"what": s.what, "seconds": s.seconds} for s in samples]))
