"""Typed reads from decoded JSON objects, collecting problems instead of raising (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from cni_bridge_py.netaddr import IPAddress, parse_address

T = TypeVar("T")


class Fields:
    """Typed reads from one JSON object; problems are collected, not raised."""

    def __init__(self, data: Mapping[str, Any], where: str, problems: list[str]) -> None:
        self.data = data
        self.where = where
        self.problems = problems

    def path(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else key

    def problem(self, key: str, text: str) -> None:
        self.problems.append(f'"{self.path(key)}": {text}')

    def get(self, key: str, kind: type[T], default: T) -> T:
        value = self.data.get(key)
        if value is None:
            return default
        # bool is a subclass of int in Python, but not in JSON.
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            self.problem(key, f"expected {_kind_name(kind)}, got {_json_kind(value)} {value!r}")
            return default
        return value

    def obj(self, key: str) -> Fields | None:
        value = self.data.get(key)
        if value is None:
            return None
        if not isinstance(value, dict):
            self.problem(key, f"expected an object, got {_json_kind(value)}")
            return None
        return Fields(value, self.path(key), self.problems)

    def objects(self, key: str) -> list[Fields]:
        values = self.get(key, list, [])
        out = []
        for index, value in enumerate(values):
            if isinstance(value, dict):
                out.append(Fields(value, f"{self.path(key)}[{index}]", self.problems))
            else:
                self.problem(f"{key}[{index}]", f"expected an object, got {_json_kind(value)}")
        return out

    def strings(self, key: str) -> tuple[str, ...]:
        values = self.get(key, list, [])
        if not all(isinstance(v, str) for v in values):
            self.problem(key, "expected a list of strings")
            return ()
        return tuple(values)

    def address(self, key: str) -> IPAddress | None:
        text = self.get(key, str, "")
        if not text:
            return None
        try:
            return parse_address(text)
        except ValueError:
            self.problem(key, f"{text!r} is not an IP address")
            return None


def _kind_name(kind: type) -> str:
    return {
        bool: "a boolean",
        int: "an integer",
        str: "a string",
        list: "a list",
        dict: "an object",
    }[kind]


def _json_kind(value: object) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    return _kind_name(type(value)) if type(value) in (str, list, dict) else "null"
