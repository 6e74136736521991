"""Small helpers over the standard ipaddress module, shared by config, results and IPAM."""

from __future__ import annotations

import ipaddress
from typing import TypeAlias

IPAddress: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork: TypeAlias = ipaddress.IPv4Network | ipaddress.IPv6Network
IPInterface: TypeAlias = ipaddress.IPv4Interface | ipaddress.IPv6Interface


# What each text parsed to, kept: ipaddress parses in Python, ~4 us an address here and
# several times that in an agent between requests (its code is cold), and a network's
# requests repeat the same few texts (the gateway, the routes, the subnet). The objects are
# immutable values, so one may serve every caller; only a str is kept (1 and True are equal
# keys), and only what parsed. Bounded by clearing.
_PARSED: dict[tuple[str, str], object] = {}
_PARSED_LIMIT = 4096


def parse_address(text: str) -> IPAddress:
    if type(text) is not str:
        return ipaddress.ip_address(text)  # a number (JSON), or what ipaddress refuses
    found = _PARSED.get(("address", text))
    if found is None:
        found = _keep(("address", text), ipaddress.ip_address(text))
    return found  # type: ignore[return-value]


def parse_network(text: str, *, strict: bool = True) -> IPNetwork:
    """A CIDR; with strict, host bits set are an error (Go's net.ParseCIDR keeps them silently)."""
    key = ("network" if strict else "loose network", text)
    found = _PARSED.get(key)
    if found is None:
        if "/" not in text:
            raise ValueError(f"{text!r} is not in CIDR notation (a.b.c.d/nn)")
        found = _keep(key, ipaddress.ip_network(text, strict=strict))
    return found  # type: ignore[return-value]


def parse_interface(text: str) -> IPInterface:
    """An address with its prefix, e.g. '10.88.0.5/16'."""
    found = _PARSED.get(("interface", text))
    if found is None:
        if "/" not in text:
            raise ValueError(f"{text!r} is not in CIDR notation (a.b.c.d/nn)")
        found = _keep(("interface", text), ipaddress.ip_interface(text))
    return found  # type: ignore[return-value]


def _keep(key: tuple[str, str], parsed: object) -> object:
    if len(_PARSED) >= _PARSED_LIMIT:
        _PARSED.clear()
    _PARSED[key] = parsed
    return parsed


def default_route(version: int) -> IPNetwork:
    return ipaddress.ip_network("0.0.0.0/0" if version == 4 else "::/0")
