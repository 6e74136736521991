"""IPAM delegation against fake plugin executables (real files on CNI_PATH, runs answered by
pytest-subprocess): lookup, environment, stdin, results of every version, errors."""

from __future__ import annotations

import errno
import json
from pathlib import Path
from typing import Any

import pytest
from pytest_subprocess import FakeProcess
from pytest_subprocess.fake_popen import FakePopen

from cni_bridge_py import config, front, spawn
from cni_bridge_py.errors import DecodingFailure, PassthroughError
from cni_bridge_py.ipam.allocator import Attachment
from cni_bridge_py.ipam.delegate import (
    Delegated,
    IpamPluginFailed,
    IpamPluginNotFound,
    find_plugin,
    plugin_env,
)
from cni_bridge_py.ipam.engine import ipam_for
from cni_bridge_py.ipam.interface import Ipam, IpamResult
from cni_bridge_py.netaddr import parse_address, parse_interface, parse_network
from cni_bridge_py.request import Notes, Request
from cni_bridge_py.result import DNS, IPConfig, Route
from tests.doubles.store import MemoryStore

STATIC = {"type": "static", "addresses": [{"address": "10.10.0.5/24", "gateway": "10.10.0.1"}]}
RESULT_1_0 = {
    "cniVersion": "1.0.0",
    "ips": [{"address": "10.10.0.5/24", "gateway": "10.10.0.1"}],
    "routes": [{"dst": "0.0.0.0/0"}],
    "dns": {"nameservers": ["10.10.0.53"]},
}
EXPECTED = IpamResult(
    ips=(IPConfig(parse_interface("10.10.0.5/24"), parse_address("10.10.0.1")),),
    routes=(Route(parse_network("0.0.0.0/0")),),
    dns=DNS(nameservers=("10.10.0.53",)),
)


class Bin:
    """A CNI_PATH of fake plugins: each run is recorded with its stdin and environment."""

    def __init__(self, fp: FakeProcess, tmp_path: Path) -> None:
        self.fp = fp
        self.first = tmp_path / "first"
        self.second = tmp_path / "second"
        self.first.mkdir()
        self.second.mkdir()
        self.stdins: list[bytes] = []
        self.popens: list[FakePopen] = []

    @property
    def cni_path(self) -> str:
        return f"{self.first}:{self.second}"

    def install(self, name: str = "static", where: Path | None = None) -> Path:
        path = (where or self.second) / name
        path.touch()
        path.chmod(0o755)
        return path

    def expect(
        self,
        stdout: Any = b"",
        *,
        returncode: int = 0,
        stderr: bytes = b"",
        name: str = "static",
    ) -> None:
        path = self.install(name)
        out = json.dumps(stdout).encode() if isinstance(stdout, dict) else stdout
        recorder = self.fp.register(
            [str(path)],
            stdout=out,
            stderr=stderr,
            returncode=returncode,
            stdin_callable=self.stdins.append,
        )
        self.popens = recorder.calls  # a live list of this registration's runs

    def env(self, index: int = -1) -> dict[str, str]:
        kwargs = self.popens[index].kwargs or {}
        env = kwargs["env"]
        assert isinstance(env, dict)
        return env


@pytest.fixture
def bins(fp: FakeProcess, tmp_path: Path) -> Bin:
    return Bin(fp, tmp_path)


def netconf(version: str = "1.0.0", ipam: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"cniVersion": version, "name": "mynet", "type": "bridge", "ipam": ipam or STATIC}


def make_request(
    bins: Bin, conf: dict[str, Any], command: str = "ADD", extra: dict[str, str] | None = None
) -> Request:
    env = {
        "CNI_COMMAND": command,
        "CNI_CONTAINERID": "red",
        "CNI_NETNS": "/var/run/netns/red",
        "CNI_IFNAME": "eth0",
        "CNI_PATH": bins.cni_path,
        "CNI_ARGS": "IgnoreUnknown=1;K8S_POD_NAME=p",
        "PATH": "/usr/sbin:/usr/bin",
        "INHERITED": "yes",
        **(extra or {}),
    }
    # Deliberately odd spacing: the plugin must get these bytes, not a re-encoding.
    return front.parse_request(env, json.dumps(conf, indent=1).encode())


def call(ipam: Ipam, verb: str, request: Request) -> Any:
    who = Attachment(request.container_id, request.ifname)
    calls = {
        "add": lambda: ipam.add(who),
        "delete": lambda: ipam.delete(who),
        "check": lambda: ipam.check(who),
        "gc": lambda: ipam.gc(set()),
        "status": ipam.status,
    }
    return calls[verb]()


