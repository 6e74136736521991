"""ipMasqBackend "nftables": the reference's table, masquerade that really works, CHECK, DEL in
every case (and across backends), and GC of both backends. All nft/iptables commands run in
the test's host namespace; the hashes are computed here, independently of the plugin."""

from __future__ import annotations

import hashlib
import json
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_masquerade import (  # noqa: F401 - `outside` is a fixture
    LEGACY_TOOLS,
    OUTSIDE_ADDRESS,
    SUBNET,
    outside,
)
from tests.support.netns import Namespace, NamespaceFactory
from tests.support.plugin import Plugin, nat_rules_for

NFT_TABLE = ("inet", "cni_plugins_masquerade")
POSTROUTING_CHAIN = """\
	chain postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		ip daddr 224.0.0.0/4 return
		ip6 daddr ff00::/8 return
		goto masq_checks
	}"""


def h16(text: str) -> str:
    return hashlib.sha512(text.encode()).hexdigest()[:16]


def masq_line(network: str, cid: str, ip: str, subnet: str, ifname: str = "eth0") -> str:
    fam = "ip6" if ":" in ip else "ip"
    comment = f"{h16(network)}-{h16(ifname + ':' + cid)}, net: {network}, if: {ifname}, id: {cid}"
    return f'{fam} saddr {ip} {fam} daddr != {subnet} masquerade comment "{comment}"'


def expected_table(*rules: str) -> str:
    """`nft list table inet cni_plugins_masquerade` as nft 1.0.6 prints the reference's layout."""
    lines = [
        "table inet cni_plugins_masquerade {",
        '\tcomment "Masquerading for plugins from github.com/containernetworking/plugins"',
        "\tchain masq_checks {",
        '\t\tcomment "Masquerade traffic from certain IPs to any (non-multicast) IP outside'
        ' their subnet"',
        *(f"\t\t{rule}" for rule in rules),
        "\t}",
        "",
        POSTROUTING_CHAIN,
        "}",
    ]
    return "\n".join(lines) + "\n"


def nft_table(ns: Namespace) -> str:
    return ns.exec("nft", "list", "table", *NFT_TABLE, check=False)


def masq_rules(ns: Namespace) -> list[str]:
    """The rules of masq_checks as `nft list` prints them (empty without the table)."""
    text = ns.exec("nft", "list", "chain", *NFT_TABLE, "masq_checks", check=False)
    return [line.strip() for line in text.splitlines() if "masquerade comment" in line]


@pytest.fixture
def nftconf(netconf: dict[str, Any]) -> dict[str, Any]:
    return {**netconf, "ipMasqBackend": "nftables"}


@pytest.mark.usefixtures("outside")
def test_add_writes_the_reference_table_and_masquerade_works(
    plugin: Plugin, namespaces: NamespaceFactory, nftconf: dict[str, Any]
) -> None:
    red = namespaces.new("red")
    result = plugin.run("ADD", nftconf, container_id="red1", netns=red.path).ok().json
    assert result["ips"][0]["address"] == "192.168.15.1/24"

    assert nft_table(plugin.host) == expected_table(
        masq_line("testnet", "red1", "192.168.15.1", SUBNET)
    )
    assert plugin.host.nat_rules() == []  # nothing through iptables
    assert red.ping(OUTSIDE_ADDRESS)  # `outside` has no route back: only masquerade answers

    check = {**nftconf, "prevResult": result}
    plugin.run("CHECK", check, container_id="red1", netns=red.path).ok()

    plugin.run("DEL", nftconf, container_id="red1", netns=red.path).ok()
    assert nft_table(plugin.host) == expected_table()


