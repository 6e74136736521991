"""The reference plugin's macspoofchk layout (pure): nft JSON batches for the bridge family.

    table bridge nat
      chain PREROUTING  filter hook prerouting priority -300, policy accept (shared)
        iifname "<host veth>" jump cni-br-iface-<cid>-<ifname>
      chain cni-br-iface-<cid>-<ifname>
        jump cni-br-iface-<cid>-<ifname>-mac
      chain cni-br-iface-<cid>-<ifname>-mac
        ether saddr <container MAC> return
        drop
    every rule commented "macspoofchk-<cid>-<ifname>"

Frames entering the bridge from the container's veth with any other source MAC are dropped
before the bridge learns or forwards them. The names carry no hash (as in the reference), so
the rules are found again from the container ID and ifname alone, without the host veth or
the netns: DEL works after the netns is gone.

Batches are nft JSON (`nft -j -f -`), as the reference's go-nft writes them: chain names
hold the ifname, which may contain characters nft's text syntax cannot quote.
"""

from __future__ import annotations

from typing import Any

from cni_bridge_py.firewall.nft_json import Rule, Ruleset, describe
from cni_bridge_py.record import record

FAMILY = "bridge"
TABLE = "nat"
BASE_CHAIN = "PREROUTING"
# -300 (nft prints it as "dstnat"): ahead of other bridge prerouting chains. The hook runs
# before the bridge learns the source MAC, so a spoofed frame never reaches the FDB.
BASE_HOOK = ("filter", "prerouting", -300)
COMMENT_MAX = 128

Expr = list[dict[str, Any]]


@record(frozen=True)
class SpoofCheck:
    """One attachment's spoof check. host_veth and mac are needed to install or verify, not
    to remove."""

    container_id: str
    ifname: str
    host_veth: str = ""
    mac: str = ""

    @property
    def ref_id(self) -> str:
        return f"{self.container_id}-{self.ifname}"

    @property
    def iface_chain(self) -> str:
        return "cni-br-iface-" + self.ref_id

    @property
    def mac_chain(self) -> str:
        return self.iface_chain + "-mac"

    @property
    def comment(self) -> str:
        # nft refuses comments over 128 bytes; the chain names, not the comment, identify.
        raw = ("macspoofchk-" + self.ref_id).encode(errors="surrogateescape")
        return raw[:COMMENT_MAX].decode(errors="ignore")


def _chain(name: str) -> dict[str, Any]:
    return {"family": FAMILY, "table": TABLE, "name": name}


def expected_rules(spec: SpoofCheck) -> list[tuple[str, Expr]]:
    """(chain, statements) of every rule, in evaluation order."""
    iifname = {"match": {"op": "==", "left": {"meta": {"key": "iifname"}}, "right": spec.host_veth}}
    saddr = {"payload": {"protocol": "ether", "field": "saddr"}}
    return [
        (BASE_CHAIN, [iifname, {"jump": {"target": spec.iface_chain}}]),
        (spec.iface_chain, [{"jump": {"target": spec.mac_chain}}]),
        (
            spec.mac_chain,
            [
                {"match": {"op": "==", "left": saddr, "right": spec.mac.lower()}},
                {"return": None},
            ],
        ),
        (spec.mac_chain, [{"drop": None}]),
    ]


def base_rules(current: Ruleset, spec: SpoofCheck) -> list[Rule]:
    """This attachment's jumps in the shared PREROUTING chain: by comment (the reference's
    lookup) or by target (a comment cut at 128 bytes, or written by someone else)."""
    target = " jump " + spec.iface_chain
    return [
        r
        for r in current.rules_of(FAMILY, TABLE, BASE_CHAIN)
        if r.comment == spec.comment or r.text.endswith(target)
    ]


