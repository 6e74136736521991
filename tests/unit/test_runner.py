"""The cnitool-compatible runner, against fake plugin executables (pytest-subprocess)."""

from __future__ import annotations

import base64
import errno
import hashlib
import io
import json
import os
import stat
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pytest_subprocess import FakeProcess
from pytest_subprocess.fake_popen import FakePopen

from cni_bridge_py import spawn
from cni_bridge_py.runner.cnitool import absolute_path, container_id_for, run_cnitool

RESULT_1: dict[str, Any] = {
    "cniVersion": "1.0.0",
    "interfaces": [{"name": "eth0", "sandbox": "/run/netns/ns1"}],
    "ips": [{"address": "10.1.0.2/24", "interface": 0}],
}
RESULT_2: dict[str, Any] = {**RESULT_1, "dns": {"nameservers": ["10.1.0.1"]}}
CNI_ERROR = {"cniVersion": "1.0.0", "code": 7, "msg": "invalid config", "details": "no subnet"}


@dataclass
class Call:
    plugin: str
    conf: dict[str, Any]
    env: dict[str, str]


class Plugins:
    """Fake plugin executables: real empty files in CNI_PATH, runs answered by pytest-subprocess."""

    def __init__(self, fp: FakeProcess, bin_dir: Path) -> None:
        self.fp = fp
        self.bin_dir = bin_dir
        self._stdins: list[tuple[str, bytes]] = []
        self._popens: dict[str, list[list[FakePopen]]] = defaultdict(list)

    def install(self, name: str, mode: int = 0o755) -> Path:
        path = self.bin_dir / name
        path.touch()
        path.chmod(mode)
        return path

    def expect(
        self, name: str, stdout: Any = b"", *, returncode: int = 0, stderr: bytes = b""
    ) -> None:
        """Queue one run of plugin `name`; `stdout` may be a dict, sent as JSON."""
        path = self.install(name)
        out = json.dumps(stdout).encode() if isinstance(stdout, dict) else stdout
        recorder = self.fp.register(
            [str(path)],
            stdout=out,
            stderr=stderr,
            returncode=returncode,
            stdin_callable=lambda data: self._stdins.append((name, data)),
        )
        self._popens[name].append(recorder.calls)

    @property
    def calls(self) -> list[Call]:
        """Every run in order, with the JSON it read on stdin and the environment it got."""
        popens = {
            name: [p for calls in lists for p in calls] for name, lists in self._popens.items()
        }
        seen: dict[str, int] = defaultdict(int)
        out: list[Call] = []
        for name, data in self._stdins:
            popen = popens[name][seen[name]]
            seen[name] += 1
            kwargs = popen.kwargs or {}
            out.append(Call(name, json.loads(data), kwargs["env"]))
        return out


@dataclass
class Outcome:
    code: int
    stdout: str
    stderr: str


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    for sub in ("net.d", "bin"):
        (tmp_path / sub).mkdir()
    return {
        "NETCONFPATH": str(tmp_path / "net.d"),
        "CNI_PATH": str(tmp_path / "bin"),
        "CNI_CACHE_DIR": str(tmp_path / "cache"),
        "INHERITED": "yes",
    }


@pytest.fixture
def plugins(fp: FakeProcess, tmp_path: Path) -> Plugins:
    return Plugins(fp, tmp_path / "bin")


@pytest.fixture
def netns(tmp_path: Path) -> str:
    return str(tmp_path / "netns" / "ns1")


def run(argv: list[str], env: dict[str, str]) -> Outcome:
    out, err = io.StringIO(), io.StringIO()
    code = run_cnitool(argv, env, stdout=out, stderr=err)
    return Outcome(code, out.getvalue(), err.getvalue())


def write_conf(env: dict[str, str], filename: str, conf: dict[str, Any]) -> bytes:
    data = json.dumps(conf, indent=2).encode()
    (Path(env["NETCONFPATH"]) / filename).write_bytes(data)
    return data


