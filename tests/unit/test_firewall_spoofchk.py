"""The macspoofchk layout (pure): names, the JSON transactions and CHECK's comparison; and the
checker's reads and writes over a scripted transport."""

from __future__ import annotations

import json
from typing import Any

import pytest

from cni_bridge_py.errors import IOFailure
from cni_bridge_py.firewall import spoof_layout as layout
from cni_bridge_py.firewall.macspoofchk import NftSpoofChecker
from cni_bridge_py.firewall.nft_json import Ruleset
from cni_bridge_py.firewall.nft_run import ATTEMPTS, Nft
from cni_bridge_py.firewall.spoof_layout import SpoofCheck
from tests.doubles.nft import ScriptedNft

# `nft -j list table bridge nat` (nft 1.0.6) after our setup for red1/eth0.
LISTING = json.loads("""{"nftables": [
 {"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5", "json_schema_version": 1}},
 {"table": {"family": "bridge", "name": "nat", "handle": 6}},
 {"chain": {"family": "bridge", "table": "nat", "name": "PREROUTING", "handle": 1,
   "type": "filter", "hook": "prerouting", "prio": -300, "policy": "accept"}},
 {"chain": {"family": "bridge", "table": "nat", "name": "cni-br-iface-red1-eth0", "handle": 2}},
 {"chain": {"family": "bridge", "table": "nat", "name": "cni-br-iface-red1-eth0-mac",
   "handle": 3}},
 {"rule": {"family": "bridge", "table": "nat", "chain": "PREROUTING", "handle": 4,
   "comment": "macspoofchk-red1-eth0", "expr": [
    {"match": {"op": "==", "left": {"meta": {"key": "iifname"}}, "right": "veth0a1b2c3d"}},
    {"jump": {"target": "cni-br-iface-red1-eth0"}}]}},
 {"rule": {"family": "bridge", "table": "nat", "chain": "cni-br-iface-red1-eth0", "handle": 5,
   "comment": "macspoofchk-red1-eth0", "expr": [
    {"jump": {"target": "cni-br-iface-red1-eth0-mac"}}]}},
 {"rule": {"family": "bridge", "table": "nat", "chain": "cni-br-iface-red1-eth0-mac",
   "handle": 6, "comment": "macspoofchk-red1-eth0", "expr": [
    {"match": {"op": "==", "left": {"payload": {"protocol": "ether", "field": "saddr"}},
      "right": "0a:58:c0:a8:0f:02"}},
    {"return": null}]}},
 {"rule": {"family": "bridge", "table": "nat", "chain": "cni-br-iface-red1-eth0-mac",
   "handle": 7, "comment": "macspoofchk-red1-eth0", "expr": [{"drop": null}]}}
]}""")
CURRENT = Ruleset.parse(LISTING)
RED = SpoofCheck("red1", "eth0", "veth0a1b2c3d", "0A:58:C0:A8:0F:02")
BASE = {"family": "bridge", "table": "nat", "name": "PREROUTING"}


def chain(name: str) -> dict[str, Any]:
    return {"family": "bridge", "table": "nat", "name": name}


def test_names_are_the_references() -> None:
    assert RED.ref_id == "red1-eth0"
    assert RED.iface_chain == "cni-br-iface-red1-eth0"
    assert RED.mac_chain == "cni-br-iface-red1-eth0-mac"
    assert RED.comment == "macspoofchk-red1-eth0"


def test_comment_is_cut_to_what_nft_accepts() -> None:
    assert len(SpoofCheck("c" * 200, "eth0").comment.encode()) == 128


def test_setup_into_an_empty_ruleset() -> None:
    batch = layout.render_setup(Ruleset(), RED)["nftables"]
    comment = "macspoofchk-red1-eth0"
    assert batch == [
        {"add": {"table": {"family": "bridge", "name": "nat"}}},
        {
            "add": {
                "chain": {
                    **BASE,
                    "type": "filter",
                    "hook": "prerouting",
                    "prio": -300,
                    "policy": "accept",
                }
            }
        },
        {"add": {"chain": chain("cni-br-iface-red1-eth0")}},
        {"add": {"chain": chain("cni-br-iface-red1-eth0-mac")}},
        {"flush": {"chain": chain("cni-br-iface-red1-eth0")}},
        {"flush": {"chain": chain("cni-br-iface-red1-eth0-mac")}},
        {
            "add": {
                "rule": {
                    "family": "bridge",
                    "table": "nat",
                    "chain": "PREROUTING",
                    "expr": [
                        {
                            "match": {
                                "op": "==",
                                "left": {"meta": {"key": "iifname"}},
                                "right": "veth0a1b2c3d",
                            }
                        },
                        {"jump": {"target": "cni-br-iface-red1-eth0"}},
                    ],
                    "comment": comment,
                }
            }
        },
        {
            "add": {
                "rule": {
                    "family": "bridge",
                    "table": "nat",
                    "chain": "cni-br-iface-red1-eth0",
                    "expr": [{"jump": {"target": "cni-br-iface-red1-eth0-mac"}}],
                    "comment": comment,
                }
            }
        },
        {
            "add": {
                "rule": {
                    "family": "bridge",
                    "table": "nat",
                    "chain": "cni-br-iface-red1-eth0-mac",
                    "expr": [
                        {
                            "match": {
                                "op": "==",
                                "left": {"payload": {"protocol": "ether", "field": "saddr"}},
                                "right": "0a:58:c0:a8:0f:02",
                            }
                        },
                        {"return": None},
                    ],
                    "comment": comment,
                }
            }
        },
        {
            "add": {
                "rule": {
                    "family": "bridge",
                    "table": "nat",
                    "chain": "cni-br-iface-red1-eth0-mac",
                    "expr": [{"drop": None}],
                    "comment": comment,
                }
            }
        },
    ]