def render_setup(current: Ruleset, spec: SpoofCheck) -> dict[str, Any]:
    """One transaction: table and chains (created when missing), this attachment's chains
    flushed and its earlier PREROUTING jumps deleted (a repeated ADD), then the four rules."""
    base = {
        **_chain(BASE_CHAIN),
        "type": BASE_HOOK[0],
        "hook": BASE_HOOK[1],
        "prio": BASE_HOOK[2],
        "policy": "accept",
    }
    commands: list[dict[str, Any]] = [
        {"add": {"table": {"family": FAMILY, "name": TABLE}}},
        {"add": {"chain": base}},
        {"add": {"chain": _chain(spec.iface_chain)}},
        {"add": {"chain": _chain(spec.mac_chain)}},
        {"flush": {"chain": _chain(spec.iface_chain)}},
        {"flush": {"chain": _chain(spec.mac_chain)}},
        *(_delete(rule) for rule in base_rules(current, spec)),
    ]
    for chain, expr in expected_rules(spec):
        rule = {"family": FAMILY, "table": TABLE, "chain": chain, "expr": expr}
        commands.append({"add": {"rule": {**rule, "comment": spec.comment}}})
    return {"nftables": commands}


def render_fresh_setup(spec: SpoofCheck) -> dict[str, Any]:
    """The setup transaction that needs no read: create (not add) the attachment's two chains,
    which fails when either exists, then the four rules. It needs the table and PREROUTING
    to exist and leaves them as they are. A chain that does not exist has no rule and
    nothing jumps to it (the kernel refuses both), so when this commits the attachment's
    rules are exactly right; when it fails nothing of it was applied."""
    commands: list[dict[str, Any]] = [
        {"create": {"chain": _chain(spec.iface_chain)}},
        {"create": {"chain": _chain(spec.mac_chain)}},
    ]
    for chain, expr in expected_rules(spec):
        rule = {"family": FAMILY, "table": TABLE, "chain": chain, "expr": expr}
        commands.append({"add": {"rule": {**rule, "comment": spec.comment}}})
    return {"nftables": commands}


def render_teardown(current: Ruleset, spec: SpoofCheck) -> dict[str, Any] | None:
    """One transaction removing the PREROUTING jumps and both chains; None when none exist.
    Chains are flushed before deletion: older kernels refuse to delete a non-empty chain."""
    commands = [_delete(rule) for rule in base_rules(current, spec)]
    chains = [c for c in (spec.iface_chain, spec.mac_chain) if current.chain(FAMILY, TABLE, c)]
    commands += [{"flush": {"chain": _chain(c)}} for c in chains]
    commands += [{"delete": {"chain": _chain(c)}} for c in chains]
    return {"nftables": commands} if commands else None


def _delete(rule: Rule) -> dict[str, Any]:
    return {"delete": {"rule": {**_rule_ref(rule), "handle": rule.handle}}}


def _rule_ref(rule: Rule) -> dict[str, Any]:
    return {"family": rule.family, "table": rule.table, "chain": rule.chain}


def rules_missing(current: Ruleset, spec: SpoofCheck) -> list[str]:
    """For CHECK: what of this attachment's spoof check is not installed, as readable lines.
    Each chain must hold exactly our rules, in order: an extra rule ahead of the drop could
    let spoofed frames through."""
    base = current.chain(FAMILY, TABLE, BASE_CHAIN)
    if base is None or base.hook != BASE_HOOK:
        return [f"chain {FAMILY} {TABLE} {BASE_CHAIN} (filter hook prerouting priority -300)"]
    out: list[str] = []
    wanted: dict[str, list[str]] = {}
    for chain, expr in expected_rules(spec):
        wanted.setdefault(chain, []).append(describe(expr))
    jump = wanted.pop(BASE_CHAIN)[0]
    if jump not in [r.text for r in current.rules_of(FAMILY, TABLE, BASE_CHAIN)]:
        out.append(f"{BASE_CHAIN}: {jump}")
    for chain, texts in wanted.items():
        if current.chain(FAMILY, TABLE, chain) is None:
            out.append(f"chain {FAMILY} {TABLE} {chain}")
        elif [r.text for r in current.rules_of(FAMILY, TABLE, chain)] != texts:
            out.append(f"{chain}: {' ; '.join(texts)}")
    return out
