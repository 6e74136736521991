"""The reference plugin's nftables masquerade layout (pure): names, comments and `nft -f` batches.

    table inet cni_plugins_masquerade        (comment: Masquerading for plugins from ...)
      chain postrouting  nat hook postrouting priority 100, rewritten on every setup:
        ip daddr 224.0.0.0/4 return ; ip6 daddr ff00::/8 return ; goto masq_checks
      chain masq_checks  one rule per attachment address:
        ip saddr <ip> ip daddr != <subnet> masquerade comment "<H16(net)>-<H16(if:id)>, net: ..."

H16 is the first 16 hex digits of sha512. The comment's first 33 characters (the "instance
hash") name one attachment (network, ifname, container), so the rules of one attachment are
found, replaced and removed by comment prefix, and never those of another attachment that
reuses the same address. Same names and comments as the reference, so either plugin's DEL
or GC removes what the other's ADD made.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterable

from cni_bridge_py.firewall.layout import MULTICAST, MasqRequest
from cni_bridge_py.firewall.nft_json import Rule, Ruleset
from cni_bridge_py.netaddr import IPInterface

FAMILY = "inet"
TABLE = "cni_plugins_masquerade"
MASQ_CHAIN = "masq_checks"
POSTROUTING = "postrouting"
TABLE_COMMENT = "Masquerading for plugins from github.com/containernetworking/plugins"
CHAIN_COMMENT = "Masquerade traffic from certain IPs to any (non-multicast) IP outside their subnet"
# nft refuses longer comments ("comment too long, 128 characters maximum allowed").
COMMENT_MAX = 128
# srcnat: after routing decided the outgoing interface, whose address masquerade takes.
POSTROUTING_HOOK = ("nat", "postrouting", 100)
POSTROUTING_RULES = (
    f"ip daddr {MULTICAST[4]} return",
    f"ip6 daddr {MULTICAST[6]} return",
    f"goto {MASQ_CHAIN}",
)
_PREFIX = f"{FAMILY} {TABLE}"
INSTANCE_LEN = 33  # "<16 hex>-<16 hex>"


def hash16(text: str) -> str:
    return hashlib.sha512(text.encode(errors="surrogateescape")).hexdigest()[:16]


def network_hash(network: str) -> str:
    return hash16(network)


def instance_hash(network: str, ifname: str, container_id: str) -> str:
    return f"{network_hash(network)}-{hash16(ifname + ':' + container_id)}"


def instance_comment(network: str, ifname: str, container_id: str) -> str:
    """The rule comment: the instance hash, then who it is for (quotes dropped, since an nft
    string cannot hold them), cut to nft's 128 bytes."""
    names = [n.replace('"', "") for n in (network, ifname, container_id)]
    text = f"{instance_hash(network, ifname, container_id)}, net: {names[0]}, if: {names[1]}"
    text += f", id: {names[2]}"
    raw = text.encode(errors="surrogateescape")
    if len(raw) <= COMMENT_MAX:
        return text
    # A multi-byte character cut in half is dropped rather than written as invalid UTF-8.
    return raw[:COMMENT_MAX].decode(errors="ignore")


def masq_rule(address: IPInterface) -> str:
    """The rule for one address, as `nft list` prints it (the comment aside)."""
    ip = "ip" if address.version == 4 else "ip6"
    return f"{ip} saddr {address.ip} {ip} daddr != {address.network} masquerade"


def _quote(text: str) -> str:
    # nft strings have no escapes; instance_comment already removed every '"'.
    return '"' + text + '"'


def render_setup(current: Ruleset, request: MasqRequest) -> str:
    """One transaction: make sure the table and both chains exist and postrouting holds its
    three rules (written only when `current` does not show them in place), drop this
    attachment's earlier rules (a repeated ADD) and add one rule per address."""
    comment = instance_comment(request.network, request.ifname, request.container_id)
    lines = [
        *([] if base_in_place(current) else _base_lines()),
        *_delete_lines(attachment_rules(current, request)),
        *(
            f"add rule {_PREFIX} {MASQ_CHAIN} {masq_rule(a)} comment {_quote(comment)}"
            for a in request.addresses
        ),
    ]
    return "\n".join(lines) + "\n"


