"""The IPAM modules' import discipline: only delegate.py spawns processes, and the engine
loads it only for a delegated ipam.type."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

FORBIDDEN = ("pyroute2", "iptc", "subprocess", "socket", "cni_bridge_py.kernel")
PURE = (
    "cni_bridge_py.ipam.config",
    "cni_bridge_py.ipam.gc",
    "cni_bridge_py.ipam.interface",
    "cni_bridge_py.ipam.resolvconf",
    "cni_bridge_py.ipam.status",
    "cni_bridge_py.ipam.store",
    "cni_bridge_py.ipam.engine",
)


def loaded_after(code: str, cwd: Path) -> list[str]:
    script = (
        f"import json, sys\n{code}\n"
        f"print(json.dumps(sorted(m for m in sys.modules if m.startswith({FORBIDDEN!r}))))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, check=True, cwd=cwd, timeout=60
    )
    found = json.loads(proc.stdout)
    assert isinstance(found, list)
    return found


@pytest.mark.parametrize("module", PURE)
def test_ipam_modules_spawn_nothing(module: str, tmp_path: Path) -> None:
    assert loaded_after(f"import {module}", tmp_path) == []


def test_engine_loads_the_delegate_only_for_other_types(tmp_path: Path) -> None:
    code = """
from cni_bridge_py import config
from cni_bridge_py.ipam.engine import ipam_for
from cni_bridge_py.request import Notes
from tests.doubles.store import MemoryStore
base = {"cniVersion": "1.0.0", "name": "n", "type": "bridge"}
def build(ipam):
    conf = config.parse({**base, "ipam": ipam}, "1.0.0")
    return ipam_for(conf.ipam, None, lambda d, n: MemoryStore(), Notes())
build({"type": "host-local", "subnet": "10.0.0.0/24"})
assert "cni_bridge_py.ipam.delegate" not in sys.modules
build({"type": "static"})
"""
    assert loaded_after(code, tmp_path) == ["subprocess"]
