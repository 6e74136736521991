"""netaddr: ipaddress's parses, each text's kept for the next request that sends it."""

from __future__ import annotations

import ipaddress

import pytest

from cni_bridge_py import netaddr
from cni_bridge_py.netaddr import parse_address, parse_interface, parse_network


def test_a_text_parsed_again_is_the_same_value_and_the_same_object() -> None:
    first = parse_interface("10.250.0.5/22")
    assert first == ipaddress.ip_interface("10.250.0.5/22")
    assert parse_interface("10.250.0.5/22") is first
    assert parse_address("fd00::1") is parse_address("fd00::1")
    assert parse_network("10.250.0.0/22") is parse_network("10.250.0.0/22")


def test_kinds_of_parse_are_kept_apart() -> None:
    """One text, three meanings: an address, a network strictly or loosely, an interface."""
    assert parse_network("10.0.0.5/24", strict=False) == ipaddress.ip_network("10.0.0.0/24")
    with pytest.raises(ValueError, match="has host bits set"):
        parse_network("10.0.0.5/24")  # kept loosely just before: still refused strictly
    assert parse_interface("10.0.0.5/24").ip == ipaddress.ip_address("10.0.0.5")
    with pytest.raises(ValueError, match="does not appear to be an IPv4 or IPv6 address"):
        parse_address("10.0.0.5/24")


@pytest.mark.parametrize("text", ["10.0.0.256", "010.0.0.1", "", "fd00::g"])
def test_what_does_not_parse_is_refused_every_time(text: str) -> None:
    for _ in range(2):
        with pytest.raises(ValueError):
            parse_address(text)
    assert ("address", text) not in netaddr._PARSED


def test_texts_without_a_prefix_are_refused_as_before() -> None:
    for parse in (parse_interface, parse_network):
        with pytest.raises(ValueError, match="not in CIDR notation"):
            parse("10.0.0.1")


def test_a_list_is_refused_as_not_cidr_as_before_it_was_kept() -> None:
    """JSON may carry a list where a CIDR belongs: refused for want of a prefix, as before
    parses were kept (a list is no key)."""
    for parse in (parse_interface, parse_network):
        with pytest.raises(ValueError, match="not in CIDR notation"):
            parse(["10.0.0.0/8"])  # type: ignore[arg-type]


def test_a_number_is_parsed_as_ipaddress_does_and_not_kept() -> None:
    """JSON may carry a number where an address belongs: ipaddress takes it; 1 and True would
    be one key, so numbers are never kept."""
    assert parse_address(167772161) == ipaddress.ip_address("10.0.0.1")  # type: ignore[arg-type]
    assert parse_address(True) == ipaddress.ip_address("0.0.0.1")  # type: ignore[arg-type]
    assert all(type(key[1]) is str for key in netaddr._PARSED)


def test_the_kept_parses_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(netaddr, "_PARSED", {})
    monkeypatch.setattr(netaddr, "_PARSED_LIMIT", 3)
    for i in range(10):
        assert parse_address(f"10.0.0.{i}") == ipaddress.ip_address(f"10.0.0.{i}")
        assert len(netaddr._PARSED) <= 3