def conflist(*plugin_types: str, name: str = "mynet", version: str = "1.0.0") -> dict[str, Any]:
    return {"cniVersion": version, "name": name, "plugins": [{"type": t} for t in plugin_types]}


def expected_container_id(netns_path: str) -> str:
    return "cnitool-" + hashlib.sha512(netns_path.encode()).digest()[:10].hex()


def cache_file(env: dict[str, str], netns_path: str, network: str = "mynet") -> Path:
    cid = expected_container_id(netns_path)
    return Path(env["CNI_CACHE_DIR"]) / "results" / f"{network}-{cid}-eth0"


def upstream_cache_entry(netns_path: str, config: bytes, result: dict[str, Any]) -> bytes:
    """A cache file the way Go cnitool writes it: struct field order, compact, base64 config."""
    entry = (
        f'{{"kind":"cniCacheV1","containerId":"{expected_container_id(netns_path)}",'
        f'"config":"{base64.b64encode(config).decode()}","ifName":"eth0",'
        f'"networkName":"mynet","netns":"{netns_path}","cniArgs":[["K8S_POD_NAME","web"]],'
        f'"result":{json.dumps(result, separators=(",", ":"))}}}'
    )
    return entry.encode()


# ---- configuration lookup ----


def test_conflist_is_preferred_to_a_conf_of_the_same_name(
    env: dict[str, str], plugins: Plugins, netns: str
) -> None:
    write_conf(env, "00-single.conf", {"cniVersion": "1.0.0", "name": "mynet", "type": "single"})
    write_conf(env, "99-list.conflist", conflist("listed"))
    plugins.expect("listed", RESULT_1)

    outcome = run(["add", "mynet", netns], env)

    assert outcome.code == 0, outcome.stderr
    assert [c.plugin for c in plugins.calls] == ["listed"]


def test_first_matching_file_in_name_order_wins(
    env: dict[str, str], plugins: Plugins, netns: str
) -> None:
    write_conf(env, "20-b.conflist", conflist("second"))
    write_conf(env, "10-a.conflist", conflist("first"))
    write_conf(env, "05-other.conflist", conflist("other", name="othernet"))
    plugins.expect("first", RESULT_1)

    assert run(["add", "mynet", netns], env).code == 0
    assert [c.plugin for c in plugins.calls] == ["first"]


def test_single_plugin_conf_is_upgraded_to_a_list(
    env: dict[str, str], plugins: Plugins, netns: str
) -> None:
    write_conf(env, "05-other.conflist", conflist("other", name="othernet"))
    single = {"cniVersion": "0.4.0", "name": "mynet", "type": "bridge", "bridge": "cni0"}
    write_conf(env, "10-mynet.json", single)
    plugins.expect("bridge", RESULT_1)

    assert run(["add", "mynet", netns], env).code == 0

    assert plugins.calls[0].conf == single
    cached = json.loads(cache_file(env, netns).read_bytes())
    wrapper = json.loads(base64.b64decode(cached["config"]))
    assert wrapper == {"cniVersion": "0.4.0", "name": "mynet", "plugins": [single]}


def test_unknown_network_is_reported(env: dict[str, str], plugins: Plugins, netns: str) -> None:
    write_conf(env, "10-a.conflist", conflist("bridge", name="othernet"))

    outcome = run(["add", "mynet", netns], env)

    assert outcome.code == 1
    assert f'no net configuration with name "mynet" in {env["NETCONFPATH"]}' in outcome.stderr
    assert plugins.calls == []


def test_empty_config_directory_is_reported(env: dict[str, str], netns: str) -> None:
    outcome = run(["del", "mynet", netns], env)

    assert outcome.code == 1
    assert "no net configurations found" in outcome.stderr


