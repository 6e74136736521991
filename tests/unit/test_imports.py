"""The pure core must answer VERSION and errors without loading kernel or firewall libraries."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cni_bridge_py.install import install
from tests.doubles.agent import FakeAgent

# Prefixes that must stay out of sys.modules: netlink, iptables, process spawning, sockets,
# and this project's own kernel-facing packages.
FORBIDDEN = (
    "pyroute2",
    "iptc",
    "subprocess",
    "ctypes",
    "socket",
    "cni_bridge_py.kernel",
    "cni_bridge_py.firewall",
    "cni_bridge_py.verbs",
    "cni_bridge_py.runner",
    "cni_bridge_py.inspect",
    "cni_bridge_py.doctor",
)
PURE = (
    "cni_bridge_py.front",
    "cni_bridge_py.config",
    "cni_bridge_py.result",
    "cni_bridge_py.ipam.allocator",
    "cni_bridge_py.ipam.ranges",
    "cni_bridge_py.version",
    "cni_bridge_py.errors",
)

# Prints, as the last line of stderr, the forbidden modules that got loaded.
REPORT = f"""
import json, sys
def report():
    found = sorted(m for m in sys.modules if m.startswith({FORBIDDEN!r}))
    sys.stderr.write("\\nLOADED " + json.dumps(found) + "\\n")
