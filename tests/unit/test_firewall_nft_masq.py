"""The nftables masquerade layout (pure) and the backend's read/write logic with a fake `nft`."""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path
from typing import Any

import pytest

from cni_bridge_py.errors import IOFailure
from cni_bridge_py.firewall import nft_layout as layout
from cni_bridge_py.firewall.layout import MasqRequest
from cni_bridge_py.firewall.nft_json import Chain, Rule, Ruleset, describe
from cni_bridge_py.firewall.nft_run import Nft
from cni_bridge_py.firewall.nftables import NftablesMasq

TABLE = "inet cni_plugins_masquerade"

# `nft -j list table inet cni_plugins_masquerade` on this machine (nft 1.0.6) after our
# setup for testnet/red1/eth0 (v4 and v6), testnet/blue1/eth0 and othernet/red1/eth1.
LISTING = json.loads("""{"nftables": [
 {"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5", "json_schema_version": 1}},
 {"table": {"family": "inet", "name": "cni_plugins_masquerade", "handle": 5}},
 {"chain": {"family": "inet", "table": "cni_plugins_masquerade", "name": "masq_checks",
   "handle": 1}},
 {"chain": {"family": "inet", "table": "cni_plugins_masquerade", "name": "postrouting",
   "handle": 2, "type": "nat", "hook": "postrouting", "prio": 100, "policy": "accept"}},
 {"rule": {"family": "inet", "table": "cni_plugins_masquerade", "chain": "masq_checks",
   "handle": 6,
   "comment": "c5964c6794a1152e-924df77753e72b56, net: testnet, if: eth0, id: red1",
   "expr": [
    {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}},
      "right": "192.168.15.2"}},
    {"match": {"op": "!=", "left": {"payload": {"protocol": "ip", "field": "daddr"}},
      "right": {"prefix": {"addr": "192.168.15.0", "len": 24}}}},
    {"masquerade": null}]}},
 {"rule": {"family": "inet", "table": "cni_plugins_masquerade", "chain": "masq_checks",
   "handle": 7,
   "comment": "c5964c6794a1152e-924df77753e72b56, net: testnet, if: eth0, id: red1",
   "expr": [
    {"match": {"op": "==", "left": {"payload": {"protocol": "ip6", "field": "saddr"}},
      "right": "fd00::2"}},
    {"match": {"op": "!=", "left": {"payload": {"protocol": "ip6", "field": "daddr"}},
      "right": {"prefix": {"addr": "fd00::", "len": 64}}}},
    {"masquerade": null}]}},
 {"rule": {"family": "inet", "table": "cni_plugins_masquerade", "chain": "masq_checks",
   "handle": 11,
   "comment": "c5964c6794a1152e-f7279c0ffd43c284, net: testnet, if: eth0, id: blue1",
   "expr": [
    {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}},
      "right": "192.168.15.3"}},
    {"match": {"op": "!=", "left": {"payload": {"protocol": "ip", "field": "daddr"}},
      "right": {"prefix": {"addr": "192.168.15.0", "len": 24}}}},
    {"masquerade": null}]}},
 {"rule": {"family": "inet", "table": "cni_plugins_masquerade", "chain": "masq_checks",
   "handle": 15,
   "comment": "0e0993d3a5cba48c-f62b72e71bb9eb4c, net: othernet, if: eth1, id: red1",
   "expr": [
    {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}},
      "right": "10.9.0.2"}},
    {"match": {"op": "!=", "left": {"payload": {"protocol": "ip", "field": "daddr"}},
      "right": {"prefix": {"addr": "10.9.0.0", "len": 16}}}},
    {"masquerade": null}]}},
 {"rule": {"family": "inet", "table": "cni_plugins_masquerade", "chain": "postrouting",
   "handle": 12, "expr": [
    {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "daddr"}},
      "right": {"prefix": {"addr": "224.0.0.0", "len": 4}}}},
    {"return": null}]}},
 {"rule": {"family": "inet", "table": "cni_plugins_masquerade", "chain": "postrouting",
   "handle": 13, "expr": [
    {"match": {"op": "==", "left": {"payload": {"protocol": "ip6", "field": "daddr"}},
      "right": {"prefix": {"addr": "ff00::", "len": 8}}}},
    {"return": null}]}},
 {"rule": {"family": "inet", "table": "cni_plugins_masquerade", "chain": "postrouting",
   "handle": 14, "expr": [{"goto": {"target": "masq_checks"}}]}}
]}""")

