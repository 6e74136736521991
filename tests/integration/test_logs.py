"""The request log (logFile, logLevel, CNI_BRIDGE_PY_LOG) from the installed executable."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.support.agent import Agent
from tests.support.netns import NamespaceFactory
from tests.support.plugin import Plugin

ADD_STEPS = ["bridge", "ipam", "veth", "container", "gateway", "masquerade", "port"]


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_add_and_del_log_their_steps(
    plugin: Plugin, namespaces: NamespaceFactory, netconf: dict[str, Any], tmp_path: Path
) -> None:
    path = tmp_path / "cni.log"
    conf = {**netconf, "logFile": str(path)}
    red = namespaces.new("red")
    added = plugin.run("ADD", conf, container_id="red", netns=red.path).ok()
    assert json.loads(added.stdout)["ips"][0]["address"] == "192.168.15.1/24"
    assert added.stderr == ""
    plugin.run("DEL", conf, container_id="red", netns=red.path).ok()
    add, delete = lines(path)
    assert (add["verb"], add["network"], add["containerID"], add["ifname"], add["code"]) == (
        "ADD",
        "testnet",
        "red",
        "eth0",
        0,
    )
    assert list(add["steps"]) == ADD_STEPS
    assert add["ms"] >= sum(add["steps"].values()) > 0
    assert delete["verb"] == "DEL" and delete["code"] == 0
    assert list(delete["steps"]) == ["link", "ipam", "firewall"]


def test_a_failed_add_logs_its_code(
    plugin: Plugin, namespaces: NamespaceFactory, netconf: dict[str, Any], tmp_path: Path
) -> None:
    path = tmp_path / "cni.log"
    conf = {**netconf, "logFile": str(path), "logLevel": "error"}
    red = namespaces.new("red")
    fault = {"CNI_BRIDGE_PY_FAULT": "container"}
    plugin.run("ADD", conf, container_id="red", netns=red.path, extra_env=fault).error(5)
    plugin.run("ADD", conf, container_id="red", netns=red.path).ok()  # "error": not logged
    (entry,) = lines(path)
    assert entry["code"] == 5 and "injected fault" in entry["msg"]
    assert list(entry["steps"]) == ADD_STEPS[:4]


def test_an_unwritable_log_still_answers_add(
    plugin: Plugin, namespaces: NamespaceFactory, netconf: dict[str, Any], tmp_path: Path
) -> None:
    conf = {**netconf, "logFile": str(tmp_path / "no-such-dir" / "cni.log")}
    red = namespaces.new("red")
    added = plugin.run("ADD", conf, container_id="red", netns=red.path).ok()
    assert json.loads(added.stdout)["ips"][0]["address"] == "192.168.15.1/24"  # stdout: JSON only
    assert "request log not written" in added.stderr
    assert red.addresses("eth0") == ["192.168.15.1/24"]


def test_an_unknown_level_is_a_config_error(
    plugin: Plugin, namespaces: NamespaceFactory, netconf: dict[str, Any], tmp_path: Path
) -> None:
    conf = {**netconf, "logFile": str(tmp_path / "cni.log"), "logLevel": "loud"}
    red = namespaces.new("red")
    body = plugin.run("ADD", conf, container_id="red", netns=red.path).error(7)
    assert "logLevel" in body["msg"] + body.get("details", "")
    assert plugin.host.links("veth") == []


def test_the_agent_writes_its_lines_to_cni_bridge_py_log(
    plugin: Plugin, namespaces: NamespaceFactory, netconf: dict[str, Any], tmp_path: Path
) -> None:
    agent_log = tmp_path / "agent.log"
    conf_log = tmp_path / "cni.log"
    conf = {**netconf, "logFile": str(conf_log)}
    red = namespaces.new("red")
    agent = Agent(
        plugin.host,
        plugin.executable,
        tmp_path,
        socket=tmp_path / "agent.sock",
        extra_env={"CNI_BRIDGE_PY_LOG": str(agent_log)},
    )
    with agent:
        env = agent.env()
        plugin.run("ADD", conf, container_id="red", netns=red.path, extra_env=env).ok()
        plugin.run(
            "ADD", {**conf, "mtu": "x"}, container_id="c2", netns=red.path, extra_env=env
        ).error(7)
        plugin.run("DEL", conf, container_id="red", netns=red.path, extra_env=env).ok()
    assert [(e["verb"], e["containerID"], e["code"]) for e in lines(agent_log)] == [
        ("ADD", "red", 0),
        ("ADD", "c2", 7),
        ("DEL", "red", 0),
    ]
    assert all(e["network"] == "testnet" and e["ms"] > 0 for e in lines(agent_log))
    # The config's logFile is written by the agent's workers as by the one-shot plugin.
    assert [(e["verb"], list(e["steps"])[:1]) for e in lines(conf_log)] == [
        ("ADD", ["bridge"]),
        ("DEL", ["link"]),
    ]
