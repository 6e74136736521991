"""The side-by-side scenarios: a network config and the calls a runtime would make.

Container tags ("red", "blue", ...) are both the container namespace and CNI_CONTAINERID.
`ours_code` marks a call where the reference answers 999 and we give a typed code; the
difference names are those of tests/conformance/differences.py.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.conformance.harness import BRIDGE, TMP, Call, DeleteNetns, Scenario, ipam, netconf
from tests.support.netns import Namespace

VERSIONS = ("0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0")
DEFAULT_ROUTE = {"dst": "0.0.0.0/0"}
V6_SUBNET = "fd00:188::/64"
ROLLED_BACK = "failed-add-rolled-back"
CHECKED = "check-verifies-what-add-made"
IGNORE = "IgnoreUnknown=1;"  # what runtimes send; the reference bridge rejects other keys


def in_progress(feature: str) -> Any:
    """A scenario that fails only because `feature` is still being built (flip when done)."""
    return pytest.mark.xfail(strict=False, reason=f"feature in progress: {feature}")


def known_bug(what: str) -> Any:
    """A scenario a reported plugin bug breaks as a whole; strict: it fails once fixed, to
    have the mark removed."""
    return pytest.mark.xfail(strict=True, reason=f"known plugin bug: {what}")


def lifecycle(container: str = "red", **call: Any) -> tuple[Call, ...]:
    """ADD, CHECK with the ADD's result, DEL with it."""
    return (
        Call("ADD", container, **call),
        Call("CHECK", container, prev_result=True, **call),
        Call("DEL", container, prev_result=True, **call),
    )


def gateway_net(**keys: Any) -> dict[str, Any]:
    """The shared reference's network shape: gateway on the bridge, masquerade, default route."""
    conf = netconf(isGateway=True, ipMasq=True, ipam=ipam(subnet="10.188.0.0/24"))
    conf["ipam"]["routes"] = [DEFAULT_ROUTE]
    conf.update(keys)
    return conf


def version_scenario(version: str) -> Scenario:
    conf = gateway_net(cniVersion=version)
    if version >= "0.4.0":
        steps: tuple[Call, ...] = lifecycle()
    else:  # CHECK is refused below 0.4.0 (code 1); DEL carries no prevResult
        steps = (Call("ADD"), Call("CHECK"), Call("DEL"))
    return Scenario(f"version-{version}", conf, steps)


def seeded_bridge(address: str) -> Any:
    """Setup: the bridge already exists, up, with another address on it."""

    def setup(host: Namespace) -> None:
        host.exec("ip", "link", "add", BRIDGE, "type", "bridge")
        host.exec("ip", "addr", "add", address, "dev", BRIDGE)
        host.exec("ip", "link", "set", BRIDGE, "up")

    return setup


def plain_link(host: Namespace) -> None:
    """Setup: a link named like the bridge that is not a bridge."""
    host.add_plain_link(BRIDGE)


SEVERAL_RANGES = [
    {"subnet": "10.188.0.0/29", "rangeStart": "10.188.0.5", "rangeEnd": "10.188.0.6"},
    {"subnet": "10.188.1.0/29", "gateway": "10.188.1.6"},
]
TWO_SETS = [[{"subnet": "10.188.0.0/24"}], [{"subnet": "10.189.0.0/24"}]]

DNS = {
    "nameservers": ["10.188.0.53", "10.1.1.1"],
    "domain": "example.test",
    "search": ["example.test", "svc.example.test"],
    "options": ["ndots:2"],
}