def test_broken_conflist_names_the_file(env: dict[str, str], netns: str) -> None:
    (Path(env["NETCONFPATH"]) / "10-bad.conflist").write_text('{"name": "mynet", "plugins": [{}]}')

    outcome = run(["add", "mynet", netns], env)

    assert outcome.code == 1
    assert "10-bad.conflist" in outcome.stderr
    assert '"type"' in outcome.stderr


def test_cni_versions_picks_the_newest_known(
    env: dict[str, str], plugins: Plugins, netns: str
) -> None:
    conf = {**conflist("bridge", version="0.3.1"), "cniVersions": ["0.4.0", "1.0.0", "9.9.9"]}
    write_conf(env, "10-a.conflist", conf)
    plugins.expect("bridge", RESULT_1)

    assert run(["add", "mynet", netns], env).code == 0
    assert plugins.calls[0].conf["cniVersion"] == "1.0.0"


# ---- per-plugin stdin (buildOneConfig), environment, container ID ----


def test_each_plugin_gets_list_name_version_prev_result_and_its_capabilities(
    env: dict[str, str], plugins: Plugins, netns: str
) -> None:
    first_plugin = {
        "type": "bridge",
        "name": "ignored",
        "capabilities": {"portMappings": True, "bandwidth": False},
    }
    conf: dict[str, Any] = {
        "cniVersion": "1.0.0",
        "name": "mynet",
        "plugins": [
            first_plugin,
            {"type": "tuning", "cniVersion": "0.3.1", "runtimeConfig": {"kept": 1}},
        ],
    }
    write_conf(env, "10-a.conflist", conf)
    cap_args = {"portMappings": [{"hostPort": 80}], "bandwidth": {"rate": 1}, "ips": ["x"]}
    plugins.expect("bridge", RESULT_1)
    plugins.expect("tuning", RESULT_2)

    outcome = run(["add", "mynet", netns], {**env, "CAP_ARGS": json.dumps(cap_args)})

    assert outcome.code == 0, outcome.stderr
    first, second = plugins.calls
    assert first.conf == {
        **first_plugin,
        "name": "mynet",
        "cniVersion": "1.0.0",
        "runtimeConfig": {"portMappings": [{"hostPort": 80}]},
    }
    assert second.conf == {
        "type": "tuning",
        "name": "mynet",
        "cniVersion": "1.0.0",
        "runtimeConfig": {"kept": 1},
        "prevResult": RESULT_1,
    }
    assert json.loads(outcome.stdout) == RESULT_2
    assert outcome.stdout.startswith('{\n    "cniVersion"')


def test_plugin_environment(env: dict[str, str], plugins: Plugins, netns: str) -> None:
    write_conf(env, "10-a.conflist", conflist("bridge"))
    plugins.expect("bridge", RESULT_1)

    run(["add", "mynet", netns], {**env, "CNI_ARGS": "IgnoreUnknown=1;K8S_POD_NAME=web"})

    call_env = plugins.calls[0].env
    assert call_env["CNI_COMMAND"] == "ADD"
    assert call_env["CNI_CONTAINERID"] == expected_container_id(netns)
    assert call_env["CNI_NETNS"] == netns
    assert call_env["CNI_IFNAME"] == "eth0"
    assert call_env["CNI_ARGS"] == "IgnoreUnknown=1;K8S_POD_NAME=web"
    assert call_env["CNI_PATH"] == env["CNI_PATH"]
    assert call_env["INHERITED"] == "yes"


def test_cni_ifname_from_the_environment(env: dict[str, str], plugins: Plugins, netns: str) -> None:
    write_conf(env, "10-a.conflist", conflist("bridge"))
    plugins.expect("bridge", RESULT_1)

    assert run(["add", "mynet", netns], {**env, "CNI_IFNAME": "net1"}).code == 0

    assert plugins.calls[0].env["CNI_IFNAME"] == "net1"
    assert cache_file(env, netns).with_name(f"mynet-{expected_container_id(netns)}-net1").exists()


