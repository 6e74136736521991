"""Requests as a runtime sends them, run through the verb table against a fake world."""

from __future__ import annotations

import json
from typing import Any

from cni_bridge_py import front
from cni_bridge_py.request import Request
from cni_bridge_py.verbs import dispatch
from tests.doubles.world import World

NETWORK = "testnet"
BRIDGE = "cni0"
NETNS = "/var/run/netns/red"


def netconf(**top: Any) -> dict[str, Any]:
    """A gateway network with masquerade over host-local, as conf/ examples are."""
    conf: dict[str, Any] = {
        "cniVersion": "1.0.0",
        "name": NETWORK,
        "type": "bridge",
        "bridge": BRIDGE,
        "isGateway": True,
        "isDefaultGateway": True,
        "ipMasq": True,
        "ipam": {"type": "host-local", "subnet": "10.0.0.0/24"},
    }
    conf.update(top)
    return conf


def request(
    command: str,
    conf: dict[str, Any],
    *,
    cid: str = "red",
    netns: str = NETNS,
    ifname: str = "eth0",
    fault: str = "",
    args: str = "",
) -> Request:
    env = {
        "CNI_COMMAND": command,
        "CNI_CONTAINERID": cid,
        "CNI_NETNS": netns,
        "CNI_IFNAME": ifname,
        "CNI_PATH": "/opt/cni/bin",
    }
    if fault:
        env["CNI_BRIDGE_PY_FAULT"] = fault
    if args:
        env["CNI_ARGS"] = args
    return front.parse_request(env, json.dumps(conf).encode())


def run(world: World, command: str, conf: dict[str, Any], **how: str) -> str:
    """One verb as the process edge runs it: the config parsed for that verb, then the verb."""
    req = request(command, conf, **how)
    return dispatch.run(req, dispatch.prepare(req), world.ports())


def add(world: World, conf: dict[str, Any], **how: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(run(world, "ADD", conf, **how))
    return result


def with_prev(conf: dict[str, Any], result: dict[str, Any]) -> dict[str, Any]:
    return {**conf, "prevResult": result}
