"""`make install` lays the plugins out the way runtimes look for them (CNI_BIN_DIR, default
/opt/cni/bin; CNI_CONF_DIR, default /etc/cni/net.d; DESTDIR honoured) with the agent's systemd
units (SYSTEMD_UNIT_DIR, default /etc/systemd/system), installs no config unless asked, and
`make uninstall` / `make uninstall-conf` remove exactly what was installed.
Everything goes into a temporary DESTDIR: no root needed, the host's dirs are never touched.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.runtimes.support import REPO
from tests.support.plugin import MINIMAL_PATH

SEED = REPO / "conf" / "mynet.conflist"


def make(*args: str) -> subprocess.CompletedProcess[str]:
    """`make ARGS` in the repository, with this interpreter as the venv's python and the venv
    taken as up to date (the test must not reinstall it)."""
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    proc = subprocess.run(
        [
            "make",
            "--no-print-directory",
            "-C",
            str(REPO),
            "-o",
            ".venv/.installed",
            f"VENV_PY={sys.executable}",
            *args,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, f"make {' '.join(args)}:\n{proc.stdout}\n{proc.stderr}"
    return proc


def tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if not p.is_dir())


def bare_env_run(executable: Path, env: dict[str, str]) -> subprocess.CompletedProcess[bytes]:
    """What a runtime does: exec with its own minimal environment (`env -i`)."""
    assignments = [f"{k}={v}" for k, v in {"PATH": MINIMAL_PATH, **env}.items()]
    return subprocess.run(
        ["env", "-i", *assignments, str(executable)],
        input=b"{}",
        capture_output=True,
        check=False,
        timeout=60,
    )


UNITS = [
    "etc/systemd/system/cni-bridge-py-agent.service",
    "etc/systemd/system/cni-bridge-py-agent.socket",
]


def test_make_install_defaults_destdir_and_no_config(tmp_path: Path) -> None:
    make("install", f"DESTDIR={tmp_path}")
    assert tree(tmp_path) == [
        *UNITS,
        "opt/cni/bin/cni-bridge-py",
        "opt/cni/bin/cni-host-local-py",
    ]
    for name in ("cni-bridge-py", "cni-host-local-py"):
        proc = bare_env_run(tmp_path / "opt/cni/bin" / name, {"CNI_COMMAND": "VERSION"})
        assert proc.returncode == 0, proc.stderr
        assert "1.0.0" in json.loads(proc.stdout)["supportedVersions"]

    make("uninstall", f"DESTDIR={tmp_path}")
    assert tree(tmp_path) == []


def test_make_overridden_dirs_aliases_config_and_exact_uninstall(tmp_path: Path) -> None:
    dirs = [f"DESTDIR={tmp_path}", "CNI_BIN_DIR=/usr/libexec/cni", "CNI_CONF_DIR=/etc/cni/alt.d"]
    bin_dir, conf_dir = tmp_path / "usr/libexec/cni", tmp_path / "etc/cni/alt.d"
    bin_dir.mkdir(parents=True)
    (bin_dir / "portmap").write_bytes(b"\x7fELF another plugin")  # not ours: must survive

    make("install", *dirs, "ALIASES=bridge host-local")
    make("install-conf", *dirs, f"NET={SEED.relative_to(REPO)}")
    assert sorted(p.name for p in bin_dir.iterdir()) == [
        "bridge",
        "cni-bridge-py",
        "cni-host-local-py",
        "host-local",
        "portmap",
    ]
    assert os.readlink(bin_dir / "bridge") == "cni-bridge-py"
    assert os.readlink(bin_dir / "host-local") == "cni-host-local-py"
    assert (conf_dir / SEED.name).read_bytes() == SEED.read_bytes()

    # Through the alias, as a runtime configured for the reference would run it.
    proc = bare_env_run(bin_dir / "bridge", {"CNI_COMMAND": "VERSION"})
    assert proc.returncode == 0 and b"supportedVersions" in proc.stdout, proc.stderr

    make("uninstall", *dirs, "ALIASES=bridge host-local")
    assert tree(tmp_path) == ["etc/cni/alt.d/mynet.conflist", "usr/libexec/cni/portmap"]
    make("uninstall-conf", *dirs, f"NET={SEED.relative_to(REPO)}")
    assert tree(tmp_path) == ["usr/libexec/cni/portmap"]


def test_make_uninstall_conf_keeps_a_changed_file(tmp_path: Path) -> None:
    make("install-conf", f"DESTDIR={tmp_path}", f"NET={SEED.relative_to(REPO)}")
    installed = tmp_path / "etc/cni/net.d" / SEED.name
    installed.write_text(installed.read_text().replace("v-net-0", "v-net-9"))
    with pytest.raises(AssertionError, match="not removed"):
        make("uninstall-conf", f"DESTDIR={tmp_path}", f"NET={SEED.relative_to(REPO)}")
    assert installed.exists()
