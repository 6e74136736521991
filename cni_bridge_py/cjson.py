"""json.loads and json.dumps for the one-shot plugin, on the C accelerators in `_json` alone.

`import json` costs every one-shot run ~9 ms on a slow machine: json.decoder, json.scanner
and json.encoder import `re` (and with it enum) for regular expressions that only the pure
Python fallbacks use. This module drives the same C scanner json.loads uses
(`_json.make_scanner`) and replays json.dumps's pure-Python indented layout with
`_json.encode_basestring_ascii`, so the values, the error messages and the output bytes are
json's own (tests/unit/test_cjson.py compares them).

One wrinkle: on malformed input the C scanner builds its exception from
`sys.modules["json.decoder"].JSONDecodeError` without importing it. When json is not loaded
and this process runs no other thread (the one-shot front, before any verb), a stand-in
module holding DecodeError is put there for the scanner's call only; otherwise (the agent,
tests, any thread) json itself does the work.
"""

import sys
from _json import encode_basestring_ascii, make_scanner
from _thread import _count as _threads  # threads started besides the main one, still alive

TYPE_CHECKING = False  # not typing's: importing typing costs every plugin run
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

_WHITESPACE = " \t\n\r"
_INFINITY = float("inf")


class DecodeError(ValueError):
    """json.JSONDecodeError's twin: same attributes, same message."""

    def __init__(self, msg: str, doc: str, pos: int) -> None:
        lineno = doc.count("\n", 0, pos) + 1
        colno = pos - doc.rfind("\n", 0, pos)
        super().__init__(f"{msg}: line {lineno} column {colno} (char {pos})")
        self.msg = msg
        self.doc = doc
        self.pos = pos
        self.lineno = lineno
        self.colno = colno

    def __reduce__(self) -> "tuple[type[DecodeError], tuple[str, str, int]]":
        return self.__class__, (self.msg, self.doc, self.pos)


_CONSTANTS = {"-Infinity": -_INFINITY, "Infinity": _INFINITY, "NaN": _INFINITY - _INFINITY}