def test_check_reports_a_removed_rule(
    plugin: Plugin, namespaces: NamespaceFactory, nftconf: dict[str, Any]
) -> None:
    red = namespaces.new("red")
    result = plugin.run("ADD", nftconf, container_id="red1", netns=red.path).ok().json
    listing = json.loads(plugin.host.exec("nft", "-j", "list", "chain", *NFT_TABLE, "masq_checks"))
    (handle,) = [o["rule"]["handle"] for o in listing["nftables"] if "rule" in o]
    plugin.host.exec("nft", "delete", "rule", *NFT_TABLE, "masq_checks", "handle", str(handle))

    check = {**nftconf, "prevResult": result}
    body = plugin.run("CHECK", check, container_id="red1", netns=red.path).cni_error()
    assert body["code"] == 3
    assert "masquerade rule missing" in body["msg"] and "192.168.15.1" in body["msg"]


@pytest.mark.usefixtures("outside")
def test_two_containers_coexist_and_del_takes_only_its_own(
    plugin: Plugin, namespaces: NamespaceFactory, nftconf: dict[str, Any]
) -> None:
    red, blue = namespaces.new("red"), namespaces.new("blue")
    plugin.run("ADD", nftconf, container_id="red1", netns=red.path).ok()
    plugin.run("ADD", nftconf, container_id="blue1", netns=blue.path).ok()
    red_rule = masq_line("testnet", "red1", "192.168.15.1", SUBNET)
    blue_rule = masq_line("testnet", "blue1", "192.168.15.2", SUBNET)
    assert nft_table(plugin.host) == expected_table(red_rule, blue_rule)
    assert red.ping("192.168.15.2")  # container to container: same subnet, not masqueraded
    assert red.ping(OUTSIDE_ADDRESS) and blue.ping(OUTSIDE_ADDRESS)

    plugin.run("DEL", nftconf, container_id="red1", netns=red.path).ok()
    assert masq_rules(plugin.host) == [blue_rule]
    assert blue.ping(OUTSIDE_ADDRESS)


def test_second_interface_of_a_container_is_its_own_attachment(
    plugin: Plugin, namespaces: NamespaceFactory, nftconf: dict[str, Any]
) -> None:
    red = namespaces.new("red")
    plugin.run("ADD", nftconf, container_id="red1", netns=red.path).ok()
    plugin.run("ADD", nftconf, container_id="red1", netns=red.path, ifname="net1").ok()
    eth0 = masq_line("testnet", "red1", "192.168.15.1", SUBNET)
    net1 = masq_line("testnet", "red1", "192.168.15.2", SUBNET, ifname="net1")
    assert masq_rules(plugin.host) == [eth0, net1]
    plugin.run("DEL", nftconf, container_id="red1", netns=red.path, ifname="net1").ok()
    assert masq_rules(plugin.host) == [eth0]


def test_del_without_netns_finds_the_rules(
    plugin: Plugin, namespaces: NamespaceFactory, nftconf: dict[str, Any]
) -> None:
    """Namespace already deleted, and CNI_NETNS empty (plugins#810): the comment names the
    attachment, so no address is needed."""
    red, blue = namespaces.new("red"), namespaces.new("blue")
    plugin.run("ADD", nftconf, container_id="red1", netns=red.path).ok()
    plugin.run("ADD", nftconf, container_id="blue1", netns=blue.path).ok()
    red.delete()
    plugin.run("DEL", nftconf, container_id="red1", netns=red.path).ok()
    assert masq_rules(plugin.host) == [masq_line("testnet", "blue1", "192.168.15.2", SUBNET)]
    plugin.run("DEL", nftconf, container_id="blue1", netns="").ok()
    assert masq_rules(plugin.host) == []
    plugin.run("DEL", nftconf, container_id="blue1", netns="").ok()  # and again: idempotent


