"""config_memo.ParsedConfigs answers as config.parse answers, request after request, while
parsing each network's config once (pure: no root, no kernel)."""

from __future__ import annotations

from typing import Any

import pytest

from cni_bridge_py import config
from cni_bridge_py.config_memo import ParsedConfigs
from cni_bridge_py.errors import InvalidConfig
from cni_bridge_py.request import Request

CONF: dict[str, Any] = {
    "cniVersion": "1.1.0",
    "name": "mynet",
    "type": "cni-bridge-py",
    "bridge": "v-net-0",
    "isGateway": True,
    "ipMasq": True,
    "ipam": {"type": "host-local", "subnet": "192.168.15.0/24"},
}


def prev(address: str) -> dict[str, Any]:
    return {
        "cniVersion": "1.1.0",
        "interfaces": [{"name": "eth0", "sandbox": "/var/run/netns/red"}],
        "ips": [{"address": address, "interface": 0}],
    }


def request(
    data: dict[str, Any], command: str = "ADD", args: dict[str, str] | None = None
) -> Request:
    return Request(
        command=command,
        container_id="red",
        netns="/var/run/netns/red",
        ifname="eth0",
        args=args or {},
        path=("/opt/cni/bin",),
        stdin=b"",
        config=data,
        cni_version=str(data["cniVersion"]),
    )


def plain(r: Request) -> config.NetConf:
    return config.parse(r.config, r.cni_version, r.args, r.command)


def test_a_config_is_parsed_once_and_answers_as_parse_does() -> None:
    configs = ParsedConfigs()
    first, second = configs.parse(request(CONF)), configs.parse(request(dict(CONF)))
    assert first == second == plain(request(CONF))
    assert second is first  # the second came from what the first kept


def test_each_check_gets_its_own_prev_result() -> None:
    configs = ParsedConfigs()
    for address in ("192.168.15.2/24", "192.168.15.3/24", "192.168.15.2/24"):
        r = request({**CONF, "prevResult": prev(address)}, "CHECK")
        assert configs.parse(r) == plain(r)
    assert configs.parse(request(CONF, "CHECK")).prev_result is None


@pytest.mark.parametrize(
    ("kept", "asked"),
    [
        ({"ipMasq": True}, {"ipMasq": 1}),  # True == 1 in Python, not in a config
        ({"mtu": 1400}, {"mtu": 1400.0}),
        ({"mtu": 1400}, {"mtu": True}),
        ({"ipam": {"type": "host-local", "subnet": "10.0.0.0/24"}}, {"ipam": ["host-local"]}),
    ],
)
def test_values_python_finds_equal_are_parsed_apart(
    kept: dict[str, Any], asked: dict[str, Any]
) -> None:
    configs = ParsedConfigs()
    configs.parse(request({**CONF, **kept}))
    with pytest.raises(InvalidConfig) as refused:
        configs.parse(request({**CONF, **asked}))
    with pytest.raises(InvalidConfig) as plainly:
        plain(request({**CONF, **asked}))
    assert str(refused.value) == str(plainly.value)


def test_the_verb_the_version_and_cni_args_are_part_of_what_is_kept() -> None:
    configs = ParsedConfigs()
    asked = [
        request(CONF),
        request(CONF, "DEL"),
        request({**CONF, "cniVersion": "0.4.0"}),
        request(CONF, args={"IP": "192.168.15.9"}),
    ]
    for r in asked:
        configs.parse(r)
    for r in asked:
        assert configs.parse(r) == plain(r)
    assert configs.parse(asked[3]).ipam != configs.parse(asked[0]).ipam


def test_a_bad_prev_result_is_refused_as_parse_refuses_it() -> None:
    configs = ParsedConfigs()
    configs.parse(request(CONF, "CHECK"))  # the rest of the config is kept
    bad = request({**CONF, "prevResult": {"cniVersion": "1.1.0", "ips": "nope"}}, "CHECK")
    with pytest.raises(InvalidConfig) as kept:
        configs.parse(bad)
    with pytest.raises(InvalidConfig) as plainly:
        plain(bad)
    assert (str(kept.value), kept.value.details) == (str(plainly.value), plainly.value.details)


def test_a_config_that_does_not_parse_is_never_kept() -> None:
    configs = ParsedConfigs(limit=4)
    for _ in range(2):
        with pytest.raises(InvalidConfig):
            configs.parse(request({**CONF, "mtu": 5}))
    assert configs.parse(request(CONF)) == plain(request(CONF))


def test_what_is_kept_stays_bounded() -> None:
    configs = ParsedConfigs(limit=4)
    for n in range(10):
        r = request({**CONF, "name": f"net{n}"})
        assert configs.parse(r) == plain(r)
    assert len(configs._kept) <= 4