class _Context:
    """What the C scanner reads from a JSONDecoder: json.loads's defaults."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    memo: "dict[str, str]"

    def __init__(self, parse_constant: "Callable[[str], Any]") -> None:
        self.parse_constant = parse_constant


_STANDIN = type(sys)("json.decoder")
_STANDIN.JSONDecodeError = DecodeError  # type: ignore[attr-defined]


def loads(data: "bytes | str", parse_constant: "Callable[[str], Any] | None" = None) -> "Any":
    """json.loads(data, parse_constant=parse_constant), without importing json when it can."""
    if "json" in sys.modules or _threads():
        import json  # noqa: PLC0415 - json is loaded already, or another thread might load it

        return json.loads(data, parse_constant=parse_constant)
    if isinstance(data, str):
        if data.startswith("\ufeff"):
            raise DecodeError("Unexpected UTF-8 BOM (decode using utf-8-sig)", data, 0)
        text = data
    else:
        text = data.decode(_detect_encoding(data), "surrogatepass")
    # The C scanner reads a JSONDecoder's attributes; _Context has them.
    scan = make_scanner(_Context(parse_constant or _CONSTANTS.__getitem__))  # type: ignore[arg-type]
    sys.modules["json.decoder"] = _STANDIN
    try:
        value, end = scan(text, _skip_space(text, 0))
    except StopIteration as err:
        raise DecodeError("Expecting value", text, err.value) from None
    finally:
        if sys.modules.get("json.decoder") is _STANDIN:
            del sys.modules["json.decoder"]
    end = _skip_space(text, end)
    if end != len(text):
        raise DecodeError("Extra data", text, end)
    return value


def _skip_space(text: str, index: int) -> int:
    while index < len(text) and text[index] in _WHITESPACE:
        index += 1
    return index


def _detect_encoding(b: bytes) -> str:  # noqa: PLR0911 - json.detect_encoding's shape
    """json.detect_encoding, verbatim in behaviour."""
    if b.startswith((b"\xef\xbb\xbf",)):
        return "utf-8-sig"
    if b.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "utf-32" if b.startswith((b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff")) else "utf-16"
    if len(b) >= 4:
        if not b[0]:
            # 00 00 -- -- - utf-32-be
            # 00 XX -- -- - utf-16-be
            return "utf-16-be" if b[1] else "utf-32-be"
        if not b[1]:
            # XX 00 00 00 - utf-32-le
            # XX 00 00 XX - utf-16-le
            # XX 00 XX -- - utf-16-le
            return "utf-16-le" if b[2] or b[3] else "utf-32-le"
    elif len(b) == 2:
        if not b[0]:
            # 00 XX - utf-16-be
            return "utf-16-be"
        if not b[1]:
            # XX 00 - utf-16-le
            return "utf-16-le"
    # default
    return "utf-8"


def dumps(value: "Any", indent: int | None = None) -> str:
    """json.dumps(value, indent=indent): the same text (keys in insertion order, ASCII only)."""
    parts: list[str] = []
    if indent is None:
        _encode(value, parts, None, ", ", 0)
    else:
        _encode(value, parts, " " * indent, ",", 0)
    return "".join(parts)


def quote(text: str) -> str:
    """json.dumps(text) for a str."""
    return encode_basestring_ascii(text)


def _float(value: float) -> str:
    if value != value:  # noqa: PLR0124 - NaN
        return "NaN"
    if value == _INFINITY:
        return "Infinity"
    if value == -_INFINITY:
        return "-Infinity"
    return float.__repr__(value)


def _scalar(value: "Any") -> str | None:  # noqa: PLR0911 - one per JSON scalar type
    if isinstance(value, str):
        return encode_basestring_ascii(value)
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return int.__repr__(value)
    if isinstance(value, float):
        return _float(value)
    return None


def _encode(value: "Any", out: list[str], indent: str | None, item_sep: str, level: int) -> None:
    text = _scalar(value)
    if text is not None:
        out.append(text)
    elif isinstance(value, (list, tuple)):
        if value:
            _container(list(zip(value, value, strict=True)), "[]", out, indent, item_sep, level)
        else:
            out.append("[]")
    elif isinstance(value, dict):
        if value:
            pairs = [(_key(key), item) for key, item in value.items()]
            _container(pairs, "{}", out, indent, item_sep, level, keyed=True)
        else:
            out.append("{}")
    else:
        raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _container(  # noqa: PLR0917 - the encoder's state, passed down
    items: "list[tuple[Any, Any]]",
    brackets: str,
    out: list[str],
    indent: str | None,
    item_sep: str,
    level: int,
    *,
    keyed: bool = False,
) -> None:
    """An array (items: (value, value)) or object (items: (quoted key, value)), as json's
    _iterencode_list and _iterencode_dict lay them out."""
    if indent is None:
        separator = item_sep
        out.append(brackets[0])
        close = brackets[1]
    else:
        separator = item_sep + "\n" + indent * (level + 1)
        out.append(brackets[0] + "\n" + indent * (level + 1))
        close = "\n" + indent * level + brackets[1]
    for i, (name, item) in enumerate(items):
        if i:
            out.append(separator)
        if keyed:
            out.append(name)
            out.append(": ")
        _encode(item, out, indent, item_sep, level + 1)
    out.append(close)


def _key(key: "Any") -> str:
    if isinstance(key, str):
        return encode_basestring_ascii(key)
    if isinstance(key, float):
        return encode_basestring_ascii(_float(key))
    text = _scalar(key)
    if text is None:
        raise TypeError(f"keys must be str, int, float, bool or None, not {type(key).__name__}")
    return encode_basestring_ascii(text)


def check_encodable(value: "Any") -> None:
    """Raise UnicodeEncodeError if a string in `value` (a decoded JSON value) cannot be
    UTF-8 encoded: what json.dumps(value, ensure_ascii=False).encode() raises."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            item.encode()
        elif isinstance(item, dict):
            for key, member in item.items():
                key.encode()
                pending.append(member)
        elif isinstance(item, list):
            pending.extend(item)
