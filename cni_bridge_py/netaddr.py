"""Small helpers over the standard ipaddress module, shared by config, results and IPAM."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import TypeAlias

IPAddress: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork: TypeAlias = ipaddress.IPv4Network | ipaddress.IPv6Network
IPInterface: TypeAlias = ipaddress.IPv4Interface | ipaddress.IPv6Interface


# What each text parsed to, kept: ipaddress parses in Python, ~4 us an address here and
# several times that in an agent between requests (its code is cold), and a network's
# requests repeat the same few texts (the gateway, the routes, the subnet). The objects are
# immutable values, so one may serve every caller; only a str is kept (1 and True are equal
# keys, a list is no key at all), and only what parsed. Bounded by clearing.
_PARSED: dict[tuple[str, str], object] = {}
_PARSED_LIMIT = 4096


def parse_address(text: str) -> IPAddress:
    return _kept("address", text, ipaddress.ip_address)  # type: ignore[return-value]


def parse_network(text: str, *, strict: bool = True) -> IPNetwork:
    """A CIDR; with strict, host bits set are an error (Go's net.ParseCIDR keeps them silently)."""
    if strict:
        return _kept("network", text, _strict_network)  # type: ignore[return-value]
    return _kept("loose network", text, _loose_network)  # type: ignore[return-value]


def parse_interface(text: str) -> IPInterface:
    """An address with its prefix, e.g. '10.88.0.5/16'."""
    return _kept("interface", text, _interface)  # type: ignore[return-value]


def _kept(kind: str, text: str, parse: Callable[[str], object]) -> object:
    """`parse(text)`, kept under (kind, text) when `text` is a str."""
    if type(text) is not str:
        return parse(text)  # a number (JSON), or what the parse refuses: never kept
    found = _PARSED.get((kind, text))
    if found is None:
        found = parse(text)
        if len(_PARSED) >= _PARSED_LIMIT:
            _PARSED.clear()
        _PARSED[(kind, text)] = found
    return found


def _strict_network(text: str) -> IPNetwork:
    _require_prefix(text)
    return ipaddress.ip_network(text)


def _loose_network(text: str) -> IPNetwork:
    _require_prefix(text)
    return ipaddress.ip_network(text, strict=False)


def _interface(text: str) -> IPInterface:
    _require_prefix(text)
    return ipaddress.ip_interface(text)


def _require_prefix(text: str) -> None:
    if "/" not in text:
        raise ValueError(f"{text!r} is not in CIDR notation (a.b.c.d/nn)")


def default_route(version: int) -> IPNetwork:
    return ipaddress.ip_network("0.0.0.0/0" if version == 4 else "::/0")