def run(
    bins: Bin,
    conf: dict[str, Any],
    verb: str = "add",
    command: str = "ADD",
    notes: Notes | None = None,
) -> Any:
    request = make_request(bins, conf, command)
    parsed = config.parse(request.config, request.cni_version, request.args, command)
    ipam = ipam_for(parsed.ipam, request, lambda _d, _n: MemoryStore(), notes or Notes())
    return call(ipam, verb, request)


# ---- finding the plugin ----


def test_first_cni_path_dir_wins(bins: Bin) -> None:
    bins.install(where=bins.second)
    first = bins.install(where=bins.first)
    assert find_plugin("static", (str(bins.first), str(bins.second))) == str(first)


def test_a_directory_of_that_name_is_not_the_plugin(bins: Bin) -> None:
    (bins.first / "static").mkdir()
    second = bins.install(where=bins.second)
    assert find_plugin("static", (str(bins.first), str(bins.second))) == str(second)


def test_missing_plugin_is_a_typed_error_naming_the_dirs(bins: Bin) -> None:
    with pytest.raises(IpamPluginNotFound) as info:
        run(bins, netconf())
    assert info.value.code == 7
    assert info.value.msg == (
        f'failed to find IPAM plugin "static" in CNI_PATH [{bins.first} {bins.second}]'
    )
    assert "ipam.type" in info.value.details
    assert not bins.fp.calls


@pytest.mark.parametrize("name", ["", "a/b", ".", ".."])
def test_names_that_are_not_file_names_are_refused(bins: Bin, name: str) -> None:
    with pytest.raises(IpamPluginNotFound):
        find_plugin(name, (str(bins.first),))


# ---- how it is run ----


def test_add_runs_with_the_same_environment_and_stdin(bins: Bin) -> None:
    bins.expect(RESULT_1_0)
    request = make_request(bins, netconf())
    got = Delegated("static", request, Notes()).add(Attachment("red", "eth0"))
    assert got == EXPECTED
    assert bins.stdins == [request.stdin]
    assert bins.env() == {**request.environ, "CNI_COMMAND": "ADD"}


@pytest.mark.parametrize(("verb", "command"), [("delete", "DEL"), ("check", "CHECK")])
def test_del_and_check_set_cni_command(bins: Bin, verb: str, command: str) -> None:
    bins.expect()
    assert run(bins, netconf(), verb, command) in ([], None)
    assert bins.env()["CNI_COMMAND"] == command
    assert bins.env()["CNI_CONTAINERID"] == "red"


@pytest.mark.parametrize(("verb", "command"), [("gc", "GC"), ("status", "STATUS")])
def test_gc_and_status_are_forwarded(bins: Bin, verb: str, command: str) -> None:
    bins.expect()
    conf = {**netconf("1.1.0"), "cni.dev/valid-attachments": []}
    request = make_request(bins, conf, command, {"CNI_CONTAINERID": "", "CNI_IFNAME": ""})
    call(Delegated("static", request, Notes()), verb, request)
    assert bins.env()["CNI_COMMAND"] == command
    assert bins.stdins == [request.stdin]  # the valid attachments travel on stdin


def test_environment_is_rebuilt_for_a_request_without_one() -> None:
    request = Request(
        command="ADD",
        container_id="red",
        netns="/run/netns/red",
        ifname="eth0",
        args={"IP": "10.0.0.5", "IgnoreUnknown": "1"},
        path=("/opt/cni/bin", "/usr/lib/cni"),
        stdin=b"{}",
        config={},
        cni_version="1.0.0",
        search_path="/usr/bin",
    )
    assert plugin_env(request, "DEL") == {
        "CNI_COMMAND": "DEL",
        "CNI_CONTAINERID": "red",
        "CNI_NETNS": "/run/netns/red",
        "CNI_IFNAME": "eth0",
        "CNI_ARGS": "IP=10.0.0.5;IgnoreUnknown=1",
        "CNI_PATH": "/opt/cni/bin:/usr/lib/cni",
        "PATH": "/usr/bin",
    }


