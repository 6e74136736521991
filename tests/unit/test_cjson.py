"""cjson gives json's own values, errors and bytes (it replaces json on the one-shot path)."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cni_bridge_py import cjson

JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.tuples(inner, inner)
        | st.dictionaries(st.text(max_size=5), inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=300)
@given(JSON_VALUES, st.sampled_from([None, 0, 2, 4]))
def test_dumps_is_json_dumps(value: Any, indent: int | None) -> None:
    assert cjson.dumps(value, indent=indent) == json.dumps(value, indent=indent)


@pytest.mark.parametrize("key", [1, 2.5, True, False, None, float("nan")])
def test_dumps_converts_keys_as_json_does(key: Any) -> None:
    assert cjson.dumps({key: 1}, indent=4) == json.dumps({key: 1}, indent=4)


def test_dumps_refuses_what_json_refuses() -> None:
    for value in ({(1, 2): 1}, {1, 2}, object()):
        with pytest.raises(TypeError):
            json.dumps(value)
        with pytest.raises(TypeError):
            cjson.dumps(value)


def test_quote_is_json_dumps_of_a_string() -> None:
    for text in ("mynet", 'a"b\\c', "é\u2028\ud800", "\n\t\x00"):
        assert cjson.quote(text) == json.dumps(text)


# Decoding goes through json itself when json is loaded (as here): the stand-in path runs in
# a fresh interpreter that has not loaded it.
DOCUMENTS = [
    b'{"cniVersion": "1.0.0", "name": "n", "x": [1, 2.5, -0, 1e400, true, null, "\\u00e9"]}',
    b'\xef\xbb\xbf{"a": 1}',
    '{"a": "é"}'.encode("utf-16"),
    '{"a": "é"}'.encode("utf-16-le"),
    '{"a": "é"}'.encode("utf-32-be"),
    b'  \n{"a": {"b": [{}]}}\r\t ',
    b'{"a": NaN}',
    b"",
    b"   ",
    b"{bad",
    b'{"a" 1}',
    b'{"a": 1,}',
    b'{"a": 1} x',
    b"[1, 2",
    b'"\\x"',
    b'"\\ud800"',
    b'"a\x01b"',
    b'"unterminated',
    b"\xff\xfe\xfd",
    b"-",
    b"1.",
    b'{"a":1}\n{"b":2}',
    b"[" * 5000 + b"]" * 5000,
]

PROBE = """
import sys
data = sys.stdin.buffer.read()
constant = sys.argv[1] == "strict"
def refuse(name):
    raise ValueError(name + " is not a JSON value")
if sys.argv[2] == "cjson":
    from cni_bridge_py.cjson import loads
    try:
        value = loads(data, parse_constant=refuse if constant else None)
    except (ValueError, RecursionError) as exc:
        name = type(exc).__name__
        value = ("error", "JSONDecodeError" if name == "DecodeError" else name, str(exc))
    assert "json" not in sys.modules and "json.decoder" not in sys.modules, sorted(sys.modules)
else:
    import json
    try:
        value = json.loads(data, parse_constant=refuse if constant else None)
    except (ValueError, RecursionError) as exc:
        value = ("error", type(exc).__name__, str(exc))
sys.stdout.write(repr(value))
"""


def probe(data: bytes, mode: str, how: str) -> str:
    proc = subprocess.run(
        [
            sys.executable,
            "-I",
            "-S",
            "-c",
            f"import sys; sys.path[:0] = {sys.path!r}\n" + PROBE,
            mode,
            how,
        ],
        input=data,
        capture_output=True,
        check=True,
        timeout=60,
    )
    return proc.stdout.decode()


@pytest.mark.parametrize("data", DOCUMENTS)
@pytest.mark.parametrize("mode", ["strict", "lenient"])
def test_loads_is_json_loads_without_json(data: bytes, mode: str) -> None:
    assert probe(data, mode, "cjson") == probe(data, mode, "json")


def test_loads_leaves_no_stand_in_behind() -> None:
    code = (
        f"import sys; sys.path[:0] = {sys.path!r}\n"
        "from cni_bridge_py import cjson\n"
        "try:\n    cjson.loads(b'{bad')\nexcept ValueError as exc:\n    print(exc)\n"
        "import json\nprint(json.loads('[1]'))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-I", "-S", "-c", code], capture_output=True, check=True, timeout=60
    )
    assert proc.stdout.decode().splitlines() == [
        "Expecting property name enclosed in double quotes: line 1 column 2 (char 1)",
        "[1]",
    ]


def test_loads_with_json_loaded_is_json() -> None:
    assert cjson.loads(b'{"a": [1]}') == {"a": [1]}
    with pytest.raises(json.JSONDecodeError):
        cjson.loads(b"{bad")


def test_check_encodable_is_what_json_dumps_encode_raises() -> None:
    for value in ({"a": ["\ud800"]}, {"\udc00": 1}, ["x", {"y": "\ud834"}]):
        with pytest.raises(UnicodeEncodeError) as ours:
            cjson.check_encodable(value)
        with pytest.raises(UnicodeEncodeError) as theirs:
            json.dumps(value, ensure_ascii=False).encode()
        assert ours.value.reason == theirs.value.reason
    cjson.check_encodable({"a": ["é", 1, None, {"b": "\u2028"}]})