"""


def run(
    code: str, env: dict[str, str], stdin: bytes, cwd: Path
) -> subprocess.CompletedProcess[bytes]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("CNI_")}
    return subprocess.run(
        [sys.executable, "-c", REPORT + code],
        input=stdin,
        env={**base, **env},
        cwd=cwd,
        capture_output=True,
        check=False,
        timeout=60,
    )


def loaded(proc: subprocess.CompletedProcess[bytes]) -> list[str]:
    last = proc.stderr.decode().rstrip("\n").rsplit("\n", 1)[-1]
    assert last.startswith("LOADED "), proc.stderr.decode()
    found = json.loads(last.removeprefix("LOADED "))
    assert isinstance(found, list)
    return found


def test_forbidden_prefixes_are_detected(tmp_path: Path) -> None:
    proc = run("import subprocess\nreport()", {}, b"", tmp_path)
    assert loaded(proc) == ["subprocess"]


@pytest.mark.parametrize("module", PURE)
def test_pure_modules_import_no_kernel_code(module: str, tmp_path: Path) -> None:
    proc = run(f"import {module}\nreport()", {}, b"", tmp_path)
    assert proc.returncode == 0, proc.stderr.decode()
    assert loaded(proc) == []


def test_all_pure_modules_together(tmp_path: Path) -> None:
    imports = "\n".join(f"import {m}" for m in PURE)
    proc = run(f"{imports}\nreport()", {}, b"", tmp_path)
    assert loaded(proc) == []


PLUGIN = """
from cni_bridge_py.cli import plugin_main
rc = plugin_main()
sys.stdout.flush()
report()
sys.exit(rc)
"""

FULL_ENV = {
    "CNI_CONTAINERID": "c1",
    "CNI_NETNS": "/var/run/netns/x",
    "CNI_IFNAME": "eth0",
    "CNI_PATH": "/opt/cni/bin",
}
CONFIG = b'{"cniVersion":"1.0.0","name":"mynet","type":"bridge"}'


def test_version_request_loads_no_kernel_code(tmp_path: Path) -> None:
    proc = run(PLUGIN, {"CNI_COMMAND": "VERSION"}, b"", tmp_path)
    assert proc.returncode == 0
    assert json.loads(proc.stdout)["supportedVersions"][-1] == "1.1.0"
    assert loaded(proc) == []


def test_about_text_loads_no_kernel_code(tmp_path: Path) -> None:
    proc = run(PLUGIN, {}, b"", tmp_path)
    assert proc.returncode == 0
    assert proc.stdout == b""
    assert proc.stderr.startswith(b"CNI bridge plugin")
    assert loaded(proc) == []


@pytest.mark.parametrize(
    ("env", "stdin", "code"),
    [
        ({"CNI_COMMAND": "ADD"}, CONFIG, 4),
        ({"CNI_COMMAND": "ADD", **FULL_ENV}, b'{"cniVersion":', 6),
        ({"CNI_COMMAND": "ADD", **FULL_ENV}, b'{"cniVersion":"9.9.9","name":"mynet"}', 1),
        ({"CNI_COMMAND": "FROB", **FULL_ENV}, CONFIG, 4),
        ({"CNI_COMMAND": "ADD", **FULL_ENV, "CNI_ARGS": "FOO=bar"}, CONFIG, 4),
    ],
)
def test_error_requests_load_no_kernel_code(
    env: dict[str, str], stdin: bytes, code: int, tmp_path: Path
) -> None:
    proc = run(PLUGIN, env, stdin, tmp_path)
    assert proc.returncode == 1
    assert json.loads(proc.stdout)["code"] == code
    assert loaded(proc) == []


# The installed launcher (python -IS) loads, beyond what the interpreter loads to start,
# exactly these: no os, json, struct, base64, re or typing on the paths every call takes.
FRONT_VERSION = {"cni_bridge_py", "cni_bridge_py.cli", "cni_bridge_py.version"}
FRONT_AGENT = {
    "cni_bridge_py",
    "cni_bridge_py.cli",
    "cni_bridge_py.agent",
    "cni_bridge_py.agent.client",
    "cni_bridge_py.agent.protocol",
    "_socket",
}


def imported_by(argv: list[str], env: dict[str, str], stdin: bytes = b"") -> set[str]:
    """Every module `python -X importtime` reports for the run."""
    proc = subprocess.run(
        [sys.executable, "-IS", "-X", "importtime", *argv],
        input=stdin,
        env=env,
        capture_output=True,
        check=False,
        timeout=60,
    )
    lines = [ln for ln in proc.stderr.decode().splitlines() if ln.startswith("import time:")]
    return {ln.rsplit("|", 1)[1].strip() for ln in lines[1:]}  # the first is the header


@pytest.fixture(scope="module")
def launcher(tmp_path_factory: pytest.TempPathFactory) -> Path:
    bin_dir = tmp_path_factory.mktemp("bin")
    install(bin_dir, python=sys.executable)
    return bin_dir / "cni-bridge-py"


def test_the_interpreter_start_is_measured() -> None:
    start = imported_by(["-c", "pass"], {})
    assert "encodings" in start and "os" not in start and "site" not in start


def test_version_loads_only_its_own_modules(launcher: Path) -> None:
    start = imported_by(["-c", "pass"], {})
    assert imported_by([str(launcher)], {"CNI_COMMAND": "VERSION"}) - start == FRONT_VERSION


def test_a_request_handed_to_the_agent_loads_only_the_client(
    launcher: Path, tmp_path: Path
) -> None:
    start = imported_by(["-c", "pass"], {})
    with FakeAgent(tmp_path / "agent.sock") as agent:
        env = {"CNI_COMMAND": "ADD", **FULL_ENV, "CNI_BRIDGE_PY_AGENT": str(agent.path)}
        loaded = imported_by([str(launcher)], env, CONFIG)
        assert len(agent.seen) == 1
    assert loaded - start == FRONT_AGENT


# A one-shot error (the agent off, the config not JSON): the front alone, without json, re,
# typing, dataclasses, traceback or os (each costs a one-shot run milliseconds).
FRONT_ERROR = {
    "__future__",
    "_json",
    "cni_bridge_py",
    "cni_bridge_py.answer",
    "cni_bridge_py.cjson",
    "cni_bridge_py.cli",
    "cni_bridge_py.errors",
    "cni_bridge_py.faults",
    "cni_bridge_py.front",
    "cni_bridge_py.record",
    "cni_bridge_py.request",
    "cni_bridge_py.validate",
    "cni_bridge_py.version",
}


@pytest.mark.parametrize(
    "stdin",
    [b'{"cniVersion":', b'{"cniVersion":"1.0.0","name":"bad name!"}', b'{"cniVersion":"9"}'],
)
def test_a_one_shot_error_loads_only_the_front(launcher: Path, stdin: bytes) -> None:
    start = imported_by(["-c", "pass"], {})
    env = {"CNI_COMMAND": "ADD", **FULL_ENV, "CNI_BRIDGE_PY_AGENT": "off"}
    loaded = imported_by([str(launcher)], env, stdin)
    assert loaded - start == FRONT_ERROR
    assert not loaded & {"json", "re", "typing", "dataclasses", "traceback", "os", "enum"}


def test_the_cli_knows_the_agents_socket_names() -> None:
    from cni_bridge_py import cli
    from cni_bridge_py.agent import protocol

    assert cli.AGENT_ENV.decode() == protocol.SOCKET_ENV
    assert cli.DEFAULT_AGENT_SOCKET.decode() == protocol.DEFAULT_SOCKET


def test_a_one_shot_error_with_no_agent_listening_loads_only_the_front(
    launcher: Path, tmp_path: Path
) -> None:
    start = imported_by(["-c", "pass"], {})
    env = {"CNI_COMMAND": "ADD", **FULL_ENV, "CNI_BRIDGE_PY_AGENT": str(tmp_path / "none.sock")}
    assert imported_by([str(launcher)], env, b"{bad") - start == FRONT_ERROR
