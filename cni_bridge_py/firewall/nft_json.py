"""What `nft -j list ...` says, as plain values (pure).

Only the parts our rules use are understood: payload/meta matches, prefixes and the verdicts
and statements we write. Each rule is reduced to a canonical text ("ip saddr 10.0.0.2 ip daddr
!= 10.0.0.0/24 masquerade") so an expected rule can be compared with an installed one without
caring about JSON shapes, counters or handles. Anything else is kept as sorted JSON, so it
never equals one of ours by accident.
"""

from __future__ import annotations

from typing import Any

from cni_bridge_py.record import field, record

# Statements without arguments that nft writes as {"<name>": null}.
_BARE = ("accept", "drop", "return", "continue", "masquerade", "counter")


@record(frozen=True)
class Chain:
    family: str
    table: str
    name: str
    # Base chains only: ("nat", "postrouting", 100); None for a regular chain.
    hook: tuple[str, str, int] | None = None


@record(frozen=True)
class Rule:
    family: str
    table: str
    chain: str
    handle: int
    comment: str
    text: str


@record(frozen=True)
class Ruleset:
    """One listing: the tables, chains and rules it held (empty when the table is absent)."""

    tables: frozenset[tuple[str, str]] = frozenset()
    chains: tuple[Chain, ...] = ()
    rules: tuple[Rule, ...] = field(default=())

    @classmethod
    def parse(cls, listing: dict[str, Any] | None) -> Ruleset:
        if listing is None:
            return cls()
        tables: set[tuple[str, str]] = set()
        chains: list[Chain] = []
        rules: list[Rule] = []
        for item in listing.get("nftables", []):
            if "table" in item:
                t = item["table"]
                tables.add((t["family"], t["name"]))
            elif "chain" in item:
                c = item["chain"]
                hook = (c["type"], c["hook"], int(c["prio"])) if "hook" in c else None
                chains.append(Chain(c["family"], c["table"], c["name"], hook))
            elif "rule" in item:
                r = item["rule"]
                rules.append(
                    Rule(
                        r["family"],
                        r["table"],
                        r["chain"],
                        int(r["handle"]),
                        r.get("comment", ""),
                        describe(r.get("expr", [])),
                    )
                )
        return cls(frozenset(tables), tuple(chains), tuple(rules))

    def merged(self, other: Ruleset) -> Ruleset:
        """Two listings (of different chains) as one."""
        return Ruleset(
            self.tables | other.tables, self.chains + other.chains, self.rules + other.rules
        )

    def has_table(self, family: str, table: str) -> bool:
        return (family, table) in self.tables

    def chain(self, family: str, table: str, name: str) -> Chain | None:
        for chain in self.chains:
            if (chain.family, chain.table, chain.name) == (family, table, name):
                return chain
        return None

    def rules_of(self, family: str, table: str, chain: str) -> list[Rule]:
        """In listing order, which is the order the kernel evaluates them."""
        return [r for r in self.rules if (r.family, r.table, r.chain) == (family, table, chain)]


def describe(expr: list[dict[str, Any]]) -> str:
    """A rule's statements as one line of text, close to what `nft list` prints."""
    return " ".join(_statement(stmt) for stmt in expr)


def _statement(stmt: dict[str, Any]) -> str:
    if len(stmt) != 1:
        return _opaque(stmt)
    ((key, value),) = stmt.items()
    if key == "match":
        op = value.get("op", "==")
        left, right = _value(value.get("left")), _value(value.get("right"))
        return f"{left} {right}" if op == "==" else f"{left} {op} {right}"
    if key in _BARE and value is None:
        return key
    if key in ("jump", "goto") and isinstance(value, dict) and "target" in value:
        return f"{key} {value['target']}"
    return _opaque(stmt)


def _value(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, dict) and len(value) == 1:
        ((key, inner),) = value.items()
        if key == "payload" and {"protocol", "field"} <= inner.keys():
            return f"{inner['protocol']} {inner['field']}"
        if key == "meta" and "key" in inner:
            return str(inner["key"])
        if key == "prefix" and {"addr", "len"} <= inner.keys():
            return f"{inner['addr']}/{inner['len']}"
    return _opaque(value)


def _opaque(value: Any) -> str:
    import json  # noqa: PLC0415 - json imports re: not at the import of every one-shot ADD

    return json.dumps(value, sort_keys=True, separators=(",", ":"))
