"""cni-host-local-py in process: the front's rules, every verb, result shapes per version,
and what it loads (no process spawning, no kernel library)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from cni_bridge_py.install import ENTRY_MODULES, EXECUTABLES, launcher_text
from cni_bridge_py.ipam import plugin as hostlocal_plugin


def netconf(data_dir: Path, version: str = "1.0.0", **ipam: Any) -> dict[str, Any]:
    section = {"type": "cni-host-local-py", "subnet": "10.7.0.0/29", "dataDir": str(data_dir)}
    return {"cniVersion": version, "name": "ptpnet", "type": "ptp", "ipam": {**section, **ipam}}


def call(
    command: str, conf: dict[str, Any] | bytes, cid: str = "red", **env: str
) -> tuple[int, Any]:
    full = {
        "CNI_COMMAND": command,
        "CNI_CONTAINERID": cid,
        "CNI_NETNS": "/var/run/netns/red",
        "CNI_IFNAME": "eth0",
        "CNI_PATH": "/opt/cni/bin",
        **env,
    }
    stdin = conf if isinstance(conf, bytes) else json.dumps(conf).encode()
    response = hostlocal_plugin.handle(full, stdin)
    assert response.stderr == ""
    return response.exit_code, json.loads(response.stdout) if response.stdout else None


def files(data_dir: Path, network: str = "ptpnet") -> dict[str, bytes]:
    directory = data_dir / network
    return (
        {p.name: p.read_bytes() for p in sorted(directory.iterdir())} if directory.is_dir() else {}
    )


def test_about_and_version() -> None:
    about = hostlocal_plugin.handle({}, b"")
    assert about.exit_code == 0 and about.stdout == ""
    assert about.stderr.startswith("CNI host-local IPAM plugin (cni-host-local-py)")
    version = hostlocal_plugin.handle({"CNI_COMMAND": "VERSION"}, b"junk")
    assert json.loads(version.stdout)["supportedVersions"][-1] == "1.1.0"


def test_add_prints_the_ipam_result(tmp_path: Path) -> None:
    code, out = call("ADD", netconf(tmp_path, routes=[{"dst": "0.0.0.0/0"}]))
    assert code == 0
    assert out == {
        "cniVersion": "1.0.0",
        "ips": [{"address": "10.7.0.2/29", "gateway": "10.7.0.1"}],
        "routes": [{"dst": "0.0.0.0/0"}],
        "dns": {},
    }
    assert files(tmp_path)["10.7.0.2"] == b"red\r\neth0"


def test_add_in_0_3_1_and_0_2_0_shapes(tmp_path: Path) -> None:
    _, out = call("ADD", netconf(tmp_path, "0.3.1"), "a")
    assert out["ips"] == [{"version": "4", "address": "10.7.0.2/29", "gateway": "10.7.0.1"}]
    _, out = call("ADD", netconf(tmp_path, "0.2.0"), "b")
    assert out == {
        "cniVersion": "0.2.0",
        "ip4": {"ip": "10.7.0.3/29", "gateway": "10.7.0.1"},
        "dns": {},
    }


def test_requested_ip_from_cni_args(tmp_path: Path) -> None:
    _, out = call("ADD", netconf(tmp_path), CNI_ARGS="IgnoreUnknown=1;IP=10.7.0.5")
    assert out["ips"][0]["address"] == "10.7.0.5/29"


def test_range_only_from_runtime_ip_ranges(tmp_path: Path) -> None:
    conf = netconf(tmp_path)
    del conf["ipam"]["subnet"]
    conf["runtimeConfig"] = {"ipRanges": [[{"subnet": "10.9.0.0/29"}]]}
    code, out = call("ADD", conf)
    assert code == 0 and out["ips"][0]["address"] == "10.9.0.2/29"
    assert call("DEL", conf) == (0, None)


def test_del_check_and_errors(tmp_path: Path) -> None:
    conf = netconf(tmp_path)
    call("ADD", conf)
    assert call("CHECK", conf) == (0, None)
    code, err = call("CHECK", conf, "ghost")
    assert code == 1 and err["code"] == 3
    assert call("DEL", conf) == (0, None)
    assert call("DEL", conf) == (0, None)  # idempotent
    assert sorted(files(tmp_path)) == ["last_reserved_ip.0", "lock"]


def test_exhaustion_is_code_11(tmp_path: Path) -> None:
    conf = netconf(tmp_path, subnet="10.7.0.0/30")
    call("ADD", conf, "a")
    code, err = call("ADD", conf, "b")
    assert code == 1 and err["code"] == 11
    assert err["msg"] == (
        "failed to allocate for range 0: no IP addresses available in range set: 10.7.0.1-10.7.0.2"
    )


def test_gc_keeps_valid_attachments(tmp_path: Path) -> None:
    for cid in ("a", "b"):
        call("ADD", netconf(tmp_path), cid)
    gc_conf = {
        **netconf(tmp_path, "1.1.0"),
        "cni.dev/valid-attachments": [{"containerID": "b", "ifname": "eth0"}],
    }
    assert call("GC", gc_conf, "", CNI_IFNAME="", CNI_NETNS="") == (0, None)
    assert [n for n in files(tmp_path) if n.startswith("10.")] == ["10.7.0.3"]


def test_status(tmp_path: Path) -> None:
    conf = netconf(tmp_path, "1.1.0", subnet="10.7.0.0/30")
    assert call("STATUS", conf, "") == (0, None)
    call("ADD", conf, "a")
    code, err = call("STATUS", conf, "")
    assert code == 1 and err["code"] == 50
    (tmp_path / "blocker").write_text("")
    code, err = call("STATUS", netconf(tmp_path / "blocker", "1.1.0"), "")
    assert code == 1 and err["code"] == 50 and "cannot record reservations" in err["msg"]


@pytest.mark.parametrize(
    ("conf", "code", "text"),
    [
        ({"cniVersion": "1.0.0", "name": "n"}, 7, "IPAM config missing 'ipam' key"),
        ({"cniVersion": "1.0.0", "name": "n", "ipam": "x"}, 7, '"ipam"'),
        ({"cniVersion": "1.0.0", "name": "n", "ipam": {"type": "x"}}, 7, "no IP ranges"),
        ({"cniVersion": "9.9.9", "name": "n", "ipam": {}}, 1, "incompatible CNI versions"),
        ({"cniVersion": "1.0.0", "ipam": {}}, 7, '"name"'),
    ],
)
def test_config_errors(conf: dict[str, Any], code: int, text: str) -> None:
    status, err = call("ADD", conf)
    assert status == 1 and err["code"] == code
    assert text in err["msg"]


def test_bad_requested_ip_is_code_7(tmp_path: Path) -> None:
    _, err = call("ADD", netconf(tmp_path), CNI_ARGS="IP=nope")
    assert err["code"] == 7 and "CNI_ARGS IP=" in err["msg"]


def test_missing_env_is_code_4(tmp_path: Path) -> None:
    _, err = call("ADD", netconf(tmp_path), CNI_IFNAME="")
    assert err["code"] == 4


def test_nothing_is_written_outside_data_dir(tmp_path: Path) -> None:
    call("ADD", netconf(tmp_path / "d"))
    assert sorted(os.listdir(tmp_path)) == ["d"]


# ---- install ----


def test_both_executables_are_installed() -> None:
    assert EXECUTABLES[0] == "cni-bridge-py"  # aliases point at the bridge plugin
    assert "cni-host-local-py" in EXECUTABLES
    assert ENTRY_MODULES["cni-host-local-py"] == "cni_bridge_py.ipam.plugin"
    text = launcher_text("/usr/bin/python3", [], ENTRY_MODULES["cni-host-local-py"])
    assert "from cni_bridge_py.ipam.plugin import main\n" in text


# ---- what it loads ----

FORBIDDEN = ("pyroute2", "iptc", "subprocess", "cni_bridge_py.kernel", "cni_bridge_py.firewall")
SCRIPT = f"""
import json, sys
from cni_bridge_py.ipam.plugin import main
rc = main()
sys.stdout.flush()
found = sorted(m for m in sys.modules if m.startswith({FORBIDDEN!r}))
sys.stderr.write("\\nLOADED " + json.dumps(found) + "\\n")
sys.exit(rc)
"""


def loaded(env: dict[str, str], stdin: bytes, cwd: Path) -> tuple[int, list[str]]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("CNI_")}
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        input=stdin,
        env={**base, **env},
        cwd=cwd,
        capture_output=True,
        check=False,
        timeout=60,
    )
    last = proc.stderr.decode().rstrip("\n").rsplit("\n", 1)[-1]
    assert last.startswith("LOADED "), proc.stderr.decode()
    return proc.returncode, json.loads(last.removeprefix("LOADED "))


FULL_ENV = {
    "CNI_CONTAINERID": "c1",
    "CNI_NETNS": "/var/run/netns/x",
    "CNI_IFNAME": "eth0",
    "CNI_PATH": "/opt/cni/bin",
}


@pytest.mark.parametrize(
    ("env", "stdin", "rc"),
    [
        ({"CNI_COMMAND": "VERSION"}, b"", 0),
        ({}, b"", 0),
        ({"CNI_COMMAND": "ADD"}, b"{}", 1),
        ({"CNI_COMMAND": "ADD", **FULL_ENV}, b'{"cniVersion":', 1),
    ],
)
def test_version_and_errors_load_nothing_heavy(
    env: dict[str, str], stdin: bytes, rc: int, tmp_path: Path
) -> None:
    assert loaded(env, stdin, tmp_path) == (rc, [])


def test_a_host_local_add_spawns_no_process(tmp_path: Path) -> None:
    stdin = json.dumps(netconf(tmp_path / "data")).encode()
    assert loaded({"CNI_COMMAND": "ADD", **FULL_ENV}, stdin, tmp_path) == (0, [])