def base_in_place(current: Ruleset) -> bool:
    """Whether both chains exist and postrouting holds exactly its three rules. Rewriting them
    anyway would give the same rules; skipping it keeps an ADD to the one rule it adds (and
    spares the kernel a chain update, whose release costs the next socket close a grace
    period)."""
    post = current.chain(FAMILY, TABLE, POSTROUTING)
    return (
        current.chain(FAMILY, TABLE, MASQ_CHAIN) is not None
        and post is not None
        and post.hook == POSTROUTING_HOOK
        and [r.text for r in current.rules_of(FAMILY, TABLE, POSTROUTING)]
        == list(POSTROUTING_RULES)
    )


def _base_lines() -> list[str]:
    return [
        f"add table {_PREFIX} {{ comment {_quote(TABLE_COMMENT)} ; }}",
        f"add chain {_PREFIX} {MASQ_CHAIN} {{ comment {_quote(CHAIN_COMMENT)} ; }}",
        f"add chain {_PREFIX} {POSTROUTING} {{ type nat hook postrouting priority 100 ; }}",
        f"flush chain {_PREFIX} {POSTROUTING}",
        *(f"add rule {_PREFIX} {POSTROUTING} {rule}" for rule in POSTROUTING_RULES),
    ]


def render_delete(rules: Iterable[Rule]) -> str | None:
    """A transaction deleting `rules` by handle; None when there are none."""
    lines = _delete_lines(rules)
    return "\n".join(lines) + "\n" if lines else None


def _delete_lines(rules: Iterable[Rule]) -> list[str]:
    return [f"delete rule {_PREFIX} {r.chain} handle {r.handle}" for r in rules]


def _masq_rules(current: Ruleset) -> list[Rule]:
    return current.rules_of(FAMILY, TABLE, MASQ_CHAIN)


def attachment_rules(current: Ruleset, request: MasqRequest) -> list[Rule]:
    """Every rule of this attachment, whatever its addresses: the instance hash covers network,
    ifname and container. Without an ifname (a caller that does not know it), every rule of
    the container on this network, read from the comment's trailing "id: <cid>"."""
    if request.ifname:
        prefix = instance_hash(request.network, request.ifname, request.container_id)
        return [r for r in _masq_rules(current) if r.comment.startswith(prefix)]
    net = network_hash(request.network) + "-"
    suffix = ", id: " + request.container_id.replace('"', "")
    return [
        r for r in _masq_rules(current) if r.comment.startswith(net) and r.comment.endswith(suffix)
    ]


def network_rules(current: Ruleset, network: str) -> list[Rule]:
    prefix = network_hash(network) + "-"
    return [r for r in _masq_rules(current) if r.comment.startswith(prefix)]


def stale_rules(current: Ruleset, network: str, valid: Collection[tuple[str, str]]) -> list[Rule]:
    """GC: the network's rules that belong to none of the valid (containerID, ifname) pairs.
    Rules of other networks have another network hash and are never returned."""
    keep = {instance_hash(network, ifname, cid) for cid, ifname in valid}
    return [r for r in network_rules(current, network) if r.comment[:INSTANCE_LEN] not in keep]


def rules_missing(current: Ruleset, request: MasqRequest) -> list[str]:
    """For CHECK: what of this attachment's layout is not installed, as readable lines."""
    if not current.has_table(FAMILY, TABLE):
        return [f"table {_PREFIX}"]
    out: list[str] = []
    post = current.chain(FAMILY, TABLE, POSTROUTING)
    if post is None or post.hook != POSTROUTING_HOOK:
        out.append(f"chain {_PREFIX} {POSTROUTING} (nat hook postrouting priority 100)")
    else:
        have = [r.text for r in current.rules_of(FAMILY, TABLE, POSTROUTING)]
        if have != list(POSTROUTING_RULES):
            out.append(f"{POSTROUTING}: {' ; '.join(POSTROUTING_RULES)}")
    comment = instance_comment(request.network, request.ifname, request.container_id)
    installed = {(r.text, r.comment) for r in _masq_rules(current)}
    for address in request.addresses:
        if (masq_rule(address), comment) not in installed:
            out.append(f'{MASQ_CHAIN}: {masq_rule(address)} comment "{comment}"')
    return out


def describe_rule(rule: Rule) -> str:
    """How GC reports a removed rule: who it was for, from its comment."""
    return f"nftables {rule.comment}"
