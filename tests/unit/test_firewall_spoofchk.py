"""The macspoofchk layout (pure): names, the JSON transactions and CHECK's comparison."""

from __future__ import annotations

import json
from typing import Any

from cni_bridge_py.firewall import spoof_layout as layout
from cni_bridge_py.firewall.nft_json import Ruleset
from cni_bridge_py.firewall.spoof_layout import SpoofCheck

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