def test_container_id_is_cnitool_prefix_and_20_hex_of_sha512() -> None:
    path = "/var/run/netns/blue"
    digest = hashlib.sha512(b"/var/run/netns/blue").digest()
    assert container_id_for(path) == "cnitool-" + "".join(f"{b:02x}" for b in digest[:10])
    assert len(container_id_for(path)) == len("cnitool-") + 20


def test_netns_path_is_made_absolute_and_clean_like_go() -> None:
    assert absolute_path("x/../ns") == os.path.join(os.getcwd(), "ns")
    assert absolute_path("//run/netns/./a") == "/run/netns/a"


def test_invalid_cni_args_are_rejected(env: dict[str, str], plugins: Plugins, netns: str) -> None:
    write_conf(env, "10-a.conflist", conflist("bridge"))

    outcome = run(["add", "mynet", netns], {**env, "CNI_ARGS": "A=1;B"})

    assert outcome.code == 1
    assert "invalid CNI_ARGS pair 'B'" in outcome.stderr
    assert plugins.calls == []


def test_invalid_cap_args_are_rejected(env: dict[str, str], netns: str) -> None:
    write_conf(env, "10-a.conflist", conflist("bridge"))

    outcome = run(["add", "mynet", netns], {**env, "CAP_ARGS": "[1]"})

    assert outcome.code == 1
    assert "CAP_ARGS must be a JSON object" in outcome.stderr


def test_add_rejects_a_bad_interface_name_before_running_plugins(
    env: dict[str, str], plugins: Plugins, netns: str
) -> None:
    write_conf(env, "10-a.conflist", conflist("bridge"))

    outcome = run(["add", "mynet", netns], {**env, "CNI_IFNAME": "much-too-long-name0"})

    assert outcome.code == 1
    assert "invalid interface name" in outcome.stderr
    assert plugins.calls == []


# ---- the cache ----


def test_add_writes_the_libcni_cache(env: dict[str, str], plugins: Plugins, netns: str) -> None:
    raw = write_conf(env, "10-a.conflist", conflist("bridge"))
    plugins.expect("bridge", RESULT_1)
    cap_args: dict[str, Any] = {"portMappings": []}

    outcome = run(
        ["add", "mynet", netns], {**env, "CNI_ARGS": "K=V", "CAP_ARGS": json.dumps(cap_args)}
    )

    assert outcome.code == 0, outcome.stderr
    path = cache_file(env, netns)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.parent.parent.stat().st_mode) == 0o700
    text = path.read_text()
    assert text.startswith('{"kind":"cniCacheV1","containerId":')
    assert list(json.loads(text)) == [
        "kind",
        "containerId",
        "config",
        "ifName",
        "networkName",
        "netns",
        "cniArgs",
        "capabilityArgs",
        "result",
    ]
    assert json.loads(text) == {
        "kind": "cniCacheV1",
        "containerId": expected_container_id(netns),
        "config": base64.b64encode(raw).decode(),
        "ifName": "eth0",
        "networkName": "mynet",
        "netns": netns,
        "cniArgs": [["K", "V"]],
        "capabilityArgs": cap_args,
        "result": RESULT_1,
    }
    assert [p.name for p in path.parent.iterdir()] == [path.name]


def test_cache_leaves_out_empty_optional_fields(
    env: dict[str, str], plugins: Plugins, netns: str
) -> None:
    write_conf(env, "10-a.conflist", conflist("bridge"))
    plugins.expect("bridge", RESULT_1)

    run(["add", "mynet", netns], env)

    cached = json.loads(cache_file(env, netns).read_bytes())
    assert "cniArgs" not in cached
    assert "capabilityArgs" not in cached