SETUP_HEAD = f"""\
add table {TABLE} {{ comment "Masquerading for plugins from github.com/containernetworking/plugins" ; }}
add chain {TABLE} masq_checks {{ comment "Masquerade traffic from certain IPs to any (non-multicast) IP outside their subnet" ; }}
add chain {TABLE} postrouting {{ type nat hook postrouting priority 100 ; }}
flush chain {TABLE} postrouting
add rule {TABLE} postrouting ip daddr 224.0.0.0/4 return
add rule {TABLE} postrouting ip6 daddr ff00::/8 return
add rule {TABLE} postrouting goto masq_checks
"""  # noqa: E501 - the reference's exact lines


def ip(text: str) -> Any:
    return ipaddress.ip_interface(text)


def req(network: str, cid: str, *addrs: str, ifname: str = "eth0") -> MasqRequest:
    return MasqRequest(network, cid, tuple(ip(a) for a in addrs), ifname)


CURRENT = Ruleset.parse(LISTING)
RED = req("testnet", "red1", "192.168.15.2/24", "fd00::2/64")


# --- names, hashes and comments: the reference's test vectors (ipmasq_nftables_linux_test.go)


def test_hash_vectors() -> None:
    assert layout.hash16("unit-test") == "6fd94d501e58f0aa"
    assert layout.hash16("eth0:one") == "287fc69eff0574a2"
    assert layout.instance_hash("unit-test", "eth0", "two") == "6fd94d501e58f0aa-d750b2c8f0f25d5f"
    assert layout.instance_hash("alternate", "net1", "three") == (
        "82783ef24bdc7036-acb19d111858e348"
    )


@pytest.mark.parametrize(
    ("network", "ifname", "cid", "comment"),
    [
        (
            "unit-test",
            "eth0",
            "one",
            "6fd94d501e58f0aa-287fc69eff0574a2, net: unit-test, if: eth0, id: one",
        ),
        (
            "unit-test",
            "eth0",
            "three",
            "6fd94d501e58f0aa-a4d4adb82b669cfe, net: unit-test, if: eth0, id: three",
        ),
        (
            "unit-test",
            "eth0",
            "four",
            "6fd94d501e58f0aa-e766de567ef6c543, net: unit-test, if: eth0, id: four",
        ),
    ],
)
def test_comment_vectors(network: str, ifname: str, cid: str, comment: str) -> None:
    assert layout.instance_comment(network, ifname, cid) == comment


def test_comment_is_cut_at_128_bytes_and_keeps_the_hash() -> None:
    cid = "c" * 200
    comment = layout.instance_comment("net", "eth0", cid)
    assert len(comment.encode()) == 128
    assert comment.startswith(layout.instance_hash("net", "eth0", cid) + ", net: net, if: eth0")


def test_comment_drops_quotes_but_hash_keeps_them() -> None:
    comment = layout.instance_comment("net", 'e"0', "c1")
    assert comment.startswith(layout.instance_hash("net", 'e"0', "c1"))
    assert comment.endswith("if: e0, id: c1")


def test_comment_cut_never_splits_a_character() -> None:
    comment = layout.instance_comment("n", "é" * 7, "x" * 120)
    comment.encode()  # valid UTF-8
    assert len(comment.encode()) <= 128


def test_masq_rule_per_family() -> None:
    assert (
        layout.masq_rule(ip("10.1.2.3/16"))
        == "ip saddr 10.1.2.3 ip daddr != 10.1.0.0/16 masquerade"
    )
    assert layout.masq_rule(ip("2001:db8::5/64")) == (
        "ip6 saddr 2001:db8::5 ip6 daddr != 2001:db8::/64 masquerade"
    )


# --- reading nft's JSON


def test_listing_parses_into_canonical_rule_text() -> None:
    assert CURRENT.has_table("inet", "cni_plugins_masquerade")
    assert CURRENT.chain("inet", "cni_plugins_masquerade", "postrouting") == Chain(
        "inet", "cni_plugins_masquerade", "postrouting", ("nat", "postrouting", 100)
    )
    post = CURRENT.rules_of("inet", "cni_plugins_masquerade", "postrouting")
    assert [r.text for r in post] == list(layout.POSTROUTING_RULES)
    masq = CURRENT.rules_of("inet", "cni_plugins_masquerade", "masq_checks")
    assert [r.handle for r in masq] == [6, 7, 11, 15]
    assert masq[1].text == layout.masq_rule(ip("fd00::2/64"))


def test_absent_table_is_empty() -> None:
    assert Ruleset.parse(None) == Ruleset()
    assert layout.rules_missing(Ruleset(), RED) == [f"table {TABLE}"]


