"""The nftables masquerade layout (pure) and the backend's read/write logic over a scripted
transport."""

from __future__ import annotations

import ipaddress
import json
from typing import Any

import pytest

from cni_bridge_py.errors import IOFailure
from cni_bridge_py.firewall import nft_layout as layout
from cni_bridge_py.firewall.layout import MasqRequest
from cni_bridge_py.firewall.nft_json import Chain, Rule, Ruleset, describe
from cni_bridge_py.firewall.nft_run import ATTEMPTS, Nft
from cni_bridge_py.firewall.nft_text import parse_chain
from cni_bridge_py.firewall.nftables import NftablesMasq
from tests.doubles.nft import ScriptedNft

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
    transaction; blue1's and othernet's red1 (same container, other network) stay. The
    table's chains are in place, so they are not rewritten."""
    batch = layout.render_setup(CURRENT, req("testnet", "red1", "192.168.15.9/24"))
    comment = "c5964c6794a1152e-924df77753e72b56, net: testnet, if: eth0, id: red1"
    assert batch == (
        f"delete rule {TABLE} masq_checks handle 6\n"
        f"delete rule {TABLE} masq_checks handle 7\n"
        f"add rule {TABLE} masq_checks ip saddr 192.168.15.9 ip daddr != 192.168.15.0/24"
        f' masquerade comment "{comment}"\n'
    )


def test_postrouting_is_rewritten_unless_exactly_in_place() -> None:
    post = [r for r in CURRENT.rules if r.chain == "postrouting"]
    masq = [r for r in CURRENT.rules if r.chain == "masq_checks"]
    chains = {c.name: c for c in CURRENT.chains}
    regular = Chain("inet", "cni_plugins_masquerade", "postrouting")  # no hook
    broken = [
        Ruleset(CURRENT.tables, CURRENT.chains, (*masq, *post[:2])),  # the goto is gone
        Ruleset(CURRENT.tables, CURRENT.chains, (*masq, *post, post[0])),  # one too many
        Ruleset(CURRENT.tables, (chains["masq_checks"], regular), CURRENT.rules),
        Ruleset(CURRENT.tables, (chains["postrouting"],), CURRENT.rules),  # no masq_checks
    ]
    assert layout.base_in_place(CURRENT)
    for current in broken:
        assert not layout.base_in_place(current)
        assert layout.render_setup(current, RED).startswith(SETUP_HEAD)
    assert not layout.render_setup(CURRENT, RED).startswith("add table")


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


# --- the fast read: `nft -a -y list chain` (nft 1.0.6, the state of LISTING)

MASQ_TEXT = """\
table inet cni_plugins_masquerade {
\tchain masq_checks { # handle 1
\t\tcomment "Masquerade traffic from certain IPs to any (non-multicast) IP outside their subnet"
\t\tip saddr 192.168.15.2 ip daddr != 192.168.15.0/24 masquerade comment "c5964c6794a1152e-924df77753e72b56, net: testnet, if: eth0, id: red1" # handle 6
\t\tip6 saddr fd00::2 ip6 daddr != fd00::/64 masquerade comment "c5964c6794a1152e-924df77753e72b56, net: testnet, if: eth0, id: red1" # handle 7
\t\tip saddr 192.168.15.3 ip daddr != 192.168.15.0/24 masquerade comment "c5964c6794a1152e-f7279c0ffd43c284, net: testnet, if: eth0, id: blue1" # handle 11
\t\tip saddr 10.9.0.2 ip daddr != 10.9.0.0/16 masquerade comment "0e0993d3a5cba48c-f62b72e71bb9eb4c, net: othernet, if: eth1, id: red1" # handle 15
\t}
}
"""  # noqa: E501 - nft's lines
POST_TEXT = """\
table inet cni_plugins_masquerade {
\tchain postrouting { # handle 2
\t\ttype nat hook postrouting priority 100; policy accept;
\t\tip daddr 224.0.0.0/4 return # handle 12
\t\tip6 daddr ff00::/8 return # handle 13
\t\tgoto masq_checks # handle 14
\t}
}
"""
LIST_MASQ = "list chain inet cni_plugins_masquerade masq_checks"
LIST_POST = "list chain inet cni_plugins_masquerade postrouting"
LIST_TABLE = "list table inet cni_plugins_masquerade"


def test_the_text_listing_reads_as_the_json_one() -> None:
    """What ADD, DEL and GC use of a rule (handle, comment, and our rules' text) is the same
    from the text listing as from the JSON one; the base chain's hook too."""
    fast = parse_chain(MASQ_TEXT, "inet", "cni_plugins_masquerade", "masq_checks").merged(
        parse_chain(POST_TEXT, "inet", "cni_plugins_masquerade", "postrouting")
    )
    assert {(r.chain, r.handle, r.comment, r.text) for r in fast.rules} == {
        (r.chain, r.handle, r.comment, r.text) for r in CURRENT.rules
    }
    assert set(fast.chains) == set(CURRENT.chains)
    assert layout.render_setup(fast, RED) == layout.render_setup(CURRENT, RED)


