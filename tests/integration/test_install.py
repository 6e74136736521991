"""The launcher `make install` writes works the way a runtime executes it: a bare environment
(`env -i`, only CNI_* and a minimal PATH, no venv), also under an alias symlink."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from cni_bridge_py.install import launcher_interpreter
from tests.support.netns import Namespace, NamespaceFactory
from tests.support.plugin import MINIMAL_PATH

VERSION_BYTES = (
    b'{"cniVersion":"1.1.0","supportedVersions":'
    b'["0.1.0","0.2.0","0.3.0","0.3.1","0.4.0","1.0.0","1.1.0"]}\n'
)


def env_i(
    host: Namespace, executable: Path, env: dict[str, str], stdin: bytes = b""
) -> subprocess.CompletedProcess[bytes]:
    """`ip netns exec HOST env -i K=V... EXECUTABLE`: nothing inherited from this process."""
    assignments = [f"{k}={v}" for k, v in {"PATH": MINIMAL_PATH, **env}.items()]
    return subprocess.run(
        ["ip", "netns", "exec", host.name, "env", "-i", *assignments, str(executable)],
        input=stdin,
        capture_output=True,
        check=False,
        timeout=60,
    )


@pytest.mark.parametrize("name", ["cni-bridge-py", "bridge-py-alias"])
def test_version_is_byte_exact(installed: Path, host: Namespace, name: str) -> None:
    proc = env_i(host, installed / name, {"CNI_COMMAND": "VERSION"}, stdin=b"{}")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == VERSION_BYTES
    assert proc.stderr == b""


def test_no_command_prints_about_to_stderr(installed: Path, host: Namespace) -> None:
    proc = env_i(host, installed / "cni-bridge-py", {})
    assert proc.returncode == 0
    assert proc.stdout == b""
    lines = proc.stderr.decode().splitlines()
    assert len(lines) == 2 and lines[0].startswith("CNI bridge plugin"), lines
    assert lines[1] == (
        "CNI protocol versions supported: 0.1.0, 0.2.0, 0.3.0, 0.3.1, 0.4.0, 1.0.0, 1.1.0"
    )


def test_launcher_layout(installed: Path) -> None:
    launcher = installed / "cni-bridge-py"
    assert os.access(launcher, os.X_OK)
    text = launcher.read_text()
    assert text.splitlines()[0] == "#!/bin/sh"  # answers VERSION, then execs Python
    interpreter, flags = launcher_interpreter(text)
    assert Path(interpreter).is_absolute() and os.access(interpreter, os.X_OK)
    # Isolated (no PYTHON* variables, no user site) and without site.
    assert flags == "-IS"
    alias = installed / "bridge-py-alias"
    assert alias.is_symlink() and alias.resolve() == launcher.resolve()


def test_add_and_del_through_alias_with_bare_environment(
    installed: Path,
    host: Namespace,
    namespaces: NamespaceFactory,
    netconf: dict[str, Any],
    data_dir: Path,
) -> None:
    host.exec("ip", "link", "set", "lo", "up")
    red = namespaces.new("red")
    env = {
        "CNI_CONTAINERID": "red1",
        "CNI_NETNS": red.path,
        "CNI_IFNAME": "eth0",
        "CNI_PATH": str(installed),
    }
    stdin = json.dumps(netconf).encode()
    alias = installed / "bridge-py-alias"

    add = env_i(host, alias, {**env, "CNI_COMMAND": "ADD"}, stdin)
    assert add.returncode == 0, add.stdout + add.stderr
    assert json.loads(add.stdout)["ips"][0]["address"] == "192.168.15.1/24"
    assert red.addresses("eth0") == ["192.168.15.1/24"]
    assert len(host.nat_rules()) == 4

    dele = env_i(host, alias, {**env, "CNI_COMMAND": "DEL"}, stdin)
    assert dele.returncode == 0, dele.stdout + dele.stderr
    assert dele.stdout == b""
    assert red.link_names() == ["lo"]
    assert host.nat_rules() == []
    assert not (data_dir / "testnet" / "192.168.15.1").exists()


def test_error_with_bare_environment_is_json_on_stdout(installed: Path, host: Namespace) -> None:
    proc = env_i(host, installed / "cni-bridge-py", {"CNI_COMMAND": "ADD"}, b"{}")
    assert proc.returncode == 1
    body = json.loads(proc.stdout)
    assert body["code"] == 4 and "missing" in body["msg"]
    assert b"Traceback" not in proc.stdout + proc.stderr