def test_unversioned_result_takes_the_config_version(
    env: dict[str, str], plugins: Plugins, netns: str
) -> None:
    write_conf(env, "10-a.conflist", conflist("bridge", version="0.4.0"))
    plugins.expect("bridge", {"ips": [{"version": "4", "address": "10.1.0.2/24"}]})

    outcome = run(["add", "mynet", netns], env)

    assert json.loads(outcome.stdout)["cniVersion"] == "0.4.0"
    assert json.loads(cache_file(env, netns).read_bytes())["result"]["cniVersion"] == "0.4.0"


def test_check_sends_the_cached_result_to_each_plugin_in_order(
    env: dict[str, str], plugins: Plugins, netns: str
) -> None:
    write_conf(env, "10-a.conflist", conflist("bridge", "tuning"))
    plugins.expect("bridge", RESULT_1)
    plugins.expect("tuning", RESULT_2)
    plugins.expect("bridge")
    plugins.expect("tuning")

    assert run(["add", "mynet", netns], env).code == 0
    outcome = run(["check", "mynet", netns], env)

    assert outcome.code == 0, outcome.stderr
    assert outcome.stdout == ""
    checks = plugins.calls[2:]
    assert [(c.plugin, c.env["CNI_COMMAND"]) for c in checks] == [
        ("bridge", "CHECK"),
        ("tuning", "CHECK"),
    ]
    assert all(c.conf["prevResult"] == RESULT_2 for c in checks)


def test_check_without_a_cached_result_fails(
    env: dict[str, str], plugins: Plugins, netns: str
) -> None:
    write_conf(env, "10-a.conflist", conflist("bridge"))

    outcome = run(["check", "mynet", netns], env)

    assert outcome.code == 1
    assert "no cached result" in outcome.stderr
    assert plugins.calls == []


def test_check_needs_cni_version_0_4_0(env: dict[str, str], netns: str) -> None:
    write_conf(env, "10-a.conflist", conflist("bridge", version="0.3.1"))

    outcome = run(["check", "mynet", netns], env)

    assert outcome.code == 1
    assert 'configuration version "0.3.1" does not support the CHECK command' in outcome.stderr


def test_check_is_skipped_when_disabled(env: dict[str, str], plugins: Plugins, netns: str) -> None:
    write_conf(env, "10-a.conflist", {**conflist("bridge"), "disableCheck": "True"})

    assert run(["check", "mynet", netns], env).code == 0
    assert plugins.calls == []


def test_del_runs_plugins_in_reverse_with_the_cached_result_then_drops_the_cache(
    env: dict[str, str], plugins: Plugins, netns: str
) -> None:
    write_conf(env, "10-a.conflist", conflist("bridge", "tuning", "portmap"))
    for name, result in (("bridge", RESULT_1), ("tuning", RESULT_1), ("portmap", RESULT_2)):
        plugins.expect(name, result)
    for name in ("portmap", "tuning", "bridge"):
        plugins.expect(name)

    assert run(["add", "mynet", netns], env).code == 0
    assert cache_file(env, netns).exists()
    outcome = run(["del", "mynet", netns], env)

    assert outcome.code == 0, outcome.stderr
    deletes = plugins.calls[3:]
    assert [(c.plugin, c.env["CNI_COMMAND"]) for c in deletes] == [
        ("portmap", "DEL"),
        ("tuning", "DEL"),
        ("bridge", "DEL"),
    ]
    assert all(c.conf["prevResult"] == RESULT_2 for c in deletes)
    assert not cache_file(env, netns).exists()


def test_del_without_a_cache_succeeds_without_prev_result(
    env: dict[str, str], plugins: Plugins, netns: str
) -> None:
    write_conf(env, "10-a.conflist", conflist("bridge"))
    plugins.expect("bridge")

    outcome = run(["del", "mynet", netns], env)

    assert outcome.code == 0, outcome.stderr
    assert "prevResult" not in plugins.calls[0].conf


