"""Structured request logs: one JSON line per request, appended to a file (never stdout).

The config's `logFile`/`logLevel` give the plugin's line (verb, network, container, ifname,
CNI code, each step's time); `CNI_BRIDGE_PY_LOG` gives the agent's own line per request.
Only loaded when a log is configured: without one, a request pays for nothing but the
verbs' no-op `ports.steps.mark` calls (ports.NoSteps).

A line is written with one os.write on an O_APPEND descriptor, so lines of concurrent
requests (one-shot processes, agent workers) never interleave. A log that cannot be written
never fails the request: the reason goes to the request's notes (the runtime's stderr).
"""

from __future__ import annotations

import os
import time
from types import TracebackType

from cni_bridge_py import cjson
from cni_bridge_py.errors import CniError
from cni_bridge_py.request import Notes, Request

# Ordered from the fewest lines to the most: "error" logs failed requests only, "info" every
# request, "debug" also the details of each (netns, bridge, the notes for the runtime).
LEVELS = ("error", "info", "debug")
DEFAULT_LEVEL = "info"
# The agent's own per-request log file (agent/server.py).
AGENT_LOG_ENV = "CNI_BRIDGE_PY_LOG"
# The code of an error that is not a CniError (a bug): what the front answers for it.
INTERNAL_CODE = 999


class StepTimer:
    """ports.Steps that records, per step, the milliseconds since the previous mark."""

    __slots__ = ("_last", "steps")

    def __init__(self, started: float) -> None:
        self._last = started
        self.steps: dict[str, float] = {}

    def mark(self, step: str) -> None:
        now = time.perf_counter()
        self.steps[step] = _ms(now - self._last)
        self._last = now


class RequestLog:
    """Around one request's run: on exit, its line (when the level wants it) goes to `path`.
    Exceptions pass through untouched; only their CNI code is read."""

    def __init__(
        self, request: Request, notes: Notes, *, network: str, path: str, level: str, started: float
    ) -> None:
        self.request = request
        self.network = network
        self.path = path
        self.level = level
        self.notes = notes
        self.started = started
        self.steps = StepTimer(started)
        # Extra fields for "debug" lines (the verbs' context: netns, bridge).
        self.detail: dict[str, object] = {}

    def __enter__(self) -> RequestLog:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        code, msg = _outcome(exc)
        if code == 0 and self.level == "error":
            return
        line = self.line(code, msg, time.perf_counter(), time.time())
        problem = append_line(self.path, line)
        if problem:
            self.notes.add(f"cni-bridge-py: request log not written: {problem}")

    def line(self, code: int, msg: str, now: float, wall: float) -> bytes:
        request = self.request
        entry: dict[str, object] = {
            "ts": timestamp(wall),
            "verb": request.command,
            "network": self.network,
            "containerID": request.container_id,
            "ifname": request.ifname,
            "code": code,
            "ms": _ms(now - self.started),
            "steps": self.steps.steps,
        }
        if msg:
            entry["msg"] = msg
        if self.level == "debug":
            entry["netns"] = request.netns
            entry.update(self.detail)
            if notes := self.notes.text():
                entry["notes"] = notes
        return (cjson.dumps(entry) + "\n").encode("utf-8", "backslashreplace")


def agent_line(
    env: dict[bytes, bytes], stdin: bytes, exit_code: int, stdout: str, seconds: float
) -> bytes:
    """The agent's line for one request it answered: what it knows without the verbs (the
    code of an error answer, the config's network name), from accept to reply."""
    code = 0
    if exit_code:
        found = _json_field(stdout.encode("utf-8", "surrogateescape"), "code", INTERNAL_CODE)
        code = found if isinstance(found, int) else INTERNAL_CODE
    network = _json_field(stdin, "name", "")
    entry = {
        "ts": timestamp(time.time()),
        "verb": _text(env.get(b"CNI_COMMAND")),
        "network": network if isinstance(network, str) else "",
        "containerID": _text(env.get(b"CNI_CONTAINERID")),
        "ifname": _text(env.get(b"CNI_IFNAME")),
        "code": code,
        "ms": _ms(seconds),
    }
    return (cjson.dumps(entry) + "\n").encode("utf-8", "backslashreplace")


def append_line(path: str, line: bytes) -> str:
    """One write on an O_APPEND file (created 0640): "" when written, else why not."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
    except OSError as exc:
        return f"{path}: {exc.strerror or exc}"
    try:
        os.write(fd, line)
    except OSError as exc:
        return f"{path}: {exc.strerror or exc}"
    finally:
        os.close(fd)
    return ""


def timestamp(wall: float) -> str:
    """UTC, ISO 8601 with milliseconds: 2026-12-03T05:16:41.123Z."""
    millis = int(wall * 1000) % 1000
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(wall)) + f".{millis:03d}Z"


def _outcome(exc: BaseException | None) -> tuple[int, str]:
    if exc is None:
        return 0, ""
    if isinstance(exc, CniError):
        return exc.code, str(exc)
    return INTERNAL_CODE, f"internal error: {type(exc).__name__}: {exc}"


def _json_field(data: bytes, key: str, default: object) -> object:
    try:
        found = cjson.loads(data)
    except (ValueError, RecursionError):
        return default
    return found.get(key, default) if isinstance(found, dict) else default


def _text(value: bytes | None) -> str:
    return (value or b"").decode("utf-8", "backslashreplace")


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 3)
