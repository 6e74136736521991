"""Network config JSON -> NetConf: defaults, types, ranges, collected problems."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from cni_bridge_py import config
from cni_bridge_py.errors import InvalidConfig
from cni_bridge_py.ipam.ranges import Range
from cni_bridge_py.netaddr import IPAddress
from cni_bridge_py.result import DNS, Route

ip = ipaddress.ip_address
net = ipaddress.ip_network


def parse(cni_args: dict[str, str] | None = None, **keys: Any) -> config.NetConf:
    data = {"cniVersion": "1.0.0", "name": "mynet", "type": "bridge", **keys}
    return config.parse(data, "1.0.0", cni_args)


def problem(cni_args: dict[str, str] | None = None, **keys: Any) -> InvalidConfig:
    with pytest.raises(InvalidConfig) as info:
        parse(cni_args, **keys)
    assert info.value.code == 7
    return info.value


def host_local(**keys: Any) -> dict[str, Any]:
    return {"type": "host-local", **keys}


def ranges_of(conf: config.NetConf) -> list[list[Range]]:
    assert conf.ipam is not None and conf.ipam.host_local is not None
    return [list(s.ranges) for s in conf.ipam.host_local.range_sets]


# ---- bridge keys ----


def test_defaults() -> None:
    conf = parse()
    assert conf.name == "mynet"
    assert conf.cni_version == "1.0.0"
    assert conf.type == "bridge"
    assert conf.bridge == "cni0"
    assert not conf.is_gateway
    assert not conf.is_default_gateway
    assert not conf.force_address
    assert not conf.ip_masq
    assert conf.mtu == 0
    assert not conf.hairpin_mode
    assert not conf.promisc_mode
    assert conf.dns == DNS()
    assert conf.ipam is None  # no ipam: L2 mode
    assert conf.prev_result is None
    assert conf.runtime_mac == ""


def test_empty_bridge_name_means_cni0() -> None:
    assert parse(bridge="").bridge == "cni0"


def test_keys_are_read() -> None:
    conf = parse(
        bridge="br-x",
        isGateway=True,
        forceAddress=True,
        ipMasq=True,
        mtu=9000,
        hairpinMode=True,
        dns={"nameservers": ["10.0.0.1"], "domain": "example", "search": ["a"], "options": ["b"]},
    )
    assert conf.bridge == "br-x"
    assert conf.is_gateway and conf.force_address and conf.ip_masq and conf.hairpin_mode
    assert conf.mtu == 9000
    assert conf.dns == DNS(("10.0.0.1",), "example", ("a",), ("b",))


def test_is_default_gateway_implies_is_gateway() -> None:
    conf = parse(isDefaultGateway=True)
    assert conf.is_default_gateway and conf.is_gateway
    conf = parse(isDefaultGateway=True, isGateway=False)
    assert conf.is_gateway


def test_unknown_keys_are_ignored() -> None:
    conf = parse(addIf="eth9", capabilities={"portMappings": True}, vendorThing=[1, 2])
    assert conf.bridge == "cni0"


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("bridge", 5),
        ("bridge", ["cni0"]),
        ("isGateway", "true"),
        ("isGateway", 1),
        ("isDefaultGateway", "true"),
        ("forceAddress", "false"),
        ("ipMasq", "true"),
        ("ipMasq", 0),
        ("hairpinMode", "true"),
        ("promiscMode", "yes"),
        ("mtu", "1500"),
        ("mtu", 1500.5),
        ("mtu", True),
        ("dns", "10.0.0.1"),
        ("dns", ["10.0.0.1"]),
        ("ipam", "host-local"),
        ("ipam", ["host-local"]),
        ("prevResult", "x"),
        ("type", 5),
    ],
)
def test_wrong_type_is_code_7_naming_the_field(key: str, value: object) -> None:
    err = problem(None, **{key: value})
    assert f'"{key}"' in err.msg


@pytest.mark.parametrize(
    ("dns", "field"),
    [
        ({"nameservers": "10.0.0.1"}, "dns.nameservers"),
        ({"nameservers": [1]}, "dns.nameservers"),
        ({"domain": 5}, "dns.domain"),
        ({"search": [None]}, "dns.search"),
        ({"options": {}}, "dns.options"),
    ],
)
def test_wrong_dns_types(dns: dict[str, Any], field: str) -> None:
    assert f'"{field}"' in problem(dns=dns).msg


def test_several_problems_are_collected_in_one_error() -> None:
    ipam = host_local(subnet="10.1.0.0/24", dataDir="rel")
    err = problem(mtu="big", ipMasq="yes", bridge="a/b", ipam=ipam)
    assert "(and 3 more)" in err.msg
    for field in ('"mtu"', '"ipMasq"', '"bridge"', '"ipam.dataDir"'):
        assert field in err.details
    assert err.details.count("; ") == 3


@pytest.mark.parametrize("mtu", [1, 67, 65536, -1])
def test_mtu_range(mtu: int) -> None:
    assert '"mtu"' in problem(mtu=mtu).msg


@pytest.mark.parametrize("mtu", [68, 1500, 65535])
def test_mtu_accepted(mtu: int) -> None:
    assert parse(mtu=mtu).mtu == mtu


def test_hairpin_and_promisc_together_rejected() -> None:
    err = problem(hairpinMode=True, promiscMode=True)
    assert "hairpinMode" in err.msg and "promiscMode" in err.msg
    assert parse(promiscMode=True).promisc_mode


@pytest.mark.parametrize("bridge", ["x" * 16, "a b", "a/b", ".."])
def test_bad_bridge_names(bridge: str) -> None:
    assert '"bridge"' in problem(bridge=bridge).msg


# ---- ipam ----


def test_empty_ipam_object_is_l2() -> None:
    assert parse(ipam={}).ipam is None


@pytest.mark.parametrize("ipam", [{"subnet": "10.0.0.0/24"}, {"type": ""}, {"type": 5}])
def test_ipam_without_type_is_code_7(ipam: dict[str, Any]) -> None:
    assert '"ipam.type"' in problem(ipam=ipam).msg


def test_other_ipam_types_are_delegated() -> None:
    conf = parse(ipam={"type": "dhcp", "daemonSocketPath": "/run/cni/dhcp.sock"})
    assert conf.ipam == config.IpamConf("mynet", "dhcp")  # host_local None: run the dhcp executable


@pytest.mark.parametrize("name", ["../bin/sh", "/usr/lib/cni/static", ".", ".."])
def test_ipam_types_that_are_paths_are_refused(name: str) -> None:
    assert '"ipam.type"' in problem(ipam={"type": name}).msg


def test_legacy_form() -> None:
    conf = parse(
        ipam=host_local(
            subnet="10.1.0.0/16",
            rangeStart="10.1.2.10",
            rangeEnd="10.1.2.20",
            gateway="10.1.0.254",
        )
    )
    assert ranges_of(conf) == [
        [Range(net("10.1.0.0/16"), ip("10.1.2.10"), ip("10.1.2.20"), ip("10.1.0.254"))]
    ]
    assert conf.ipam is not None and conf.ipam.type == "host-local"


def test_ranges_form_with_canonical_defaults() -> None:
    conf = parse(
        ipam=host_local(
            ranges=[
                [{"subnet": "10.188.0.0/24"}],
                [{"subnet": "2001:db8::/64"}, {"subnet": "2001:db8:1::/120"}],
            ]
        )
    )
    assert ranges_of(conf) == [
        [Range(net("10.188.0.0/24"), ip("10.188.0.1"), ip("10.188.0.254"), ip("10.188.0.1"))],
        [
            Range(
                net("2001:db8::/64"),
                ip("2001:db8::1"),
                ip("2001:db8::ffff:ffff:ffff:ffff"),
                ip("2001:db8::1"),
            ),
            Range(
                net("2001:db8:1::/120"),
                ip("2001:db8:1::1"),
                ip("2001:db8:1::ff"),
                ip("2001:db8:1::1"),
            ),
        ],
    ]


def test_legacy_range_comes_before_ranges() -> None:
    conf = parse(ipam=host_local(subnet="10.1.0.0/24", ranges=[[{"subnet": "10.2.0.0/24"}]]))
    assert [s[0].subnet for s in ranges_of(conf)] == [net("10.1.0.0/24"), net("10.2.0.0/24")]


def test_host_local_defaults() -> None:
    conf = parse(ipam=host_local(subnet="10.1.0.0/24"))
    assert conf.ipam is not None and conf.ipam.host_local is not None
    assert conf.ipam.host_local.data_dir == "/var/lib/cni/networks"
    assert conf.ipam.host_local.routes == ()


def test_data_dir() -> None:
    conf = parse(ipam=host_local(subnet="10.1.0.0/24", dataDir="/run/cni/ipam"))
    assert conf.ipam is not None and conf.ipam.host_local is not None
    assert conf.ipam.host_local.data_dir == "/run/cni/ipam"


@pytest.mark.parametrize(
    "data_dir", ["relative/dir", "./x", 5, "/var/lib/cni/../../etc", "/x/..", "/var/li\0b"]
)
def test_bad_data_dir(data_dir: object) -> None:
    assert '"ipam.dataDir"' in problem(ipam=host_local(subnet="10.1.0.0/24", dataDir=data_dir)).msg


def test_nul_bytes_in_paths_and_names_are_config_errors() -> None:
    """A NUL cuts a path or an interface name short in the kernel: "br\\0x" would be "br"."""
    base = host_local(subnet="10.1.0.0/24")
    assert '"ipam.resolvConf"' in problem(ipam={**base, "resolvConf": "/etc/re\0solv"}).msg
    assert '"ipam.type"' in problem(ipam={"type": "static\0"}).msg
    assert '"bridge"' in problem(bridge="cni\0evil").msg


def test_no_ranges_at_all() -> None:
    assert "no IP ranges" in problem(ipam=host_local()).msg
    assert "no IP ranges" in problem(ipam=host_local(ranges=[])).msg


def test_no_ranges_is_reported_next_to_unrelated_problems() -> None:
    err = problem(mtu=5, ipam=host_local())
    assert "no IP ranges" in str(err)


def test_no_configured_ranges_when_the_runtime_supplies_ip_ranges() -> None:
    """A network whose only range comes from the runtime (as the reference allows)."""
    runtime = {"ipRanges": [[{"subnet": "10.199.0.0/24"}]]}
    conf = parse(ipam=host_local(), runtimeConfig=runtime)
    assert [str(r.subnet) for rs in ranges_of(conf) for r in rs] == ["10.199.0.0/24"]
    assert ranges_of(parse(ipam=host_local(ranges=[]), runtimeConfig=runtime)) == ranges_of(conf)
    # An empty or absent ipRanges does not count: still "no IP ranges".
    empties: list[dict[str, Any]] = [{"ipRanges": []}, {"ips": ["10.1.0.5"]}, {}]
    for empty in empties:
        assert "no IP ranges" in problem(ipam=host_local(), runtimeConfig=empty).msg


@pytest.mark.parametrize(
    ("ipam", "text"),
    [
        (host_local(subnet="10.1.0.1/24"), "host bits"),
        (host_local(ranges=[[{"subnet": "10.1.0.1/24"}]]), "host bits"),
        (host_local(subnet="10.1.0.0/31"), "too small"),
        (host_local(subnet="10.1.0.0/32"), "too small"),
        (host_local(subnet="2001:db8::/127"), "too small"),
        (host_local(subnet="10.1.0.0"), "CIDR"),
        (host_local(subnet="10.1.0.0/33"), "10.1.0.0/33"),
        (host_local(subnet="banana/24"), "banana"),
        (host_local(subnet="10.1.0.0/24", rangeStart="10.2.0.5"), "rangeStart 10.2.0.5"),
        (host_local(subnet="10.1.0.0/24", rangeEnd="10.2.0.5"), "rangeEnd 10.2.0.5"),
        (host_local(subnet="10.1.0.0/24", rangeStart="2001:db8::1"), "rangeStart"),
        (host_local(subnet="10.1.0.0/24", rangeStart="10.1.0.50", rangeEnd="10.1.0.40"), "after"),
        (host_local(subnet="10.1.0.0/24", rangeStart="nope"), "rangeStart"),
        (host_local(subnet="10.1.0.0/24", gateway=5), "gateway"),
        (host_local(ranges=[[{"rangeStart": "10.1.0.5"}]]), "subnet"),
        (host_local(ranges={"subnet": "10.1.0.0/24"}), "ranges"),
        (host_local(ranges=[{"subnet": "10.1.0.0/24"}]), "ranges[0]"),
        (host_local(ranges=[[]]), "ranges[0]"),
        (host_local(ranges=[["10.1.0.0/24"]]), "ranges[0][0]"),
    ],
)
def test_bad_ranges(ipam: dict[str, Any], text: str) -> None:
    err = problem(ipam=ipam)
    assert text in str(err), str(err)


@pytest.mark.parametrize(
    "ranges",
    [
        [[{"subnet": "10.1.0.0/24"}, {"subnet": "10.1.0.0/25"}]],
        [[{"subnet": "10.1.0.0/24"}], [{"subnet": "10.1.0.0/16"}]],
        [[{"subnet": "10.1.0.0/24"}], [{"subnet": "10.1.0.0/24"}]],
        [
            [{"subnet": "10.1.0.0/24", "rangeStart": "10.1.0.10", "rangeEnd": "10.1.0.20"}],
            [{"subnet": "10.1.0.0/24", "rangeStart": "10.1.0.20", "rangeEnd": "10.1.0.30"}],
        ],
    ],
)
def test_overlapping_ranges_or_sets(ranges: list[list[dict[str, str]]]) -> None:
    assert "overlaps" in str(problem(ipam=host_local(ranges=ranges)))


def test_legacy_range_overlapping_ranges() -> None:
    ipam = host_local(subnet="10.1.0.0/24", ranges=[[{"subnet": "10.1.0.0/24"}]])
    assert "overlaps" in str(problem(ipam=ipam))


def test_disjoint_ranges_of_one_subnet_are_fine() -> None:
    conf = parse(
        ipam=host_local(
            ranges=[
                [
                    {"subnet": "10.1.0.0/24", "rangeStart": "10.1.0.10", "rangeEnd": "10.1.0.19"},
                    {"subnet": "10.1.0.0/24", "rangeStart": "10.1.0.20", "rangeEnd": "10.1.0.29"},
                ]
            ]
        )
    )
    assert len(ranges_of(conf)[0]) == 2


def test_mixed_families_in_one_set() -> None:
    ipam = host_local(ranges=[[{"subnet": "10.1.0.0/24"}, {"subnet": "2001:db8::/64"}]])
    assert "mixed" in str(problem(ipam=ipam))


def test_routes_with_and_without_gw() -> None:
    conf = parse(
        ipam=host_local(
            subnet="10.1.0.0/24",
            routes=[
                {"dst": "0.0.0.0/0"},
                {"dst": "192.168.0.0/16", "gw": "10.1.0.254"},
                {"dst": "::/0", "gw": "2001:db8::1"},
                {"dst": "10.9.0.1/16"},  # host bits are kept loose, as Go's ParseCIDR does
            ],
        )
    )
    assert conf.ipam is not None and conf.ipam.host_local is not None
    assert conf.ipam.host_local.routes == (
        Route(net("0.0.0.0/0")),
        Route(net("192.168.0.0/16"), ip("10.1.0.254")),
        Route(net("::/0"), ip("2001:db8::1")),
        Route(net("10.9.0.0/16")),
    )


@pytest.mark.parametrize(
    ("route", "field"),
    [
        ({"gw": "10.1.0.1"}, "ipam.routes[0].dst"),
        ({"dst": "nope"}, "ipam.routes[0].dst"),
        ({"dst": 5}, "ipam.routes[0].dst"),
        ({"dst": "0.0.0.0/0", "gw": "nope"}, "ipam.routes[0].gw"),
        ({"dst": "0.0.0.0/0", "gw": "2001:db8::1"}, "ipam.routes[0].gw"),
        ("0.0.0.0/0", "ipam.routes[0]"),
    ],
)
def test_bad_routes(route: object, field: str) -> None:
    assert f'"{field}"' in str(problem(ipam=host_local(subnet="10.1.0.0/24", routes=[route])))


def test_routes_must_be_a_list() -> None:
    ipam = host_local(subnet="10.1.0.0/24", routes={"dst": "0.0.0.0/0"})
    assert '"ipam.routes"' in problem(ipam=ipam).msg


# ---- prevResult and CNI_ARGS ----


def test_prev_result_is_parsed() -> None:
    conf = parse(
        prevResult={
            "cniVersion": "1.0.0",
            "interfaces": [{"name": "cni0", "mac": "aa:bb:cc:dd:ee:ff"}],
            "ips": [{"interface": 0, "address": "10.1.0.2/24", "gateway": "10.1.0.1"}],
            "routes": [{"dst": "0.0.0.0/0"}],
            "dns": {},
        }
    )
    assert conf.prev_result is not None
    assert conf.prev_result.interfaces[0].name == "cni0"
    assert conf.prev_result.ips[0].address == ipaddress.ip_interface("10.1.0.2/24")
    assert conf.prev_result.routes == (Route(net("0.0.0.0/0")),)


def test_prev_result_without_version_is_read_in_the_config_version() -> None:
    # libcni's ParsePrevResult: a result with no cniVersion has the config's version.
    data = {"name": "mynet", "prevResult": {"ip4": {"ip": "10.1.0.2/24", "gateway": "10.1.0.1"}}}
    conf = config.parse({"cniVersion": "0.2.0", **data}, "0.2.0")
    assert conf.prev_result is not None
    assert [str(i.address) for i in conf.prev_result.ips] == ["10.1.0.2/24"]


@pytest.mark.parametrize(
    "prev",
    [
        {"ips": [{"address": "nope"}]},
        {"ips": "x"},
        {"interfaces": [{"mac": "aa"}]},
        {"dns": ["10.0.0.1"]},
        {"cniVersion": "0.2.0", "ip4": "10.0.0.2/24"},
        {"cniVersion": "garbage"},
    ],
)
def test_bad_prev_result_is_code_7(prev: dict[str, Any]) -> None:
    assert '"prevResult"' in problem(prevResult=prev).msg


def requested(cni_args: dict[str, str]) -> tuple[IPAddress, ...]:
    conf = parse(cni_args, ipam=host_local(subnet="10.1.0.0/16"))
    assert conf.ipam is not None and conf.ipam.host_local is not None
    return conf.ipam.host_local.requested


def test_cni_args_ip_and_mac() -> None:
    args = {"IP": "10.1.0.5,2001:db8::5/64", "MAC": "AA:bb:CC:dd:EE:ff", "K8S_POD_NAME": "w"}
    assert requested(args) == (ip("10.1.0.5"), ip("2001:db8::5"))
    assert parse(args).runtime_mac == "aa:bb:cc:dd:ee:ff"
    assert requested({"IP": "10.1.0.5/24"}) == (ip("10.1.0.5"),)
    assert requested({"IP": ""}) == ()


@pytest.mark.parametrize(
    "args",
    [
        {"IP": "10.1.0"},
        {"IP": "10.1.0.5,nope"},
        {"MAC": "aa:bb:cc:dd:ee"},
        {"MAC": "aa:bb:cc:dd:ee:gg"},
        {"MAC": "aabbccddeeff"},
    ],
)
def test_bad_cni_args(args: dict[str, str]) -> None:
    # IP= is host-local's: read only when host-local is the IPAM.
    assert "CNI_ARGS" in problem(args, ipam=host_local(subnet="10.1.0.0/24")).msg