def test_del_before_0_4_0_sends_no_prev_result_but_drops_the_cache(
    env: dict[str, str], plugins: Plugins, netns: str
) -> None:
    raw = write_conf(env, "10-a.conflist", conflist("bridge", version="0.3.1"))
    path = cache_file(env, netns)
    path.parent.mkdir(parents=True)
    path.write_bytes(upstream_cache_entry(netns, raw, RESULT_1))
    plugins.expect("bridge")

    assert run(["del", "mynet", netns], env).code == 0
    assert "prevResult" not in plugins.calls[0].conf
    assert not path.exists()


def test_reads_a_cache_written_by_upstream_cnitool(
    env: dict[str, str], plugins: Plugins, netns: str
) -> None:
    raw = write_conf(env, "10-a.conflist", conflist("bridge"))
    path = cache_file(env, netns)
    path.parent.mkdir(parents=True)
    path.write_bytes(upstream_cache_entry(netns, raw, RESULT_1))
    plugins.expect("bridge")

    assert run(["check", "mynet", netns], env).code == 0
    assert plugins.calls[0].conf["prevResult"] == RESULT_1


def test_reads_a_legacy_bare_result_cache(
    env: dict[str, str], plugins: Plugins, netns: str
) -> None:
    write_conf(env, "10-a.conflist", conflist("bridge"))
    path = cache_file(env, netns)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(RESULT_1))
    plugins.expect("bridge")

    assert run(["del", "mynet", netns], env).code == 0
    assert plugins.calls[0].conf["prevResult"] == RESULT_1


def test_del_drops_an_unreadable_cache_and_still_deletes(
    env: dict[str, str], plugins: Plugins, netns: str
) -> None:
    write_conf(env, "10-a.conflist", conflist("bridge"))
    path = cache_file(env, netns)
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    plugins.expect("bridge")

    assert run(["del", "mynet", netns], env).code == 0
    assert "prevResult" not in plugins.calls[0].conf
    assert not path.exists()


# ---- plugin failures ----


def test_plugin_error_stops_the_chain_and_is_reported(
    env: dict[str, str], plugins: Plugins, netns: str
) -> None:
    write_conf(env, "10-a.conflist", conflist("bridge", "tuning"))
    plugins.expect("bridge", CNI_ERROR, returncode=1, stderr=b"bridge: debug line\n")
    plugins.install("tuning")

    outcome = run(["add", "mynet", netns], env)

    assert outcome.code == 1
    assert outcome.stdout == ""
    assert "bridge: error 7: invalid config; no subnet\n" in outcome.stderr
    assert "bridge: debug line" in outcome.stderr
    assert [c.plugin for c in plugins.calls] == ["bridge"]
    assert not cache_file(env, netns).exists()


def test_plugin_failure_without_a_cni_error(
    env: dict[str, str], plugins: Plugins, netns: str
) -> None:
    write_conf(env, "10-a.conflist", conflist("bridge"))
    plugins.expect("bridge", b"", returncode=2)

    outcome = run(["del", "mynet", netns], env)

    assert outcome.code == 1
    assert "bridge: exited with status 2 without a CNI error on stdout" in outcome.stderr


def test_add_with_non_json_stdout_fails(env: dict[str, str], plugins: Plugins, netns: str) -> None:
    write_conf(env, "10-a.conflist", conflist("bridge"))
    plugins.expect("bridge", b"hello")

    outcome = run(["add", "mynet", netns], env)

    assert outcome.code == 1
    assert "bridge: ADD succeeded but its stdout is not a JSON result" in outcome.stderr
    assert not cache_file(env, netns).exists()


def test_missing_plugin_is_reported(env: dict[str, str], netns: str) -> None:
    write_conf(env, "10-a.conflist", conflist("nosuch"))

    outcome = run(["add", "mynet", netns], env)

    assert outcome.code == 1
    assert 'failed to find plugin "nosuch"' in outcome.stderr
    assert "CNI_PATH" in outcome.stderr