def test_a_busy_executable_is_retried(bins: Bin, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(spawn, "BUSY_DELAY_S", 0.0)
    path = bins.install()

    def busy(process: FakePopen) -> None:
        raise OSError(errno.ETXTBSY, "Text file busy")

    bins.fp.register([str(path)], callback=busy)
    bins.expect(RESULT_1_0)
    assert run(bins, netconf()) == EXPECTED
    assert bins.fp.call_count([str(path)]) == 2


def test_an_executable_that_cannot_run_is_reported(bins: Bin) -> None:
    path = bins.install()

    def denied(process: FakePopen) -> None:
        raise PermissionError(errno.EACCES, "Permission denied")

    bins.fp.register([str(path)], callback=denied)
    with pytest.raises(IpamPluginFailed, match="cannot execute IPAM plugin"):
        run(bins, netconf())


# ---- results ----


def test_result_without_cni_version_takes_the_configs(bins: Bin) -> None:
    # A 0.2.0 config: without cniVersion the answer is read as 0.2.0, not as 1.0.0.
    bins.expect({"ip4": {"ip": "10.10.0.5/24", "gateway": "10.10.0.1"}, "dns": {}})
    got = run(bins, netconf("0.2.0"))
    assert got.ips == (IPConfig(parse_interface("10.10.0.5/24"), parse_address("10.10.0.1")),)


def test_result_of_another_version_is_converted(bins: Bin) -> None:
    bins.expect(
        {
            "cniVersion": "0.3.1",
            "ips": [{"version": "4", "interface": 0, "address": "10.10.0.5/24"}],
            "routes": [{"dst": "10.20.0.0/16", "gw": "10.10.0.254"}],
        }
    )
    got = run(bins, netconf("1.0.0"))
    assert got.ips == (IPConfig(parse_interface("10.10.0.5/24")),)  # no interface index
    assert got.routes == (Route(parse_network("10.20.0.0/16"), parse_address("10.10.0.254")),)


@pytest.mark.parametrize("stdout", [b"", b"not json", b"[]", b'{"ips": [{"address": "x"}]}'])
def test_an_unreadable_result_is_a_decoding_failure(bins: Bin, stdout: bytes) -> None:
    bins.expect(stdout)
    with pytest.raises(DecodingFailure) as info:
        run(bins, netconf())
    assert info.value.code == 6
    assert info.value.msg == "cannot read the result of IPAM plugin static"


def test_a_result_without_ips_is_refused_and_released(bins: Bin) -> None:
    bins.expect({"cniVersion": "1.0.0", "dns": {}})
    bins.expect()  # the DEL
    with pytest.raises(IpamPluginFailed, match="IPAM plugin returned missing IP config"):
        run(bins, netconf())
    assert bins.env(-1)["CNI_COMMAND"] == "DEL"


# ---- errors ----


@pytest.mark.parametrize(
    "error",
    [
        {"code": 999, "msg": "the 'address' field is expected to be in CIDR notation"},
        {"cniVersion": "1.0.0", "code": 7, "msg": "bad", "details": "very"},
        {"code": 11, "msg": "busy", "details": ""},
        {"code": 120, "msg": "a plugin-specific code"},
    ],
)
def test_error_objects_pass_through_unchanged(bins: Bin, error: dict[str, Any]) -> None:
    bins.expect(error, returncode=1)
    with pytest.raises(PassthroughError) as info:
        run(bins, netconf())
    printed = info.value.to_dict("1.0.0")
    assert printed["code"] == error["code"]
    assert printed["msg"] == error["msg"]
    assert printed.get("details", "") == error.get("details", "")


def test_errors_on_del_pass_through_too(bins: Bin) -> None:
    bins.expect({"code": 5, "msg": "disk gone"}, returncode=1)
    with pytest.raises(PassthroughError, match="disk gone"):
        run(bins, netconf(), "delete", "DEL")


@pytest.mark.parametrize(
    ("stdout", "stderr", "details"),
    [
        (b"", b"panic: boom\n", "panic: boom"),
        (b"Segmentation fault", b"", "Segmentation fault"),
        (b'{"msg": "no code"}', b"", '{"msg": "no code"}'),
        (b"", b"", "it printed nothing; see its stderr"),
    ],
)
def test_a_failure_without_an_error_object_is_described(
    bins: Bin, stdout: bytes, stderr: bytes, details: str
) -> None:
    bins.expect(stdout, returncode=2, stderr=stderr)
    with pytest.raises(IpamPluginFailed) as info:
        run(bins, netconf())
    assert info.value.msg == "IPAM plugin static failed (exit status 2) without a CNI error"
    assert info.value.details == details


def test_stderr_is_passed_to_the_runtime_in_the_answer_not_ours(
    bins: Bin, capsys: pytest.CaptureFixture[str]
) -> None:
    bins.expect(RESULT_1_0, stderr=b"static: a warning\n")
    notes = Notes()
    run(bins, netconf(), notes=notes)
    assert notes.text() == "static: a warning\n"
    assert capsys.readouterr().err == ""  # under the agent, our stderr is its journal