def test_dual_stack_gets_an_ip6_rule(
    plugin: Plugin, namespaces: NamespaceFactory, nftconf: dict[str, Any]
) -> None:
    ipam = {
        "type": "host-local",
        "dataDir": nftconf["ipam"]["dataDir"],
        "ranges": [[{"subnet": SUBNET}], [{"subnet": "fd00:15::/64"}]],
    }
    conf = {**nftconf, "ipam": ipam}
    red = namespaces.new("red")
    plugin.run("ADD", conf, container_id="red1", netns=red.path).ok()
    assert masq_rules(plugin.host) == [
        masq_line("testnet", "red1", "192.168.15.2", SUBNET),
        masq_line("testnet", "red1", "fd00:15::2", "fd00:15::/64"),
    ]
    plugin.run("DEL", conf, container_id="red1", netns=red.path).ok()
    assert masq_rules(plugin.host) == []


def test_del_cleans_both_backends_whatever_the_config_says(
    plugin: Plugin, namespaces: NamespaceFactory, netconf: dict[str, Any], nftconf: dict[str, Any]
) -> None:
    """The config switched backend between ADD and DEL (or the reference wrote the rules)."""
    red, blue = namespaces.new("red"), namespaces.new("blue")
    plugin.run("ADD", netconf, container_id="red1", netns=red.path).ok()  # iptables
    assert plugin.host.nat_rules() == nat_rules_for("testnet", "red1", "192.168.15.1", SUBNET)
    plugin.run("ADD", nftconf, container_id="blue1", netns=blue.path).ok()  # nftables

    plugin.run("DEL", nftconf, container_id="red1", netns=red.path).ok()
    assert plugin.host.nat_rules() == []
    plugin.run("DEL", netconf, container_id="blue1", netns=blue.path).ok()
    assert masq_rules(plugin.host) == []


def test_no_nft_table_is_created_by_the_iptables_backend(
    plugin: Plugin, namespaces: NamespaceFactory, netconf: dict[str, Any]
) -> None:
    """DEL reads the nft table but never creates it."""
    red = namespaces.new("red")
    plugin.run("ADD", netconf, container_id="red1", netns=red.path).ok()
    plugin.run("DEL", netconf, container_id="red1", netns=red.path).ok()
    assert plugin.host.exec("nft", "list", "tables").strip() == "table ip nat"


GC = """
import json, sys
from cni_bridge_py.firewall.backend import all_backends
network, valid = sys.argv[1], {tuple(pair) for pair in json.loads(sys.argv[2])}
print(json.dumps({b.name: b.gc(network, valid) for b in all_backends(sys.argv[3])}))
"""


def run_gc(
    plugin: Plugin, network: str, valid: list[tuple[str, str]], path: str = "/usr/sbin:/usr/bin"
) -> dict[str, list[str]]:
    """The backends' GC functions (the GC verb is wired elsewhere), in the host namespace."""
    out = plugin.host.exec(sys.executable, "-c", GC, network, json.dumps(valid), path)
    result: dict[str, list[str]] = json.loads(out)
    return result


def test_gc_of_both_backends_keeps_valid_attachments_and_other_networks(
    plugin: Plugin, namespaces: NamespaceFactory, netconf: dict[str, Any], nftconf: dict[str, Any]
) -> None:
    red, blue, green, other = (namespaces.new(t) for t in ("red", "blue", "green", "other"))
    plugin.run("ADD", netconf, container_id="red1", netns=red.path).ok()  # iptables
    plugin.run("ADD", nftconf, container_id="blue1", netns=blue.path).ok()  # nftables
    plugin.run("ADD", nftconf, container_id="green1", netns=green.path).ok()  # nftables
    otherconf = {
        **nftconf,
        "name": "othernet",
        "bridge": nftconf["bridge"] + "o",
        "ipam": {**nftconf["ipam"], "subnet": "192.168.16.0/24", "gateway": "192.168.16.5"},
    }
    plugin.run("ADD", otherconf, container_id="red1", netns=other.path).ok()
    other_rule = masq_line("othernet", "red1", "192.168.16.1", "192.168.16.0/24")

    removed = run_gc(plugin, "testnet", [("green1", "eth0")])
    red_chain = nat_rules_for("testnet", "red1", "192.168.15.1", SUBNET)[0].split()[1]
    assert removed == {
        "iptables": [f"iptables {red_chain} id: red1"],
        "nftables": [
            f"nftables {h16('testnet')}-{h16('eth0:blue1')}, net: testnet, if: eth0, id: blue1"
        ],
    }
    assert plugin.host.nat_rules() == []
    assert masq_rules(plugin.host) == [
        masq_line("testnet", "green1", "192.168.15.3", SUBNET),
        other_rule,
    ]
    # Nothing valid: every rule of testnet goes, othernet's stays.
    run_gc(plugin, "testnet", [])
    assert masq_rules(plugin.host) == [other_rule]
    assert run_gc(plugin, "othernet", [("red1", "eth0")]) == {"iptables": [], "nftables": []}


