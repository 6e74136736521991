"""The request edge: environment + stdin -> stdout, stderr, exit code (no kernel code runs)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from cni_bridge_py import front
from cni_bridge_py.answer import Answer
from cni_bridge_py.errors import InvalidEnvironment
from cni_bridge_py.request import Notes, Request

CONFIG: dict[str, Any] = {"cniVersion": "1.0.0", "name": "mynet", "type": "bridge"}
FULL_ENV = {
    "CNI_CONTAINERID": "c1",
    "CNI_NETNS": "/var/run/netns/x",
    "CNI_IFNAME": "eth0",
    "CNI_PATH": "/opt/cni/bin:/usr/lib/cni",
}


def env_for(command: str, **overrides: str) -> dict[str, str]:
    env = {"CNI_COMMAND": command, **FULL_ENV, **overrides}
    return {k: v for k, v in env.items() if v != "<unset>"}


def stdin_for(**changes: Any) -> bytes:
    config = {**CONFIG, **changes}
    return json.dumps({k: v for k, v in config.items() if v is not None}).encode()


class Recorder:
    """A dispatch that records the request instead of touching the kernel."""

    def __init__(self, answer: str = "done") -> None:
        self.requests: list[Request] = []
        self.answer = answer

    def __call__(self, request: Request, notes: Notes) -> str:
        self.requests.append(request)
        return self.answer


def refuse(request: Request, notes: Notes) -> str:
    raise AssertionError(f"dispatch must not run for {request.command}")


def error_of(response: Answer) -> dict[str, Any]:
    assert response.exit_code == 1
    assert response.stdout.endswith("\n")
    data = json.loads(response.stdout)
    assert isinstance(data, dict)
    return data


# ---- VERSION and the about text ----


def test_version_ignores_stdin_and_env() -> None:
    response = front.handle({"CNI_COMMAND": "VERSION"}, b"not json", dispatch=refuse)
    assert response.exit_code == 0
    assert response.stderr == ""
    assert json.loads(response.stdout)["cniVersion"] == "1.1.0"


def test_unset_command_prints_about_on_stderr() -> None:
    for env in ({}, {"CNI_COMMAND": ""}):
        response = front.handle(env, b"", dispatch=refuse)
        assert response.exit_code == 0
        assert response.stdout == ""
        assert response.stderr.startswith("CNI bridge plugin")
        assert "CNI protocol versions supported: 0.1.0, 0.2.0" in response.stderr
        assert "1.1.0" in response.stderr


def test_unknown_command_is_code_4() -> None:
    data = error_of(front.handle(env_for("FROB"), stdin_for(), dispatch=refuse))
    assert data["code"] == 4
    assert "FROB" in data["msg"]


# ---- required environment ----

REQUIRED = [
    ("ADD", "CNI_CONTAINERID"),
    ("ADD", "CNI_NETNS"),
    ("ADD", "CNI_IFNAME"),
    ("ADD", "CNI_PATH"),
    ("CHECK", "CNI_CONTAINERID"),
    ("CHECK", "CNI_NETNS"),
    ("CHECK", "CNI_IFNAME"),
    ("CHECK", "CNI_PATH"),
    ("DEL", "CNI_CONTAINERID"),
    ("DEL", "CNI_IFNAME"),
    ("DEL", "CNI_PATH"),
    ("GC", "CNI_PATH"),
    ("STATUS", "CNI_PATH"),
]


@pytest.mark.parametrize(("command", "var"), REQUIRED)
@pytest.mark.parametrize("how", ["<unset>", ""])
def test_missing_required_env_is_code_4_naming_it(command: str, var: str, how: str) -> None:
    stdin = stdin_for(cniVersion="1.1.0")
    data = error_of(front.handle(env_for(command, **{var: how}), stdin, dispatch=refuse))
    assert data["code"] == 4
    assert data["msg"] == f"required env variables [{var}] missing"


def test_all_missing_variables_are_named_at_once() -> None:
    env = {"CNI_COMMAND": "ADD", "CNI_IFNAME": "eth0"}
    data = error_of(front.handle(env, stdin_for(), dispatch=refuse))
    assert data["msg"] == "required env variables [CNI_CONTAINERID,CNI_NETNS,CNI_PATH] missing"


def test_del_without_netns_is_fine() -> None:
    recorder = Recorder("")
    response = front.handle(env_for("DEL", CNI_NETNS="<unset>"), stdin_for(), dispatch=recorder)
    assert response == Answer()
    assert recorder.requests[0].netns == ""


@pytest.mark.parametrize("command", ["GC", "STATUS"])
def test_gc_and_status_need_only_cni_path(command: str) -> None:
    recorder = Recorder()
    env = {
        "CNI_COMMAND": command,
        "CNI_PATH": "/opt/cni/bin",
        "CNI_CONTAINERID": "",
        "CNI_IFNAME": "",
    }
    response = front.handle(env, stdin_for(cniVersion="1.1.0"), dispatch=recorder)
    assert response.exit_code == 0, response.stdout
    assert recorder.requests[0].command == command


# ---- container IDs and interface names ----


@pytest.mark.parametrize(
    "bad", [".", "..", "a/b", "a:b", "a b", "-abc", "_abc", ".abc", "abc\n", "a\tb", "é"]
)
def test_bad_container_id_is_code_4(bad: str) -> None:
    data = error_of(front.handle(env_for("ADD", CNI_CONTAINERID=bad), stdin_for(), dispatch=refuse))
    assert data["code"] == 4
    assert "CNI_CONTAINERID" in data["msg"]


@pytest.mark.parametrize("good", ["a", "0", "abc-DEF_1.2", "x" * 200])
def test_good_container_ids(good: str) -> None:
    recorder = Recorder()
    response = front.handle(env_for("ADD", CNI_CONTAINERID=good), stdin_for(), dispatch=recorder)
    assert response.exit_code == 0, response.stdout
    assert recorder.requests[0].container_id == good


@pytest.mark.parametrize(
    "bad",
    [".", "..", "a/b", "a:b", "a b", "eth0\n", "x" * 16, "é" * 8, "\udcff" * 16, "eth\udcff"],
)
def test_bad_ifname_is_code_4(bad: str) -> None:
    for command in ("ADD", "DEL", "CHECK"):
        data = error_of(
            front.handle(env_for(command, CNI_IFNAME=bad), stdin_for(), dispatch=refuse)
        )
        assert data["code"] == 4
        assert "CNI_IFNAME" in data["msg"]


@pytest.mark.parametrize("good", ["eth0", "x" * 15, "net1.100", "é" * 7])
def test_good_ifnames(good: str) -> None:
    recorder = Recorder()
    response = front.handle(env_for("ADD", CNI_IFNAME=good), stdin_for(), dispatch=recorder)
    assert response.exit_code == 0, response.stdout
    assert recorder.requests[0].ifname == good


# ---- stdin decoding and the network name ----


@pytest.mark.parametrize(
    "stdin",
    [b"", b"   ", b'{"cniVersion":"1.0.0","name":', b"{'name': 'x'}", b"\xff\xfe", b"[" * 100000],
)
def test_malformed_json_is_code_6(stdin: bytes) -> None:
    data = error_of(front.handle(env_for("ADD"), stdin, dispatch=refuse))
    assert data["code"] == 6
    assert data["cniVersion"] == "1.1.0"


@pytest.mark.parametrize(
    "stdin",
    [
        b'{"cniVersion":"1.0.0","name":"mynet","mtu":NaN}',
        b'{"cniVersion":"1.0.0","name":"mynet","vlan":-Infinity}',
        b'{"cniVersion":"1.0.0","name":"mynet","bridge":"\\ud800"}',
        b'{"cniVersion":"1.0.0","name":"mynet","\\udfff":1}',
        b'{"cniVersion":"1.0.0","name":"mynet","bridge":"br\xed\xa0\x80"}',
        '{"cniVersion":"1.0.0","name":"mynet","bridge":"\\ud800"}'.encode("utf-16"),
    ],
    ids=[
        "nan",
        "infinity",
        "lone-surrogate-value",
        "lone-surrogate-key",
        "surrogate-as-utf8-bytes",
        "utf16-with-escape",
    ],
)
def test_python_only_json_is_code_6(stdin: bytes) -> None:
    """NaN and Infinity are not JSON; a lone surrogate cannot be encoded as a name or path."""
    data = error_of(front.handle(env_for("ADD"), stdin, dispatch=refuse))
    assert data["code"] == 6


@pytest.mark.parametrize("stdin", [b"[]", b'"mynet"', b"42", b"null", b"true"])
def test_non_object_json_is_code_6(stdin: bytes) -> None:
    data = error_of(front.handle(env_for("ADD"), stdin, dispatch=refuse))
    assert data["code"] == 6


@pytest.mark.parametrize("name", [None, "", 5, ["mynet"], "a/b", "-x", "my net", "net\n"])
def test_missing_empty_or_invalid_name_is_code_7(name: object) -> None:
    data = error_of(front.handle(env_for("ADD"), stdin_for(name=name), dispatch=refuse))
    assert data["code"] == 7
    assert '"name"' in data["msg"]


def test_non_string_cni_version_is_code_7() -> None:
    data = error_of(front.handle(env_for("ADD"), stdin_for(cniVersion=1), dispatch=refuse))
    assert data["code"] == 7


# ---- versions ----


def test_missing_cni_version_means_0_1_0() -> None:
    recorder = Recorder()
    front.handle(env_for("ADD"), stdin_for(cniVersion=None), dispatch=recorder)
    assert recorder.requests[0].cni_version == "0.1.0"
    front.handle(env_for("ADD"), stdin_for(cniVersion=""), dispatch=recorder)
    assert recorder.requests[1].cni_version == "0.1.0"


def test_unsupported_version_is_code_1_with_details() -> None:
    data = error_of(front.handle(env_for("ADD"), stdin_for(cniVersion="9.9.9"), dispatch=refuse))
    assert data == {
        "cniVersion": "1.1.0",
        "code": 1,
        "msg": "incompatible CNI versions",
        "details": 'config is "9.9.9", plugin supports '
        '["0.1.0" "0.2.0" "0.3.0" "0.3.1" "0.4.0" "1.0.0" "1.1.0"]',
    }


def test_check_on_0_3_1_is_code_1() -> None:
    data = error_of(front.handle(env_for("CHECK"), stdin_for(cniVersion="0.3.1"), dispatch=refuse))
    assert data["code"] == 1
    assert data["msg"] == "config version does not allow CHECK"
    assert data["cniVersion"] == "0.3.1"


@pytest.mark.parametrize("command", ["GC", "STATUS"])
def test_gc_and_status_on_1_0_0_are_code_1(command: str) -> None:
    data = error_of(front.handle(env_for(command), stdin_for(cniVersion="1.0.0"), dispatch=refuse))
    assert data["code"] == 1
    assert data["msg"] == f"config version does not allow {command}"


def test_check_on_0_4_0_reaches_dispatch() -> None:
    recorder = Recorder("")
    response = front.handle(env_for("CHECK"), stdin_for(cniVersion="0.4.0"), dispatch=recorder)
    assert response.exit_code == 0
    assert recorder.requests[0].cni_version == "0.4.0"


# ---- what dispatch receives and what the runtime gets back ----


def test_request_fields() -> None:
    recorder = Recorder('{"cniVersion": "1.0.0"}')
    stdin = stdin_for(ipam={"type": "host-local"})
    env = env_for("ADD", CNI_ARGS="IgnoreUnknown=1;K8S_POD_NAME=web;IP=10.0.0.5", CNI_PATH="/a::/b")
    response = front.handle(env, stdin, dispatch=recorder)
    assert response == Answer(stdout='{"cniVersion": "1.0.0"}')
    request = recorder.requests[0]
    assert request.command == "ADD"
    assert request.container_id == "c1"
    assert request.netns == "/var/run/netns/x"
    assert request.ifname == "eth0"
    assert request.path == ("/a", "/b")
    assert request.stdin == stdin
    assert request.config == json.loads(stdin)
    assert request.cni_version == "1.0.0"
    assert request.args == {"IgnoreUnknown": "1", "K8S_POD_NAME": "web", "IP": "10.0.0.5"}


def test_error_json_shape() -> None:
    stdin = stdin_for(cniVersion="0.4.0")
    response = front.handle(env_for("ADD", CNI_NETNS=""), stdin, dispatch=refuse)
    assert response.exit_code == 1
    assert response.stderr == ""
    assert response.stdout == (
        "{\n"
        '    "cniVersion": "0.4.0",\n'
        '    "code": 4,\n'
        '    "msg": "required env variables [CNI_NETNS] missing"\n'
        "}\n"
    )


def test_error_from_dispatch_is_printed_in_the_config_version() -> None:
    def fail(request: Request, notes: Notes) -> str:
        raise InvalidEnvironment("nope", "because")

    data = error_of(front.handle(env_for("ADD"), stdin_for(cniVersion="0.3.1"), dispatch=fail))
    assert data == {"cniVersion": "0.3.1", "code": 4, "msg": "nope", "details": "because"}


def test_notes_of_a_request_reach_stderr_whether_it_succeeds_or_fails() -> None:
    def noted(request: Request, notes: Notes) -> str:
        notes.add("rollback: undoing something failed")
        if request.command == "DEL":
            raise InvalidEnvironment("nope")
        return "{}"

    done = front.handle(env_for("ADD"), stdin_for(), dispatch=noted)
    assert done == Answer(stdout="{}", stderr="rollback: undoing something failed\n")
    failed = front.handle(env_for("DEL"), stdin_for(), dispatch=noted)
    assert failed.exit_code == 1 and json.loads(failed.stdout)["code"] == 4
    assert failed.stderr == "rollback: undoing something failed\n"


def test_unexpected_exception_is_code_999_with_traceback_only_on_stderr() -> None:
    def crash(request: Request, notes: Notes) -> str:
        raise RuntimeError("kaboom")

    response = front.handle(env_for("ADD"), stdin_for(), dispatch=crash)
    data = error_of(response)
    assert data["code"] == 999
    assert "kaboom" in data["msg"]
    assert "Traceback" not in response.stdout
    assert "Traceback (most recent call last)" in response.stderr
    assert "RuntimeError: kaboom" in response.stderr


# ---- CNI_ARGS ----


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", {}),
        ("IP=10.0.0.5", {"IP": "10.0.0.5"}),
        ("MAC=aa:bb:cc:dd:ee:ff;IP=10.0.0.5", {"MAC": "aa:bb:cc:dd:ee:ff", "IP": "10.0.0.5"}),
        ("IP=", {"IP": ""}),
        (
            "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web;"
            "K8S_POD_INFRA_CONTAINER_ID=abc;K8S_POD_UID=u-1",
            {
                "IgnoreUnknown": "1",
                "K8S_POD_NAMESPACE": "default",
                "K8S_POD_NAME": "web",
                "K8S_POD_INFRA_CONTAINER_ID": "abc",
                "K8S_POD_UID": "u-1",
            },
        ),
        ("IgnoreUnknown=true;FOO=bar", {"IgnoreUnknown": "true", "FOO": "bar"}),
        ("IgnoreUnknown=TRUE;FOO=bar", {"IgnoreUnknown": "TRUE", "FOO": "bar"}),
        ("FOO=bar;IgnoreUnknown=1", {"FOO": "bar", "IgnoreUnknown": "1"}),
    ],
)
def test_cni_args(text: str, expected: dict[str, str]) -> None:
    assert front.parse_cni_args(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "K8S_POD_NAME=web",
        "IgnoreUnknown=0;K8S_POD_NAME=web",
        "IgnoreUnknown=false;FOO=bar",
        "ip=10.0.0.5",  # keys are case-sensitive
    ],
)
def test_unknown_cni_args_without_ignore_unknown(text: str) -> None:
    with pytest.raises(InvalidEnvironment) as info:
        front.parse_cni_args(text)
    assert info.value.code == 4
    assert info.value.msg.startswith("ARGS: unknown args")


@pytest.mark.parametrize("text", ["IP", "=10.0.0.5", "IP=10.0.0.5;junk"])
def test_bad_cni_args_pairs(text: str) -> None:
    with pytest.raises(InvalidEnvironment) as info:
        front.parse_cni_args(text)
    assert info.value.code == 4


def test_bad_cni_args_through_handle() -> None:
    env = env_for("ADD", CNI_ARGS="K8S_POD_NAME=web")
    data = error_of(front.handle(env, stdin_for(), dispatch=refuse))
    assert data["code"] == 4
    assert "K8S_POD_NAME" in data["msg"]
