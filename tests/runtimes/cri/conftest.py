"""The node of the CRI tests, and the two ways our plugin runs on it: one-shot, and handing
each call to the resident agent. A node is made once per test module (containerd, the pause
image, the plugins); every test leaves it with no pod, and each lane is checked to have run
the way it says (the agent served the calls, or no agent ran)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.runtimes.cri.node import NODE_PLUGINS, Node
from tests.runtimes.support import require_tools, unavailable
from tests.support.agent import Agent
from tests.support.plugin import LAUNCHER, REFERENCE_DIR

NodeFactory = Callable[..., Node]
MODES = ("one-shot", "agent")


@pytest.fixture(scope="module")
def cri_ready(readme_ready: None) -> None:
    require_tools(
        "containerd's CRI plugin",
        {
            "containerd": "containerd",
            "ctr": "containerd",
            "containerd-shim-runc-v2": "containerd",
            "runc": "runc",
            "/bin/busybox": "busybox-static",
            "tc": "iproute2",
            "iptables": "iptables",
        },
    )
    missing = [p for p in NODE_PLUGINS if not (REFERENCE_DIR / p).is_file()]
    if missing:
        unavailable(f"{missing} missing: apt-get install containernetworking-plugins")


@pytest.fixture(scope="module")
def nodes(cri_ready: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeFactory]:
    """nodes(**Node options) -> a node of this module; each is closed at the end of the module
    (pods, daemon, namespaces), and the module fails if one had to be forced."""
    made: list[Node] = []

    def make(**options: Any) -> Node:
        node = Node(tmp_path_factory.mktemp("node"), **options)
        made.append(node)
        return node

    try:
        yield make
    finally:
        problems = [problem for node in made for problem in node.close()]
        assert not problems, problems


@pytest.fixture(scope="module")
def node(nodes: NodeFactory) -> Node:
    """The node of conf/k8s-node.conflist with our plugin installed as the README says."""
    return nodes()


@dataclass
class Lane:
    mode: str
    node: Node
    agent: Agent | None

    def check_mode(self) -> None:
        """The calls went where the lane says: to the agent, or to one-shot processes."""
        if self.agent is not None:
            assert self.agent.alive() and self.agent.served(), "the agent served no call"
        else:
            assert not self.node.agent_socket.exists(), "an agent socket exists (one-shot lane)"


@pytest.fixture(params=MODES)
def lane(request: pytest.FixtureRequest, node: Node, tmp_path: Path) -> Iterator[Lane]:
    """The module's node with our plugin one-shot or with its agent (started for the test,
    inside the node: its network namespace is the one the plugin runs in). After the test,
    every pod still there is stopped and removed."""
    agent = start_agent(node, tmp_path) if request.param == "agent" else None
    try:
        yield Lane(request.param, node, agent)
    finally:
        try:
            problems = node.remove_all_pods()
            assert not problems, problems
        finally:
            if agent is not None:
                stop_agent(node, agent)


def start_agent(node: Node, workdir: Path) -> Agent:
    """Our agent on the node, on the socket containerd's plugins are told to use."""
    launcher = Path("/opt/cni/bin") / LAUNCHER  # as the node sees it
    return Agent(node, launcher, workdir, socket=node.agent_socket).start()


def stop_agent(node: Node, agent: Agent) -> None:
    """Stop it, and leave no socket file: the one-shot lanes check that there is none."""
    agent.stop()
    node.agent_socket.unlink(missing_ok=True)
