"""host-local's resolvConf reading."""

from __future__ import annotations

from pathlib import Path

import pytest

from cni_bridge_py.errors import IOFailure
from cni_bridge_py.ipam.resolvconf import parse_resolv_conf, read_resolv_conf
from cni_bridge_py.result import DNS


def test_every_key() -> None:
    text = (
        "nameserver 10.0.0.53\n"
        "nameserver fd00::53\n"
        "domain example.com\n"
        "search a.example b.example\n"
        "search c.example\n"
        "options ndots:2 edns0\n"
        "options rotate\n"
    )
    assert parse_resolv_conf(text) == DNS(
        nameservers=("10.0.0.53", "fd00::53"),
        domain="example.com",
        search=("a.example", "b.example", "c.example"),
        options=("ndots:2", "edns0", "rotate"),
    )


def test_comments_blank_and_unknown_lines_are_skipped() -> None:
    text = (
        "# nameserver 1.1.1.1\n"
        "; nameserver 2.2.2.2\n"
        "\n"
        "   \t\n"
        "nameserver\n"
        "sortlist 10.0.0.0/8\n"
        "  nameserver   10.0.0.53   extra  \n"
    )
    assert parse_resolv_conf(text) == DNS(nameservers=("10.0.0.53",))


def test_the_last_domain_wins() -> None:
    assert parse_resolv_conf("domain a\ndomain b\n").domain == "b"


def test_crlf_and_no_final_newline() -> None:
    assert parse_resolv_conf("nameserver 1.2.3.4\r\nsearch x").search == ("x",)


def test_empty_file_is_empty_dns() -> None:
    assert parse_resolv_conf("").is_empty()


def test_read(tmp_path: Path) -> None:
    path = tmp_path / "resolv.conf"
    path.write_bytes(b"nameserver 10.0.0.53\nsearch \xff.example\n")
    dns = read_resolv_conf(str(path))
    assert dns.nameservers == ("10.0.0.53",)
    assert dns.search == ("\ufffd.example",)


def test_read_missing_is_code_5(tmp_path: Path) -> None:
    with pytest.raises(IOFailure) as info:
        read_resolv_conf(str(tmp_path / "missing"))
    assert info.value.code == 5
    assert info.value.msg == f"cannot read the IPAM resolvConf file {tmp_path / 'missing'}"
    assert "No such file" in info.value.details