BASICS = [
    *(version_scenario(v) for v in VERSIONS),
    Scenario("no-gateway-no-masq", netconf(), lifecycle()),
    Scenario("gateway-without-masq", gateway_net(ipMasq=False), lifecycle()),
    Scenario(
        "default-gateway",
        netconf(isDefaultGateway=True, ipMasq=True),
        (*lifecycle(), Call("ADD", "blue"), Call("DEL", "blue")),
    ),
    Scenario(
        "masq-two-containers",
        gateway_net(),
        (Call("ADD"), Call("ADD", "blue"), Call("DEL"), Call("DEL", "blue")),
    ),
    Scenario("mtu", gateway_net(mtu=1400), lifecycle()),
    Scenario(
        "mtu-existing-bridge-unchanged",
        gateway_net(mtu=1400),
        lifecycle(),
        differences=("bridge-mac-always-pinned",),
        setup=seeded_bridge("10.188.0.1/24"),
    ),
    Scenario("hairpin", gateway_net(hairpinMode=True), lifecycle()),
    Scenario("promisc", gateway_net(promiscMode=True), lifecycle()),
    Scenario(
        "hairpin-and-promisc-rejected",
        gateway_net(hairpinMode=True, promiscMode=True),
        (Call("ADD", ours_code=7),),
    ),
    Scenario(
        "force-address",
        gateway_net(forceAddress=True),
        lifecycle(),
        setup=seeded_bridge("10.99.0.1/24"),
    ),
    Scenario(
        "address-conflict-without-force",
        gateway_net(),
        (Call("ADD", ours_code=7), Call("DEL")),
        differences=(ROLLED_BACK,),
        setup=seeded_bridge("10.99.0.1/24"),
    ),
    Scenario("dns-1.0.0", gateway_net(dns=DNS), lifecycle()),
    Scenario("dns-0.4.0", gateway_net(cniVersion="0.4.0", dns=DNS), lifecycle()),
    Scenario("dns-0.2.0", gateway_net(cniVersion="0.2.0", dns=DNS), (Call("ADD"), Call("DEL"))),
    Scenario(
        "legacy-subnet-range-and-gateway",
        gateway_net(
            ipam=ipam(
                subnet="10.188.0.0/24",
                rangeStart="10.188.0.10",
                rangeEnd="10.188.0.12",
                gateway="10.188.0.254",
                routes=[DEFAULT_ROUTE],
            )
        ),
        (
            Call("ADD"),
            Call("ADD", "blue"),
            Call("DEL"),
            Call("ADD", "green"),
            Call("ADD", "yellow"),
            Call("CHECK", "yellow", prev_result=True),
        ),
    ),
    Scenario(
        # no gateway: the second range's gateway would conflict on the bridge (see below)
        "several-ranges-one-set",
        netconf(ipam=ipam(ranges=[SEVERAL_RANGES])),
        (
            Call("ADD"),
            Call("ADD", "blue"),
            Call("ADD", "green"),
            Call("DEL", "blue"),
            Call("ADD", "yellow"),
            Call("CHECK", "yellow", prev_result=True),
        ),
    ),
    Scenario(
        "several-ranges-second-gateway-conflicts",
        gateway_net(ipam=ipam(ranges=[SEVERAL_RANGES])),
        (Call("ADD"), Call("ADD", "blue"), Call("ADD", "green", ours_code=7)),
        differences=(ROLLED_BACK,),
    ),
    Scenario("two-range-sets", netconf(ipam=ipam(ranges=TWO_SETS)), lifecycle()),
    # two-range-sets with isGateway: the reference refuses every ADD, ours works
    # ("ipv4-gateways-of-all-sets", test_ours_only.py)
    Scenario(
        "routes-with-and-without-gw",
        gateway_net(
            ipam=ipam(
                subnet="10.188.0.0/24",
                routes=[
                    DEFAULT_ROUTE,
                    {"dst": "10.200.0.0/16", "gw": "10.188.0.254"},
                    {"dst": "192.168.77.0/24"},
                ],
            )
        ),
        lifecycle(),
        differences=(CHECKED,),
    ),
    Scenario(
        "requested-ip",
        gateway_net(),
        (
            Call("ADD", cni_args=f"{IGNORE}IP=10.188.0.50"),
            Call("CHECK", prev_result=True, cni_args=f"{IGNORE}IP=10.188.0.50"),
            Call("ADD", "blue"),
            Call("DEL", cni_args=f"{IGNORE}IP=10.188.0.50"),
        ),
    ),
    Scenario(
        "requested-ip-taken",
        gateway_net(),
        (
            Call("ADD", cni_args=f"{IGNORE}IP=10.188.0.50"),
            Call("ADD", "blue", cni_args=f"{IGNORE}IP=10.188.0.50", ours_code=4),
        ),
        differences=(ROLLED_BACK,),
    ),
    Scenario(
        "requested-ip-is-gateway",
        gateway_net(),
        (Call("ADD", cni_args=f"{IGNORE}IP=10.188.0.1", ours_code=4),),
        differences=(ROLLED_BACK,),
    ),
    Scenario(
        "cni-args-unknown-key",
        gateway_net(),
        (
            Call("ADD", cni_args="FOO=bar", ours_code=4),
            Call("ADD", "blue", cni_args=f"{IGNORE}FOO=bar"),
        ),
    ),
    Scenario(
        "exhaustion-slash-30",
        gateway_net(ipam=ipam(subnet="10.188.0.0/30")),
        (Call("ADD"), Call("ADD", "blue", ours_code=11), Call("DEL"), Call("ADD", "green")),
        differences=(ROLLED_BACK,),
    ),
    Scenario(
        "l2-no-ipam",
        {k: v for k, v in netconf().items() if k != "ipam"},
        lifecycle(),
        differences=(CHECKED,),
    ),
    Scenario(
        "l2-empty-ipam",
        netconf(ipam={}),
        lifecycle(),
        differences=(CHECKED,),
    ),
    Scenario(
        "two-interfaces-one-container",
        gateway_net(),
        (
            Call("ADD"),
            Call("ADD", ifname="eth1"),
            Call("DEL"),
            Call("CHECK", ifname="eth1", prev_result=True),
            Call("DEL", ifname="eth1"),
        ),
        differences=("shared-nat-chain-kept",),
    ),
    Scenario("not-a-bridge", gateway_net(), (Call("ADD", ours_code=7),), setup=plain_link),
]

