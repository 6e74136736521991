"""Small helpers over the standard ipaddress module, shared by config, results and IPAM."""

from __future__ import annotations

import ipaddress
from typing import TypeAlias

IPAddress: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork: TypeAlias = ipaddress.IPv4Network | ipaddress.IPv6Network
IPInterface: TypeAlias = ipaddress.IPv4Interface | ipaddress.IPv6Interface


def parse_address(text: str) -> IPAddress:
    return ipaddress.ip_address(text)


def parse_network(text: str, *, strict: bool = True) -> IPNetwork:
    """A CIDR; with strict, host bits set are an error (Go's net.ParseCIDR keeps them silently)."""
    if "/" not in text:
        raise ValueError(f"{text!r} is not in CIDR notation (a.b.c.d/nn)")
    return ipaddress.ip_network(text, strict=strict)


def parse_interface(text: str) -> IPInterface:
    """An address with its prefix, e.g. '10.88.0.5/16'."""
    if "/" not in text:
        raise ValueError(f"{text!r} is not in CIDR notation (a.b.c.d/nn)")
    return ipaddress.ip_interface(text)


def default_route(version: int) -> IPNetwork:
    return ipaddress.ip_network("0.0.0.0/0" if version == 4 else "::/0")