def test_unknown_statements_never_match_ours() -> None:
    assert describe([{"counter": {"packets": 1, "bytes": 2}}]) == (
        '{"counter":{"bytes":2,"packets":1}}'
    )
    assert describe([{"masquerade": {"flags": "random"}}]) != "masquerade"


# --- batches


def test_setup_into_empty_table_is_the_reference_layout() -> None:
    batch = layout.render_setup(Ruleset(), req("unit-test", "one", "192.168.1.1/24"))
    assert batch == SETUP_HEAD + (
        f"add rule {TABLE} masq_checks ip saddr 192.168.1.1 ip daddr != 192.168.1.0/24"
        ' masquerade comment "6fd94d501e58f0aa-287fc69eff0574a2, net: unit-test, if: eth0,'
        ' id: one"\n'
    )


def test_repeated_setup_replaces_only_this_attachments_rules() -> None:
    """red1 again with one address: its two old rules go (by handle) in the same
    transaction; blue1's and othernet's red1 (same container, other network) stay."""
    batch = layout.render_setup(CURRENT, req("testnet", "red1", "192.168.15.9/24"))
    comment = "c5964c6794a1152e-924df77753e72b56, net: testnet, if: eth0, id: red1"
    assert batch == SETUP_HEAD + (
        f"delete rule {TABLE} masq_checks handle 6\n"
        f"delete rule {TABLE} masq_checks handle 7\n"
        f"add rule {TABLE} masq_checks ip saddr 192.168.15.9 ip daddr != 192.168.15.0/24"
        f' masquerade comment "{comment}"\n'
    )


def test_dual_stack_setup_writes_one_rule_per_address() -> None:
    batch = layout.render_setup(Ruleset(), RED)
    rules = [line for line in batch.splitlines() if "masq_checks ip" in line]
    assert [r.split(" comment ")[0].split("masq_checks ")[1] for r in rules] == [
        "ip saddr 192.168.15.2 ip daddr != 192.168.15.0/24 masquerade",
        "ip6 saddr fd00::2 ip6 daddr != fd00::/64 masquerade",
    ]


def test_teardown_takes_the_attachment_whatever_the_addresses() -> None:
    for request in (RED, req("testnet", "red1")):  # addresses known or not
        doomed = layout.attachment_rules(CURRENT, request)
        assert [r.handle for r in doomed] == [6, 7]
    assert layout.render_delete(layout.attachment_rules(CURRENT, RED)) == (
        f"delete rule {TABLE} masq_checks handle 6\ndelete rule {TABLE} masq_checks handle 7\n"
    )


def test_other_ifname_of_the_same_container_is_another_attachment() -> None:
    assert layout.attachment_rules(CURRENT, req("testnet", "red1", ifname="net1")) == []
    assert layout.render_delete([]) is None


def test_without_ifname_every_rule_of_the_container_on_the_network_goes() -> None:
    doomed = layout.attachment_rules(CURRENT, req("testnet", "red1", ifname=""))
    assert [r.handle for r in doomed] == [6, 7]


def test_gc_keeps_valid_attachments_and_other_networks() -> None:
    stale = layout.stale_rules(CURRENT, "testnet", {("blue1", "eth0"), ("gone", "eth0")})
    assert [r.handle for r in stale] == [6, 7]
    assert layout.stale_rules(CURRENT, "testnet", set()) == [
        r for r in CURRENT.rules if r.handle in (6, 7, 11)
    ]
    assert [r.handle for r in layout.stale_rules(CURRENT, "othernet", set())] == [15]
    # red1 is valid on othernet only with its own ifname there.
    assert [r.handle for r in layout.stale_rules(CURRENT, "othernet", {("red1", "eth0")})] == [15]
    assert layout.stale_rules(CURRENT, "othernet", {("red1", "eth1")}) == []


def test_reference_scenario_address_reused_by_another_container() -> None:
    """From the reference test: "four" takes "one"'s address before "one" is deleted; DEL of
    "one" must leave "four" alone."""
    one = Rule(
        "inet", "cni_plugins_masquerade", "masq_checks", 3,
        layout.instance_comment("unit-test", "eth0", "one"),
        layout.masq_rule(ip("192.168.1.1/24")),
    )  # fmt: skip
    four = Rule(
        "inet", "cni_plugins_masquerade", "masq_checks", 9,
        layout.instance_comment("unit-test", "eth0", "four"),
        layout.masq_rule(ip("192.168.1.1/24")),
    )  # fmt: skip
    current = Ruleset(frozenset({("inet", "cni_plugins_masquerade")}), (), (one, four))
    assert layout.attachment_rules(current, req("unit-test", "one", "192.168.1.1/24")) == [one]


# --- CHECK