def test_text_rules_without_a_comment_of_their_own() -> None:
    listing = (
        "table inet t {\n\tchain c { # handle 1\n"
        '\t\tip saddr { 10.1.1.1 comment "elem", 10.1.1.2 } masquerade # handle 10\n'
        "\t\tcounter packets 0 bytes 0 accept # handle 11\n"
        "\t}\n}\n"
    )
    rules = parse_chain(listing, "inet", "t", "c").rules
    assert [(r.handle, r.comment) for r in rules] == [(10, ""), (11, "")]
    assert rules[0].text == 'ip saddr { 10.1.1.1 comment "elem", 10.1.1.2 } masquerade'
    assert parse_chain(listing, "inet", "t", "c").chains[0].hook is None


# --- the backend over a scripted transport


@pytest.fixture
def nft() -> ScriptedNft:
    return ScriptedNft(
        chains={LIST_MASQ: MASQ_TEXT, LIST_POST: POST_TEXT}, tables={LIST_TABLE: LISTING}
    )


def test_add_reads_two_chains_and_writes_only_the_attachment(nft: ScriptedNft) -> None:
    NftablesMasq(Nft(nft)).setup(req("testnet", "green1", "192.168.15.4/24"))
    assert nft.reads() == [LIST_MASQ, LIST_POST]
    assert nft.writes == [
        f"add rule {TABLE} masq_checks ip saddr 192.168.15.4 ip daddr != 192.168.15.0/24"
        ' masquerade comment "c5964c6794a1152e-989986d58dd2ba17, net: testnet, if: eth0,'
        ' id: green1"\n'
    ]


def test_first_add_on_the_host_writes_the_whole_layout() -> None:
    nft = ScriptedNft()
    NftablesMasq(Nft(nft)).setup(req("unit-test", "one", "192.168.1.1/24"))
    assert nft.reads() == [LIST_MASQ]  # no masq_checks: postrouting need not be read
    assert nft.writes == [layout.render_setup(Ruleset(), req("unit-test", "one", "192.168.1.1/24"))]
    assert nft.writes[0].startswith(SETUP_HEAD)


def test_a_failed_write_is_retried_from_the_full_json_read(nft: ScriptedNft) -> None:
    nft.fail_writes = 1
    NftablesMasq(Nft(nft)).setup(RED)
    assert nft.reads() == [LIST_MASQ, LIST_POST, LIST_TABLE]
    assert nft.writes == [layout.render_setup(CURRENT, RED)]


def test_a_write_failing_every_time_is_reported(nft: ScriptedNft) -> None:
    nft.fail_writes = ATTEMPTS
    with pytest.raises(IOFailure, match="installing masquerade rules"):
        NftablesMasq(Nft(nft)).setup(RED)
    assert nft.reads().count(LIST_TABLE) == ATTEMPTS - 1
    assert nft.writes == []


def test_del_reads_masq_checks_and_deletes_by_handle(nft: ScriptedNft) -> None:
    NftablesMasq(Nft(nft)).teardown(req("testnet", "red1"))  # no address known: all the same
    assert nft.reads() == [LIST_MASQ]
    assert nft.writes == [
        f"delete rule {TABLE} masq_checks handle 6\ndelete rule {TABLE} masq_checks handle 7\n"
    ]


def test_del_of_an_unknown_attachment_or_without_the_table_writes_nothing(
    nft: ScriptedNft,
) -> None:
    NftablesMasq(Nft(nft)).teardown(req("testnet", "nobody"))
    empty = ScriptedNft()
    NftablesMasq(Nft(empty)).teardown(RED)
    assert nft.writes == empty.writes == []
    assert empty.reads() == [LIST_MASQ]


def test_cleanup_is_a_no_op_where_the_kernel_has_no_nftables(nft: ScriptedNft) -> None:
    nft.kernel_has_nftables = False
    backend = NftablesMasq(Nft(nft))
    backend.teardown(RED)
    assert backend.gc("testnet", set()) == []
    with pytest.raises(IOFailure):
        backend.setup(RED)  # ADD never hides a failure
    nft.kernel_has_nftables = True
    nft.fail_writes = ATTEMPTS
    with pytest.raises(IOFailure):
        backend.teardown(RED)  # a kernel with nftables: the failure is real


def test_gc_one_batch_and_one_line_per_attachment(nft: ScriptedNft) -> None:
    removed = NftablesMasq(Nft(nft)).gc("testnet", [("blue1", "eth0")])
    assert removed == [
        "nftables c5964c6794a1152e-924df77753e72b56, net: testnet, if: eth0, id: red1"
    ]
    assert nft.writes == [
        f"delete rule {TABLE} masq_checks handle 6\ndelete rule {TABLE} masq_checks handle 7\n"
    ]
    assert NftablesMasq(Nft(nft)).gc("othernet", [("red1", "eth1")]) == []
    assert len(nft.writes) == 1


def test_check_reads_the_table_once_as_json(nft: ScriptedNft) -> None:
    assert NftablesMasq(Nft(nft)).missing(RED) == []
    assert nft.reads() == [LIST_TABLE]