def test_repeated_setup_deletes_the_old_jump_in_the_same_transaction() -> None:
    batch = layout.render_setup(CURRENT, SpoofCheck("red1", "eth0", "vethnew", "0a:58:00:00:00:01"))
    deletes = [c for c in batch["nftables"] if "delete" in c]
    assert deletes == [
        {
            "delete": {
                "rule": {"family": "bridge", "table": "nat", "chain": "PREROUTING", "handle": 4}
            }
        }
    ]
    # Deleted after the chains are flushed, before the new rules.
    kinds = [next(iter(c)) for c in batch["nftables"]]
    assert kinds == ["add"] * 4 + ["flush"] * 2 + ["delete"] + ["add"] * 4


def test_teardown_needs_only_the_ids() -> None:
    batch = layout.render_teardown(CURRENT, SpoofCheck("red1", "eth0"))
    assert batch == {
        "nftables": [
            {
                "delete": {
                    "rule": {"family": "bridge", "table": "nat", "chain": "PREROUTING", "handle": 4}
                }
            },
            {"flush": {"chain": chain("cni-br-iface-red1-eth0")}},
            {"flush": {"chain": chain("cni-br-iface-red1-eth0-mac")}},
            {"delete": {"chain": chain("cni-br-iface-red1-eth0")}},
            {"delete": {"chain": chain("cni-br-iface-red1-eth0-mac")}},
        ]
    }


def test_teardown_of_another_attachment_or_nothing_is_none() -> None:
    assert layout.render_teardown(CURRENT, SpoofCheck("red1", "eth1")) is None
    assert layout.render_teardown(Ruleset(), SpoofCheck("red1", "eth0")) is None


def test_jump_found_by_target_when_the_comment_differs() -> None:
    rules = tuple(
        r if r.handle != 4 else type(r)(r.family, r.table, r.chain, r.handle, "", r.text)
        for r in CURRENT.rules
    )
    current = Ruleset(CURRENT.tables, CURRENT.chains, rules)
    assert [r.handle for r in layout.base_rules(current, RED)] == [4]
    # A prefix of our chain name in someone else's jump is not ours.
    other = SpoofCheck("red1", "eth")
    assert layout.base_rules(current, other) == []


def test_nothing_missing_when_installed_mac_case_ignored() -> None:
    assert layout.rules_missing(CURRENT, RED) == []


def test_missing_pieces_are_reported() -> None:
    assert layout.rules_missing(Ruleset(), RED) == [
        "chain bridge nat PREROUTING (filter hook prerouting priority -300)"
    ]
    other_mac = SpoofCheck("red1", "eth0", "veth0a1b2c3d", "0a:58:c0:a8:0f:99")
    assert layout.rules_missing(CURRENT, other_mac) == [
        "cni-br-iface-red1-eth0-mac: ether saddr 0a:58:c0:a8:0f:99 return ; drop"
    ]
    other_veth = SpoofCheck("red1", "eth0", "vethzzzz", "0a:58:c0:a8:0f:02")
    assert layout.rules_missing(CURRENT, other_veth) == [
        "PREROUTING: iifname vethzzzz jump cni-br-iface-red1-eth0"
    ]
    no_drop = Ruleset(CURRENT.tables, CURRENT.chains, CURRENT.rules[:-1])
    assert layout.rules_missing(no_drop, RED) == [
        "cni-br-iface-red1-eth0-mac: ether saddr 0a:58:c0:a8:0f:02 return ; drop"
    ]
    chains = tuple(c for c in CURRENT.chains if not c.name.endswith("-mac"))
    rules = tuple(r for r in CURRENT.rules if not r.chain.endswith("-mac"))
    assert layout.rules_missing(Ruleset(CURRENT.tables, chains, rules), RED) == [
        "chain bridge nat cni-br-iface-red1-eth0-mac"
    ]


# --- the blind ADD