def test_gc_of_legacy_iptables(
    plugin: Plugin, namespaces: NamespaceFactory, netconf: dict[str, Any], tmp_path: Path
) -> None:
    shim = tmp_path / "legacy-bin"  # PATH with a legacy iptables, as in test_masquerade
    shim.mkdir()
    for name, target in LEGACY_TOOLS.items():
        (shim / name).symlink_to(f"/usr/sbin/{target}")
    legacy = f"{shim}:/usr/sbin:/usr/bin:/sbin:/bin"
    env = {"PATH": legacy}
    red, blue = namespaces.new("red"), namespaces.new("blue")
    plugin.run("ADD", netconf, container_id="red1", netns=red.path, extra_env=env).ok()
    plugin.run("ADD", netconf, container_id="blue1", netns=blue.path, extra_env=env).ok()
    blue_rules = nat_rules_for("testnet", "blue1", "192.168.15.2", SUBNET)

    removed = run_gc(plugin, "testnet", [("blue1", "eth0")], legacy)
    red_chain = nat_rules_for("testnet", "red1", "192.168.15.1", SUBNET)[0].split()[1]
    assert removed == {"iptables-legacy": [f"iptables-legacy {red_chain} id: red1"], "nftables": []}
    assert plugin.host.nat_rules("iptables-legacy") == blue_rules
    assert run_gc(plugin, "othernet", [], legacy)["iptables-legacy"] == []
    assert plugin.host.nat_rules("iptables-legacy") == blue_rules
    run_gc(plugin, "testnet", [], legacy)
    assert plugin.host.nat_rules("iptables-legacy") == []


def test_concurrent_adds_and_dels(
    plugin: Plugin, namespaces: NamespaceFactory, nftconf: dict[str, Any]
) -> None:
    """No lock between a read and its write: each is one transaction, and one that raced another
    re-reads. No rule lost or doubled."""
    conf = {**nftconf, "macspoofchk": True}
    nss = [namespaces.new(f"c{i}") for i in range(10)]

    def run(command: str, i: int) -> None:
        plugin.run(command, conf, container_id=f"c{i}", netns=nss[i].path).ok()

    with ThreadPoolExecutor(max_workers=len(nss)) as pool:
        list(pool.map(lambda i: run("ADD", i), range(len(nss))))
    comments = sorted(rule.split('comment "')[1] for rule in masq_rules(plugin.host))
    assert [c.split(", ")[0] for c in comments] == sorted(
        f"{h16('testnet')}-{h16(f'eth0:c{i}')}" for i in range(len(nss))
    )
    spoof = plugin.host.exec("nft", "list", "chain", "bridge", "nat", "PREROUTING")
    assert spoof.count("macspoofchk-") == len(nss)

    with ThreadPoolExecutor(max_workers=len(nss)) as pool:
        list(pool.map(lambda i: run("DEL", i), range(len(nss))))
    assert masq_rules(plugin.host) == []
    assert plugin.host.exec("nft", "list", "table", "bridge", "nat").count("chain") == 1
