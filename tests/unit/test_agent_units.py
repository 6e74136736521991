"""`make install` / `make uninstall` and the agent's systemd units: written with ExecStart at
the launcher's final path, the socket root-only; enabled only where systemd runs; removed only
while they are still what install wrote."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
UNITS = ("cni-bridge-py-agent.socket", "cni-bridge-py-agent.service")


def make(target: str, destdir: Path, **variables: str) -> subprocess.CompletedProcess[str]:
    """The real Makefile target into a DESTDIR, with this interpreter as the venv's (the venv
    stamp taken as up to date: no pip run)."""
    assignments = [f"{k}={v}" for k, v in {"DESTDIR": str(destdir), **variables}.items()]
    return subprocess.run(
        ["make", "-s", "-o", ".venv/.installed", target, f"VENV_PY={sys.executable}", *assignments],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


@pytest.fixture
def systemctl(tmp_path: Path) -> Path:
    """A systemctl that only records its arguments, one call a line."""
    fake = tmp_path / "systemctl"
    fake.write_text(f'#!/bin/sh\necho "$@" >> {tmp_path}/systemctl.calls\n')
    fake.chmod(0o755)
    return fake


def calls(tmp_path: Path) -> list[str]:
    log = tmp_path / "systemctl.calls"
    return log.read_text().splitlines() if log.exists() else []


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_install_writes_the_units_and_a_destdir_install_enables_nothing(
    tmp_path: Path, systemctl: Path
) -> None:
    dest = tmp_path / "root"
    done = make("install", dest, CNI_BIN_DIR="/usr/libexec/cni", SYSTEMCTL=str(systemctl))
    assert done.returncode == 0, done.stderr
    unit_dir = dest / "etc/systemd/system"
    service = (unit_dir / UNITS[1]).read_text()
    assert "\nExecStart=/usr/libexec/cni/cni-bridge-py agent\n" in service
    assert (dest / "usr/libexec/cni/cni-bridge-py").is_file()
    socket_unit = (unit_dir / UNITS[0]).read_text()
    assert "\nListenStream=/run/cni-bridge-py/agent.sock\n" in socket_unit
    assert "\nSocketMode=0600\n" in socket_unit and "\nDirectoryMode=0700\n" in socket_unit
    for unit in UNITS:
        assert (unit_dir / unit).stat().st_mode & 0o777 == 0o644
    assert calls(tmp_path) == []  # staged for a package: nothing enabled


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_where_systemd_runs_install_enables_the_socket_and_uninstall_disables_it(
    tmp_path: Path, systemctl: Path
) -> None:
    dest = tmp_path / "root"
    variables = {"SYSTEMD_RUNNING": "yes", "SYSTEMCTL": str(systemctl)}
    assert make("install", dest, **variables).returncode == 0
    assert calls(tmp_path) == [
        "daemon-reload",
        "enable --now cni-bridge-py-agent.socket",
        "try-restart cni-bridge-py-agent.service",
    ]
    (tmp_path / "systemctl.calls").unlink()
    done = make("uninstall", dest, **variables)
    assert done.returncode == 0, done.stderr
    assert calls(tmp_path) == [
        "disable --now cni-bridge-py-agent.socket cni-bridge-py-agent.service",
        "daemon-reload",
    ]
    assert list((dest / "etc/systemd/system").iterdir()) == []
    assert list((dest / "opt/cni/bin").iterdir()) == []


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_uninstall_keeps_a_unit_someone_changed(tmp_path: Path, systemctl: Path) -> None:
    dest = tmp_path / "root"
    assert make("install", dest, SYSTEMCTL=str(systemctl)).returncode == 0
    service = dest / "etc/systemd/system" / UNITS[1]
    service.write_text(service.read_text() + "Environment=LOCAL=1\n")
    done = make("uninstall", dest, SYSTEMCTL=str(systemctl))
    assert done.returncode != 0 and "not removed" in done.stderr
    assert service.exists() and not (dest / "etc/systemd/system" / UNITS[0]).exists()
