"""What `nft -a -y list chain ...` prints, reduced to the chain's hook and each rule's handle,
comment and text (pure).

The fast read of ADD and DEL: only handles and comments name what they delete, and the text
form costs libnftables a third of the JSON form (3 against 8.5 ms for 250 rules here). A
rule's text is nft's own print without the comment ("ip saddr 10.0.0.2 ip daddr !=
10.0.0.0/24 masquerade"), which for our rules is the text nft_json gives them too. Exact
comparisons (CHECK) read JSON.
"""

from __future__ import annotations

import re

from cni_bridge_py.firewall.nft_json import Chain, Rule, Ruleset

# nft strings cannot hold '"', so the comment is the last quoted string before the handle.
_RULE = re.compile(r'^(?P<text>.*?)(?: comment "(?P<comment>[^"]*)")? # handle (?P<handle>\d+)$')
# A base chain's first line, priorities printed as numbers (numeric_prio).
_HOOK = re.compile(
    r"^type (?P<type>\S+) hook (?P<hook>\S+) (?:device \S+ )?priority (?P<prio>-?\d+);"
)


def parse_chain(listing: str, family: str, table: str, chain: str) -> Ruleset:
    """The output of `nft -a -y list chain <family> <table> <chain>` (handles, numeric
    priorities): that chain, its hook, and its rules."""
    rules = []
    hook: tuple[str, str, int] | None = None
    for raw in listing.splitlines():
        line = raw.strip()
        if line.startswith(("table ", "chain ")):  # their headers carry handles too
            continue
        base = _HOOK.match(line)
        if base is not None:
            hook = (base["type"], base["hook"], int(base["prio"]))
            continue
        found = _RULE.match(line)
        if found is not None:
            comment, handle = found["comment"] or "", int(found["handle"])
            rules.append(Rule(family, table, chain, handle, comment, found["text"]))
    chains = (Chain(family, table, chain, hook),)
    return Ruleset(frozenset({(family, table)}), chains, tuple(rules))