def test_nothing_missing_when_installed() -> None:
    assert layout.rules_missing(CURRENT, RED) == []
    assert (
        layout.rules_missing(CURRENT, req("othernet", "red1", "10.9.0.2/16", ifname="eth1")) == []
    )


def test_missing_rule_and_wrong_address_are_reported() -> None:
    missing = layout.rules_missing(CURRENT, req("testnet", "red1", "192.168.15.7/24"))
    assert missing == [
        "masq_checks: ip saddr 192.168.15.7 ip daddr != 192.168.15.0/24 masquerade comment"
        ' "c5964c6794a1152e-924df77753e72b56, net: testnet, if: eth0, id: red1"'
    ]
    # blue1's rule exists, but for another attachment: red1 on its address is still missing.
    assert layout.rules_missing(CURRENT, req("testnet", "red1", "192.168.15.3/24"))


def test_broken_postrouting_is_reported() -> None:
    rules = tuple(r for r in CURRENT.rules if r.handle != 14)  # the goto is gone
    missing = layout.rules_missing(Ruleset(CURRENT.tables, CURRENT.chains, rules), RED)
    assert missing == ["postrouting: " + " ; ".join(layout.POSTROUTING_RULES)]
    chains = tuple(c for c in CURRENT.chains if c.name != "postrouting")
    assert layout.rules_missing(Ruleset(CURRENT.tables, chains, CURRENT.rules), RED) == [
        f"chain {TABLE} postrouting (nat hook postrouting priority 100)"
    ]


# --- the backend, with `nft` faked


class FakeNft(Nft):
    def __init__(self, lock_dir: Path, listing: dict[str, Any] | None) -> None:
        super().__init__("/nonexistent/nft", str(lock_dir))
        self.listing_value = listing
        self.batches: list[str] = []
        self.reads = 0
        self.fail_apply = 0
        self.fail_list = False
        self.works = True

    def listing(self, *what: str) -> dict[str, Any] | None:
        assert what == ("table", "inet", "cni_plugins_masquerade")
        self.reads += 1
        if self.fail_list:
            raise IOFailure("nft list failed", "Operation not supported")
        return self.listing_value

    def apply(self, batch: str, what: str) -> None:
        if self.fail_apply:
            self.fail_apply -= 1
            raise IOFailure("nft failed", "No such file or directory")
        self.batches.append(batch)

    def usable(self) -> bool:
        return self.works


@pytest.fixture
def fake(tmp_path: Path) -> FakeNft:
    return FakeNft(tmp_path, LISTING)


def test_one_read_and_one_transaction_per_call(fake: FakeNft) -> None:
    backend = NftablesMasq(fake)
    backend.setup(RED)
    backend.teardown(RED)
    assert fake.reads == 2
    assert len(fake.batches) == 2
    assert fake.batches[1].count("delete rule") == 2


def test_teardown_of_unknown_attachment_writes_nothing(fake: FakeNft) -> None:
    NftablesMasq(fake).teardown(req("testnet", "nobody"))
    fake.listing_value = None
    NftablesMasq(fake).teardown(RED)
    assert fake.batches == []


def test_failed_batch_is_retried_once_after_a_fresh_read(fake: FakeNft) -> None:
    fake.fail_apply = 1
    NftablesMasq(fake).setup(RED)
    assert (fake.reads, len(fake.batches)) == (2, 1)
    fake.fail_apply = 2
    with pytest.raises(IOFailure):
        NftablesMasq(fake).setup(RED)


def test_cleanup_is_a_no_op_where_the_kernel_has_no_nftables(fake: FakeNft) -> None:
    fake.fail_list = True
    fake.works = False
    backend = NftablesMasq(fake)
    backend.teardown(RED)
    assert backend.gc("testnet", set()) == []
    fake.works = True
    with pytest.raises(IOFailure):
        backend.teardown(RED)
    with pytest.raises(IOFailure):
        backend.setup(RED)  # ADD never hides a failure


def test_gc_one_batch_and_one_line_per_attachment(fake: FakeNft) -> None:
    removed = NftablesMasq(fake).gc("testnet", [("blue1", "eth0")])
    assert removed == [
        "nftables c5964c6794a1152e-924df77753e72b56, net: testnet, if: eth0, id: red1"
    ]
    assert fake.batches == [
        f"delete rule {TABLE} masq_checks handle 6\ndelete rule {TABLE} masq_checks handle 7\n"
    ]
    assert NftablesMasq(fake).gc("othernet", [("red1", "eth1")]) == []
    assert len(fake.batches) == 1


def test_missing_reads_once(fake: FakeNft) -> None:
    assert NftablesMasq(fake).missing(RED) == []
    assert fake.reads == 1
