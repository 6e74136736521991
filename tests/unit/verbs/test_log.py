"""The request log (log.py) over the fake world: the line's fields and steps, the levels, an
unwritable file, and stdout left alone."""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from cni_bridge_py import log
from cni_bridge_py.errors import InvalidConfig, IOFailure
from cni_bridge_py.ports import NO_STEPS
from cni_bridge_py.request import Notes
from cni_bridge_py.verbs import dispatch
from tests.doubles.world import World
from tests.unit.verbs.support import NETNS, NETWORK, netconf, request

ADD_STEPS = ["bridge", "ipam", "veth", "container", "gateway", "masquerade", "port"]


def logged_run(world: World, command: str, conf: dict[str, Any], **how: str) -> tuple[str, Notes]:
    """One verb through dispatch.run_logged, as the process edge runs it."""
    req = request(command, conf, **how)
    ports = world.ports()
    out = dispatch.run_logged(
        req,
        dispatch.prepare(req),
        ports.notes,
        lambda: contextlib.nullcontext(ports),
        time.perf_counter(),
    )
    return out, ports.notes


def lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_an_add_and_a_del_each_log_one_line_with_their_steps(world: World, tmp_path: Path) -> None:
    path = tmp_path / "cni.log"
    conf = netconf(logFile=str(path))
    logged_run(world, "ADD", conf)
    logged_run(world, "DEL", conf)
    add, delete = lines(path)
    assert add["verb"] == "ADD" and delete["verb"] == "DEL"
    for entry in (add, delete):
        assert entry["network"] == NETWORK
        assert entry["containerID"] == "red"
        assert entry["ifname"] == "eth0"
        assert entry["code"] == 0
        assert entry["ms"] >= sum(entry["steps"].values())
        assert entry["ts"].endswith("Z")
        assert "msg" not in entry and "netns" not in entry  # info: no details
    assert list(add["steps"]) == ADD_STEPS
    assert list(delete["steps"]) == ["link", "ipam", "firewall"]


def test_a_failed_add_logs_its_code_and_message(world: World, tmp_path: Path) -> None:
    path = tmp_path / "cni.log"
    with pytest.raises(IOFailure):
        logged_run(world, "ADD", netconf(logFile=str(path)), fault="veth")
    (entry,) = lines(path)
    assert entry["code"] == IOFailure.code
    assert "injected fault after step 'veth'" in entry["msg"]
    assert list(entry["steps"]) == ["bridge", "ipam", "veth"]


def test_level_error_logs_only_failed_requests(world: World, tmp_path: Path) -> None:
    path = tmp_path / "cni.log"
    conf = netconf(logFile=str(path), logLevel="error")
    out, _notes = logged_run(world, "ADD", conf)
    logged_run(world, "CHECK", {**conf, "prevResult": json.loads(out)})
    assert lines(path) == []
    with pytest.raises(IOFailure):
        blue = world.netns("/var/run/netns/blue")
        logged_run(world, "ADD", conf, cid="blue", netns=blue.path, fault="ipam")
    assert [e["containerID"] for e in lines(path)] == ["blue"]


def test_level_debug_adds_the_details(world: World, tmp_path: Path) -> None:
    path = tmp_path / "cni.log"
    logged_run(world, "ADD", netconf(logFile=str(path), logLevel="debug"))
    (entry,) = lines(path)
    assert entry["netns"] == NETNS
    assert entry["bridge"] == "cni0"
    assert list(entry["steps"]) == ADD_STEPS


def test_coarse_verbs_log_their_total(world: World, tmp_path: Path) -> None:
    path = tmp_path / "cni.log"
    conf = netconf(logFile=str(path), cniVersion="1.1.0")
    logged_run(world, "STATUS", conf)
    (entry,) = lines(path)
    assert entry["verb"] == "STATUS" and entry["steps"] == {} and entry["ms"] >= 0


def test_an_unknown_level_is_a_config_error(world: World, tmp_path: Path) -> None:
    with pytest.raises(InvalidConfig, match="logLevel") as caught:
        logged_run(world, "ADD", netconf(logFile=str(tmp_path / "x"), logLevel="verbose"))
    assert caught.value.code == 7
    assert "'verbose' is not one of 'error', 'info', 'debug'" in str(caught.value)


def test_a_relative_log_file_is_a_config_error(world: World) -> None:
    with pytest.raises(InvalidConfig, match="logFile"):
        logged_run(world, "ADD", netconf(logFile="cni.log"))


def test_an_unwritable_log_file_fails_nothing_and_leaves_a_note(
    world: World, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "missing-dir" / "cni.log"
    out, notes = logged_run(world, "ADD", netconf(logFile=str(path)))
    assert json.loads(out)["ips"]
    assert "request log not written" in notes.text() and str(path) in notes.text()
    assert capfd.readouterr() == ("", "")  # nothing on the process's stdout or stderr


def test_a_logged_request_writes_nothing_on_stdout(
    world: World, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "cni.log"
    out, _notes = logged_run(world, "ADD", netconf(logFile=str(path)))
    assert capfd.readouterr().out == ""
    assert json.loads(out)["cniVersion"] == "1.0.0"
    assert len(lines(path)) == 1


def test_without_a_log_file_the_verbs_mark_nothing(world: World) -> None:
    req = request("ADD", netconf())
    ports = world.ports()
    dispatch.run_logged(
        req, dispatch.prepare(req), ports.notes, lambda: contextlib.nullcontext(ports), 0.0
    )
    assert ports.steps is NO_STEPS


def test_a_line_is_one_append_write(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """One os.write per line on an O_APPEND descriptor: concurrent writers never interleave."""
    path = tmp_path / "cni.log"
    writes: list[bytes] = []
    real_write = os.write

    def spy(fd: int, data: bytes) -> int:
        assert os.get_blocking(fd) is not None  # a real descriptor
        writes.append(data)
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", spy)
    assert log.append_line(str(path), b'{"a": 1}\n') == ""
    assert log.append_line(str(path), b'{"a": 2}\n') == ""
    assert writes == [b'{"a": 1}\n', b'{"a": 2}\n']
    assert path.read_bytes() == b'{"a": 1}\n{"a": 2}\n'


def test_the_agent_line_reads_the_code_and_network() -> None:
    env = {b"CNI_COMMAND": b"ADD", b"CNI_CONTAINERID": b"c1", b"CNI_IFNAME": b"eth0"}
    error = '{"cniVersion": "1.0.0", "code": 7, "msg": "bad"}'
    entry = json.loads(log.agent_line(env, b'{"name": "n1"}', 1, error, 0.0123))
    assert entry["code"] == 7 and entry["network"] == "n1" and entry["ms"] == 12.3
    entry = json.loads(log.agent_line(env, b"{bad", 0, "{}", 0.001))
    assert entry["code"] == 0 and entry["network"] == ""


def test_the_timestamp_is_utc_with_milliseconds() -> None:
    assert log.timestamp(0.25) == "1970-01-01T00:00:00.250Z"