def test_plugin_lookup_takes_the_first_executable_in_cni_path(
    env: dict[str, str], plugins: Plugins, netns: str, tmp_path: Path
) -> None:
    write_conf(env, "10-a.conflist", conflist("bridge"))
    first = tmp_path / "first"
    first.mkdir()
    (first / "bridge").touch(mode=0o644)  # not executable: skipped
    plugins.expect("bridge", RESULT_1)
    cni_path = f"{first}::{env['CNI_PATH']}"

    assert run(["add", "mynet", netns], {**env, "CNI_PATH": cni_path}).code == 0
    assert plugins.calls[0].env["CNI_PATH"] == cni_path


def test_empty_cni_path_is_reported(env: dict[str, str], netns: str) -> None:
    write_conf(env, "10-a.conflist", conflist("bridge"))

    outcome = run(["add", "mynet", netns], {**env, "CNI_PATH": ""})

    assert outcome.code == 1
    assert "CNI_PATH is empty" in outcome.stderr


def test_text_file_busy_is_retried(
    env: dict[str, str], plugins: Plugins, netns: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(spawn, "BUSY_DELAY_S", 0.0)
    write_conf(env, "10-a.conflist", conflist("bridge"))
    path = plugins.install("bridge")

    def busy(process: FakePopen) -> None:
        raise OSError(errno.ETXTBSY, "Text file busy")

    plugins.fp.register([str(path)], callback=busy)
    plugins.expect("bridge", RESULT_1)

    outcome = run(["add", "mynet", netns], env)

    assert outcome.code == 0, outcome.stderr
    assert plugins.fp.call_count([str(path)]) == 2


# ---- GC and STATUS ----


def test_gc_deletes_cached_attachments_then_sends_gc_with_nothing_valid(
    env: dict[str, str], plugins: Plugins, tmp_path: Path
) -> None:
    write_conf(env, "10-a.conflist", conflist("bridge", "portmap", version="1.1.0"))
    write_conf(env, "20-b.conflist", conflist("bridge", name="othernet", version="1.1.0"))
    ns_a, ns_b = str(tmp_path / "ns-a"), str(tmp_path / "ns-b")
    for ns in (ns_a, ns_b):
        plugins.expect("bridge", RESULT_1)
        plugins.expect("portmap", RESULT_2)
        assert run(["add", "mynet", ns], {**env, "CNI_ARGS": "POD=p"}).code == 0
    plugins.expect("bridge", RESULT_1)
    assert run(["add", "othernet", ns_a], env).code == 0
    first_del = len(plugins.calls)
    for _ in (ns_a, ns_b):
        plugins.expect("portmap")
        plugins.expect("bridge")
    plugins.expect("bridge")
    plugins.expect("portmap")

    outcome = run(["gc", "mynet", "/ignored"], env)

    assert outcome.code == 0, outcome.stderr
    calls = plugins.calls[first_del:]
    deletes, gcs = calls[:4], calls[4:]
    by_cid = sorted([expected_container_id(ns_a), expected_container_id(ns_b)])
    assert [(c.plugin, c.env["CNI_COMMAND"], c.env["CNI_CONTAINERID"]) for c in deletes] == [
        ("portmap", "DEL", by_cid[0]),
        ("bridge", "DEL", by_cid[0]),
        ("portmap", "DEL", by_cid[1]),
        ("bridge", "DEL", by_cid[1]),
    ]
    assert all(c.env["CNI_ARGS"] == "POD=p" and c.conf["prevResult"] == RESULT_2 for c in deletes)
    assert [(c.plugin, c.env["CNI_COMMAND"]) for c in gcs] == [("bridge", "GC"), ("portmap", "GC")]
    for call in gcs:
        assert call.conf["cni.dev/valid-attachments"] == []
        assert call.conf["cni.dev/attachments"] == []
        assert call.conf["name"] == "mynet"
        assert "prevResult" not in call.conf
        assert [call.env[k] for k in ("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME")] == [""] * 3
    assert not cache_file(env, ns_a).exists()
    assert not cache_file(env, ns_b).exists()
    assert cache_file(env, ns_a, network="othernet").exists()


def test_gc_before_1_1_0_only_deletes(env: dict[str, str], plugins: Plugins, netns: str) -> None:
    write_conf(env, "10-a.conflist", conflist("bridge"))
    plugins.expect("bridge", RESULT_1)
    plugins.expect("bridge")
    assert run(["add", "mynet", netns], env).code == 0

    outcome = run(["gc", "mynet", netns], env)

    assert outcome.code == 0, outcome.stderr
    assert [c.env["CNI_COMMAND"] for c in plugins.calls] == ["ADD", "DEL"]
    assert "GC not sent" in outcome.stderr


def test_gc_does_nothing_when_disabled(env: dict[str, str], plugins: Plugins, netns: str) -> None:
    write_conf(env, "10-a.conflist", {**conflist("bridge", version="1.1.0"), "disableGC": True})

    assert run(["gc", "mynet", netns], env).code == 0
    assert plugins.calls == []


def test_gc_failures_are_collected(env: dict[str, str], plugins: Plugins, netns: str) -> None:
    write_conf(env, "10-a.conflist", conflist("bridge", "portmap", version="1.1.0"))
    plugins.expect("bridge", CNI_ERROR, returncode=1)
    plugins.expect("portmap")

    outcome = run(["gc", "mynet", netns], env)

    assert outcome.code == 1
    assert "failed to GC plugin bridge: bridge: error 7" in outcome.stderr
    assert [c.plugin for c in plugins.calls] == ["bridge", "portmap"]


def test_status_asks_each_plugin(env: dict[str, str], plugins: Plugins, netns: str) -> None:
    write_conf(env, "10-a.conflist", conflist("bridge", "portmap", version="1.1.0"))
    plugins.expect("bridge")
    plugins.expect("portmap")

    outcome = run(["status", "mynet", netns], env)

    assert outcome.code == 0, outcome.stderr
    assert [(c.plugin, c.env["CNI_COMMAND"]) for c in plugins.calls] == [
        ("bridge", "STATUS"),
        ("portmap", "STATUS"),
    ]
    assert plugins.calls[0].conf == {"type": "bridge", "name": "mynet", "cniVersion": "1.1.0"}
    assert plugins.calls[0].env["CNI_CONTAINERID"] == ""


def test_status_stops_at_the_first_failure(
    env: dict[str, str], plugins: Plugins, netns: str
) -> None:
    write_conf(env, "10-a.conflist", conflist("bridge", "portmap", version="1.1.0"))
    unavailable = {"cniVersion": "1.1.0", "code": 50, "msg": "plugin not available"}
    plugins.expect("bridge", unavailable, returncode=1)
    plugins.install("portmap")

    outcome = run(["status", "mynet", netns], env)

    assert outcome.code == 1
    assert "bridge: error 50: plugin not available" in outcome.stderr
    assert [c.plugin for c in plugins.calls] == ["bridge"]


def test_status_before_1_1_0_sends_nothing(
    env: dict[str, str], plugins: Plugins, netns: str
) -> None:
    write_conf(env, "10-a.conflist", conflist("bridge"))

    outcome = run(["status", "mynet", netns], env)

    assert outcome.code == 0
    assert "STATUS not sent" in outcome.stderr
    assert plugins.calls == []


# ---- the command line ----


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["add", "mynet"], "expected COMMAND NETWORK NETNS"),
        (["add", "mynet", "/ns", "extra"], "expected COMMAND NETWORK NETNS"),
        (["ADD", "mynet", "/ns"], "unknown command 'ADD'"),
    ],
)
def test_usage_errors(env: dict[str, str], argv: list[str], message: str) -> None:
    outcome = run(argv, env)

    assert outcome.code == 1
    assert message in outcome.stderr
    assert "cni-bridge-py cnitool add" in outcome.stderr