def test_fresh_setup_creates_the_chains_and_adds_the_rules_only() -> None:
    """The same four rules as the full setup, behind two `create`s that fail when a chain of
    the attachment exists; the shared table and PREROUTING are not rewritten."""
    fresh = layout.render_fresh_setup(RED)["nftables"]
    full = layout.render_setup(Ruleset(), RED)["nftables"]
    assert fresh[:2] == [
        {"create": {"chain": chain("cni-br-iface-red1-eth0")}},
        {"create": {"chain": chain("cni-br-iface-red1-eth0-mac")}},
    ]
    assert fresh[2:] == [c for c in full if "rule" in c.get("add", {})]
    assert len(fresh) == 6


# --- the checker over a scripted transport (texts as `nft -a -y list chain` printed them)

PREROUTING_TEXT = """\
table bridge nat {
\tchain PREROUTING { # handle 1
\t\ttype filter hook prerouting priority -300; policy accept;
\t\tiifname "veth0a1b2c3d" jump cni-br-iface-red1-eth0 comment "macspoofchk-red1-eth0" # handle 4
\t}
}
"""
IFACE_TEXT = """\
table bridge nat {
\tchain cni-br-iface-red1-eth0 { # handle 2
\t\tjump cni-br-iface-red1-eth0-mac comment "macspoofchk-red1-eth0" # handle 5
\t}
}
"""
MAC_TEXT = """\
table bridge nat {
\tchain cni-br-iface-red1-eth0-mac { # handle 3
\t\tether saddr 0a:58:c0:a8:0f:02 return comment "macspoofchk-red1-eth0" # handle 6
\t\tdrop comment "macspoofchk-red1-eth0" # handle 7
\t}
}
"""
LIST_PREROUTING = "list chain bridge nat PREROUTING"
LIST_IFACE = "list chain bridge nat cni-br-iface-red1-eth0"
LIST_MAC = "list chain bridge nat cni-br-iface-red1-eth0-mac"
LIST_TABLE = "list table bridge nat"


@pytest.fixture
def nft() -> ScriptedNft:
    return ScriptedNft(
        chains={LIST_PREROUTING: PREROUTING_TEXT, LIST_IFACE: IFACE_TEXT, LIST_MAC: MAC_TEXT},
        tables={LIST_TABLE: LISTING},
    )


def test_add_is_one_blind_transaction() -> None:
    nft = ScriptedNft()
    NftSpoofChecker(Nft(nft)).setup(RED)
    assert nft.reads() == []
    assert [json.loads(w) for w in nft.writes] == [layout.render_fresh_setup(RED)]


def test_add_that_finds_its_chains_reads_and_rewrites(nft: ScriptedNft) -> None:
    """The blind write fails (here: scripted; in the kernel: the chain exists, or the table
    does not yet); then the table is read and the full transaction written."""
    nft.fail_writes = 1
    NftSpoofChecker(Nft(nft)).setup(RED)
    assert nft.reads() == [LIST_TABLE]
    assert [json.loads(w) for w in nft.writes] == [layout.render_setup(CURRENT, RED)]


def test_add_failing_throughout_is_reported(nft: ScriptedNft) -> None:
    nft.fail_writes = 1 + ATTEMPTS
    with pytest.raises(IOFailure, match="installing macspoofchk rules"):
        NftSpoofChecker(Nft(nft)).setup(RED)


def test_del_reads_what_it_removes_and_writes_once(nft: ScriptedNft) -> None:
    NftSpoofChecker(Nft(nft)).teardown(SpoofCheck("red1", "eth0"))
    assert nft.reads() == [LIST_PREROUTING, LIST_IFACE, LIST_MAC]
    assert [json.loads(w) for w in nft.writes] == [
        layout.render_teardown(CURRENT, SpoofCheck("red1", "eth0"))
    ]


def test_del_without_rules_writes_nothing() -> None:
    nft = ScriptedNft()
    NftSpoofChecker(Nft(nft)).teardown(SpoofCheck("red1", "eth0"))
    assert nft.writes == []
    assert LIST_TABLE not in nft.reads()


def test_del_whose_write_fails_retries_from_the_json_table(nft: ScriptedNft) -> None:
    nft.fail_writes = 1
    NftSpoofChecker(Nft(nft)).teardown(SpoofCheck("red1", "eth0"))
    assert nft.reads()[3:] == [LIST_TABLE]
    assert len(nft.writes) == 1


def test_del_is_a_no_op_where_the_kernel_has_no_nftables(nft: ScriptedNft) -> None:
    nft.kernel_has_nftables = False
    NftSpoofChecker(Nft(nft)).teardown(SpoofCheck("red1", "eth0"))
    nft.kernel_has_nftables = True
    nft.fail_writes = ATTEMPTS
    with pytest.raises(IOFailure):
        NftSpoofChecker(Nft(nft)).teardown(SpoofCheck("red1", "eth0"))
