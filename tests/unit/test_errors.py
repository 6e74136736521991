"""Typed CNI errors and their JSON."""

from __future__ import annotations

import json

import pytest

from cni_bridge_py import errors


@pytest.mark.parametrize(
    ("cls", "code"),
    [
        (errors.CniError, 999),
        (errors.IncompatibleVersion, 1),
        (errors.UnsupportedField, 2),
        (errors.UnknownContainer, 3),
        (errors.InvalidEnvironment, 4),
        (errors.IOFailure, 5),
        (errors.DecodingFailure, 6),
        (errors.InvalidConfig, 7),
        (errors.InvalidNetns, 8),
        (errors.TryAgainLater, 11),
        (errors.PluginUnavailable, 50),
        (errors.InternalError, 999),
    ],
)
def test_codes(cls: type[errors.CniError], code: int) -> None:
    err = cls("boom")
    assert err.code == code
    assert err.to_dict("1.0.0")["code"] == code


def test_json_shape_without_details() -> None:
    text = errors.InvalidConfig("bad thing").to_json("1.0.0")
    assert text == '{\n    "cniVersion": "1.0.0",\n    "code": 7,\n    "msg": "bad thing"\n}'
    assert list(json.loads(text)) == ["cniVersion", "code", "msg"]


def test_json_shape_with_details() -> None:
    data = json.loads(errors.InvalidEnvironment("m", "d").to_json("0.4.0"))
    assert data == {"cniVersion": "0.4.0", "code": 4, "msg": "m", "details": "d"}
    assert list(data) == ["cniVersion", "code", "msg", "details"]


def test_str_joins_details() -> None:
    assert str(errors.IOFailure("m")) == "m"
    assert str(errors.IOFailure("m", "d")) == "m: d"


def test_passthrough_keeps_the_delegates_code() -> None:
    err = errors.PassthroughError(42, "from ipam", "why")
    assert err.to_dict("1.0.0") == {
        "cniVersion": "1.0.0",
        "code": 42,
        "msg": "from ipam",
        "details": "why",
    }
    assert isinstance(err, errors.CniError)


def test_huge_messages_are_capped_in_the_json() -> None:
    """A message that echoes megabytes of input (a 4 MB network name is valid) stays small."""
    name = "n" * (4 * 1024 * 1024)
    body = json.loads(
        errors.IOFailure(f"cannot create {name}", f"[Errno 36] {name}").to_json("1.0.0")
    )
    for key in ("msg", "details"):
        assert len(body[key]) < errors.MAX_TEXT + 100
        assert body[key].endswith("more characters)")
    short = errors.InvalidConfig("short", "also short").to_dict("1.0.0")
    assert short["msg"] == "short" and short["details"] == "also short"