DEL_AND_ERRORS = [
    Scenario("del-twice", gateway_net(), (Call("ADD"), Call("DEL"), Call("DEL"))),
    Scenario(
        "del-empty-netns",
        gateway_net(),
        (Call("ADD"), Call("DEL", netns="empty"), Call("DEL")),
        differences=("del-without-netns-removes-nat",),
    ),
    Scenario(
        "del-netns-unset",
        gateway_net(),
        (Call("ADD"), Call("DEL", netns="unset")),
        differences=("del-without-netns-removes-nat",),
    ),
    Scenario(
        "del-after-netns-gone",
        gateway_net(),
        (Call("ADD"), DeleteNetns("red"), Call("DEL")),
        differences=("del-without-netns-removes-nat",),
    ),
    Scenario(
        "del-never-added",
        gateway_net(),
        (Call("ADD"), Call("DEL", "blue"), Call("DEL", "blue", netns="empty")),
    ),
    Scenario(
        "check-after-del",
        gateway_net(),
        (Call("ADD"), Call("DEL"), Call("CHECK", prev_result=True, ours_code=3)),
    ),
    Scenario(
        "bad-json",
        gateway_net(),
        (Call("ADD", stdin=b'{"cniVersion": "1.0.0", "name": '),),
    ),
    Scenario("bad-version", gateway_net(cniVersion="9.9.9"), (Call("ADD"),)),
    Scenario(
        "missing-netns",
        gateway_net(),
        (Call("ADD", netns="missing", ours_code=8),),
        differences=("netns-checked-first",),
    ),
    Scenario("version", gateway_net(), (Call("VERSION"),)),
]

V6_RANGE = {"subnet": V6_SUBNET}
IPV6 = ("ipv6-gateway-nodad", "keep-addr-on-down")
# The rest of the surface: IPv6, requested addresses, runtime ranges, resolvConf, delegated
# IPAM, macspoofchk. (A feature still being built gets `marks=(in_progress(...),)`.)
SURFACE = [
    Scenario(
        "dual-stack",
        gateway_net(
            ipam=ipam(
                ranges=[[{"subnet": "10.188.0.0/24"}], [V6_RANGE]],
                routes=[DEFAULT_ROUTE, {"dst": "::/0"}],
            )
        ),
        lifecycle(),
        differences=IPV6,
    ),
    Scenario(
        "ipv6-only",
        gateway_net(ipam=ipam(ranges=[[V6_RANGE]], routes=[{"dst": "::/0"}])),
        lifecycle(),
        differences=IPV6,
    ),
    Scenario(
        "args-cni-ips",
        gateway_net(args={"cni": {"ips": ["10.188.0.77"]}}),
        lifecycle(),
    ),
    Scenario(
        "runtime-config-ips",
        gateway_net(capabilities={"ips": True}, runtimeConfig={"ips": ["10.188.0.78/24"]}),
        lifecycle(),
    ),
    Scenario(
        "runtime-config-ip-ranges",
        gateway_net(
            ipam=ipam(),
            capabilities={"ipRanges": True},
            runtimeConfig={"ipRanges": [[{"subnet": "10.199.0.0/24"}]]},
        ),
        lifecycle(),
    ),
    Scenario(
        "resolv-conf",
        gateway_net(ipam=ipam(subnet="10.188.0.0/24", resolvConf=f"{TMP}/resolv.conf")),
        lifecycle(),
        files={
            "resolv.conf": "nameserver 10.1.1.1\nnameserver 10.1.1.2\n"
            "domain example.test\nsearch a.example.test b.example.test\noptions ndots:3\n"
        },
        differences=("ipam-dns-kept",),
    ),
    Scenario(
        "static-ipam-delegation",
        gateway_net(
            ipam={
                "type": "static",
                "addresses": [{"address": "10.188.0.9/24", "gateway": "10.188.0.1"}],
                "routes": [DEFAULT_ROUTE],
                "dns": {"nameservers": ["10.188.0.53"]},
            }
        ),
        lifecycle(),
        differences=("ipam-dns-kept",),
    ),
    Scenario("macspoofchk", gateway_net(macspoofchk=True), lifecycle()),
]

SCENARIOS: list[Scenario] = [*BASICS, *DEL_AND_ERRORS, *SURFACE]
