"""iptables-nft's nat table as libnftables lists it (pure): what a DEL deletes by handle and
what a CHECK finds missing, with no iptables process.

iptables-nft keeps `-t nat` as the nftables tables `ip nat` / `ip6 nat`. Listed as JSON, a
rule is nft expressions: `-s 10.0.0.2/32 ... -j CNI-x` is a saddr match and a jump, `-d
10.0.0.0/24 ... -j ACCEPT` a daddr match and accept, `! -d 224.0.0.0/4 ... -j MASQUERADE` a
daddr `!=` match and the xtables target MASQUERADE. The JSON names xtables extensions without
decoding them: the text listing would run libxtables in our process, which cannot always
decode MASQUERADE there and says so on stderr. So `-m comment`'s text is not seen, and these
views match rules by addresses and targets only: the chain's name already names the network
and container (a hash of both), and GC, which needs the comments, still reads iptables-save.

A rule becomes words in nft's text order (`ip saddr 10.0.0.2 counter jump CNI-x`), which the
matching below and the tests read easily.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from cni_bridge_py import cjson
from cni_bridge_py.firewall.layout import MULTICAST, MasqRequest, chain_rules, jump_rule
from cni_bridge_py.netaddr import IPInterface

FAMILY_WORDS = {4: "ip", 6: "ip6"}
POSTROUTING = "POSTROUTING"
# A rule of a listing: its handle and its words.
NftRule = tuple[int, tuple[str, ...]]


def parse_chain(listing: str, jumping_to: str = "") -> list[NftRule]:
    """The rules of a `list chain` printed as JSON, in order; with `jumping_to`, only those
    that jump to that chain (POSTROUTING holds one jump per container: the others are not
    worth putting into words)."""
    rules: list[NftRule] = []
    for item in cjson.loads(listing).get("nftables", ()):
        rule = item.get("rule") if isinstance(item, dict) else None
        if not (isinstance(rule, dict) and isinstance(rule.get("handle"), int)):
            continue
        exprs = rule.get("expr") or [{}]
        # The verdict is a rule's last statement: only it is looked at in the others.
        if jumping_to and _jump_target(exprs[-1]) != jumping_to:
            continue
        words = [w for expr in exprs for w in _words(expr)]
        rules.append((rule["handle"], tuple(words)))
    return rules


def _jump_target(expr: Any) -> str | None:
    body = expr.get("jump") if isinstance(expr, dict) else None
    return body.get("target") if isinstance(body, dict) else None


def _words(expr: dict[str, Any]) -> list[str]:
    """One expression as nft's text would say it (only what the layout uses); an unknown
    one as its kind, so it never matches by accident."""
    kind, body = next(iter(expr.items()), ("", None))
    if kind == "match" and isinstance(body, dict):
        left = body.get("left", {}).get("payload", {})
        op = [] if body.get("op") == "==" else [str(body.get("op"))]
        return [str(left.get("protocol")), str(left.get("field")), *op, _value(body.get("right"))]
    if kind == "jump" and isinstance(body, dict):
        return ["jump", str(body.get("target"))]
    if kind == "xt" and isinstance(body, dict):
        # xtables' MASQUERADE, ACCEPT... read like nft's native verdicts; a match is not one.
        name = str(body.get("name", "")).lower()
        return [name] if body.get("type") == "target" else [f"xt-{name}"]
    return [kind]


def _value(right: Any) -> str:
    if isinstance(right, dict) and "prefix" in right:
        return f"{right['prefix'].get('addr')}/{right['prefix'].get('len')}"
    return str(right)


def list_command(family: int, chain: str) -> str:
    return f"list chain {FAMILY_WORDS[family]} nat {chain}"


def _after(words: Sequence[str], word: str) -> str:
    for i, candidate in enumerate(words[:-1]):
        if candidate == word:
            return words[i + 1]
    return ""


def jumps_to(postrouting: Sequence[NftRule], chain: str) -> list[NftRule]:
    return [rule for rule in postrouting if _after(rule[1], "jump") == chain]


def teardown_plan(
    chain: str, postrouting: Sequence[NftRule], hosts: Collection[str]
) -> tuple[list[int], bool]:
    """What a DEL removes of an existing `chain`: the handles of POSTROUTING's jumps to it
    from `hosts` (every jump when empty), and whether the chain goes too (once nothing jumps
    to it): what render_teardown does from an iptables-save read. Deleting by handle fails
    the whole transaction if the rule went away meanwhile, and the chain's deletion fails
    while another rule still jumps to it: the kernel refuses a state we did not read."""
    jumps = jumps_to(postrouting, chain)
    doomed = [handle for handle, words in jumps if not hosts or _after(words, "saddr") in hosts]
    return doomed, len(doomed) == len(jumps)


def teardown_commands(family: int, chain: str, doomed: Sequence[int], whole: bool) -> list[str]:
    """teardown_plan's deletions as one libnftables transaction."""
    where = f"{FAMILY_WORDS[family]} nat"
    commands = [f"delete rule {where} {POSTROUTING} handle {handle}" for handle in doomed]
    if whole:
        commands += [f"flush chain {where} {chain}", f"delete chain {where} {chain}"]
    return commands


def missing(
    request: MasqRequest,
    family: int,
    own: Sequence[NftRule] | None,
    postrouting: Sequence[NftRule],
) -> list[str]:
    """The expected rules (as iptables would print them) not installed; `own` is the
    container's chain, None when it does not exist."""
    word = FAMILY_WORDS[family]
    own_words = [words for _, words in own or ()]
    accepts = [a for a in request.addresses if a.version == family]
    accepted = [any(_is_accept(w, word, _prefix(a)) for w in own_words) for a in accepts]
    masqueraded = any(_is_masquerade(w, word, MULTICAST[family]) for w in own_words)
    jumps = [words for _, words in jumps_to(postrouting, request.chain)]
    jumped = [any(w[:3] == (word, "saddr", str(a.ip)) for w in jumps) for a in accepts]
    if all(accepted) and masqueraded and all(jumped):
        return []  # the rules are only spelled out for what is missing
    expected = chain_rules(request, family)
    out = [rule for rule, found in zip(expected[:-1], accepted, strict=True) if not found]
    out += [] if masqueraded else [expected[-1]]
    return out + [
        jump_rule(request, a) for a, found in zip(accepts, jumped, strict=True) if not found
    ]


def _prefix(addr: IPInterface) -> str:
    """A network as nft prints it: a host prefix without its length."""
    network = addr.network
    if network.prefixlen == network.max_prefixlen:
        return str(network.network_address)
    return str(network)


# The verdict follows the matches and the counter; a comment nft could print comes after it.
def _is_accept(words: tuple[str, ...], family_word: str, network: str) -> bool:
    return words[:3] == (family_word, "daddr", network) and "accept" in words[3:]


def _is_masquerade(words: tuple[str, ...], family_word: str, multicast: str) -> bool:
    return words[:4] == (family_word, "daddr", "!=", multicast) and "masquerade" in words[4:]
