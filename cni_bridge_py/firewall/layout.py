"""The reference plugin's per-container iptables layout (pure).

Chain CNI-<first 24 hex of sha512(network + containerID)>, the comment
`name: "<net>" id: "<cid>"`, and in it: -d <subnet> ACCEPT, ! -d multicast MASQUERADE;
POSTROUTING jumps to it with -s <address>. Same names and comments as the reference, so
either plugin's DEL removes what the other's ADD made.
"""

from __future__ import annotations

import shlex
from collections.abc import Collection, Sequence
from functools import cached_property

from cni_bridge_py import cjson
from cni_bridge_py.netaddr import IPInterface
from cni_bridge_py.record import record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from hashlib import sha512
else:
    try:  # hashlib would load OpenSSL (~3 ms a one-shot run) for the same digest
        from _sha512 import sha512
    except ImportError:  # an interpreter built without it
        from hashlib import sha512

CHAIN_PREFIX = "CNI-"
MULTICAST = {4: "224.0.0.0/4", 6: "ff00::/8"}


@record(frozen=True)
class MasqRequest:
    network: str
    container_id: str
    addresses: tuple[IPInterface, ...]
    # nftables names rules by interface too; iptables shares one chain per container.
    ifname: str = ""

    # Each asked for several times per request (a SHA-512, a quoting): made once.
    @cached_property
    def chain(self) -> str:
        return chain_name(self.network, self.container_id)

    @cached_property
    def comment(self) -> str:
        return masq_comment(self.network, self.container_id)


def chain_name(network: str, container_id: str) -> str:
    digest = sha512((network + container_id).encode()).hexdigest()
    return (CHAIN_PREFIX + digest)[:28]


def masq_comment(network: str, container_id: str) -> str:
    # Go's %q quoting; json.dumps quotes the same way for the names CNI allows.
    return f"name: {cjson.quote(network)} id: {cjson.quote(container_id)}"


def _q(text: str) -> str:
    """Quote for iptables-restore, which splits like a shell and understands "..." with \\"."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def chain_rules(request: MasqRequest, family: int) -> list[str]:
    """The rule specs inside the container's chain, in order."""
    c = _q(request.comment)
    rules = []
    for addr in request.addresses:
        if addr.version == family:
            rules.append(f"-A {request.chain} -d {addr.network} -m comment --comment {c} -j ACCEPT")
    rules.append(
        f"-A {request.chain} ! -d {MULTICAST[family]} -m comment --comment {c} -j MASQUERADE"
    )
    return rules


def jump_rule(request: MasqRequest, addr: IPInterface) -> str:
    host = f"{addr.ip}/{addr.max_prefixlen}"
    return f"-A POSTROUTING -s {host} -m comment --comment {_q(request.comment)} -j {request.chain}"


@record(frozen=True)
class NatTable:
    """What iptables-save -t nat said: chains and their rules (as -A lines)."""

    chains: frozenset[str]
    rules: tuple[str, ...]

    @classmethod
    def parse(cls, save_text: str) -> NatTable:
        chains: set[str] = set()
        rules: list[str] = []
        for line in save_text.splitlines():
            if line.startswith(":"):
                chains.add(line[1:].split(" ", 1)[0])
            elif line.startswith("-A "):
                rules.append(line)
        return cls(frozenset(chains), tuple(rules))

    def rules_of(self, chain: str) -> list[str]:
        return [r for r in self.rules if r.split(" ", 2)[1] == chain]

    def jumps_to(self, chain: str) -> list[str]:
        return [rule for rule in self.rules_of("POSTROUTING") if _target(rule) == chain]


def _target(rule: str) -> str:
    words = shlex.split(rule)
    for i, word in enumerate(words[:-1]):
        if word in ("-j", "--jump", "-g", "--goto"):
            return words[i + 1]
    return ""


def rule_source(rule: str) -> str:
    """The -s address of an iptables rule as iptables-save prints it ("" when none)."""
    words = shlex.split(rule)
    for i, word in enumerate(words[:-1]):
        if word in ("-s", "--source"):
            return words[i + 1]
    return ""


def render_setup(current: NatTable, request: MasqRequest, family: int) -> str:
    """An iptables-restore --noflush batch that adds what is missing (append-unique, like the
    reference), so a second interface of the same container keeps the first one's rules."""
    # ":chain" on an existing chain would flush it: only for a chain that is not there.
    create = [] if request.chain in current.chains else [f":{request.chain} - [0:0]"]
    have = _normalised_rules_of(current, request.chain)
    return _setup_batch(create, have, request, family)


def render_fresh_setup(request: MasqRequest, family: int) -> str:
    """The setup batch that needs no read: what render_setup writes into a table without the
    chain, but the chain made with -N, which fails when it exists. A chain that does not
    exist has no rule and nothing jumps to it (the kernel refuses both), so when this batch
    commits, the attachment's rules are exactly right; when it fails, nothing of it was
    applied (one COMMIT is one transaction)."""
    return _setup_batch([f"-N {request.chain}"], set(), request, family)


def _setup_batch(
    create: list[str], have: set[tuple[str, ...]], request: MasqRequest, family: int
) -> str:
    lines = ["*nat", *create]
    wanted = chain_rules(request, family)
    accepts, masquerade = wanted[:-1], wanted[-1]
    for rule in accepts:
        if _absent(rule, have):
            # Inserted, so every ACCEPT stays ahead of the chain's MASQUERADE.
            lines.append("-I" + rule[2:].replace(f" {request.chain} ", f" {request.chain} 1 ", 1))
    if _absent(masquerade, have):
        lines.append(masquerade)
    for addr in request.addresses:
        if addr.version == family:
            jump = jump_rule(request, addr)
            if _absent(jump, have):
                lines.append(jump)
    lines.append("COMMIT")
    return "\n".join(lines) + "\n"


def _absent(rule: str, have: set[tuple[str, ...]]) -> bool:
    # Nothing to compare with on every ADD's blind batch: skip the unquoting (shlex costs
    # ~0.2 ms a rule).
    return not have or _normalise(rule) not in have


def render_known_teardown(request: MasqRequest, family: int) -> str | None:
    """The teardown batch that needs no read, for the addresses the caller knows: delete
    their jumps by spec, then flush and delete the chain. It commits only when the state is
    the one an ADD of these addresses made: a missing jump or chain, or a jump from another
    address still pointing at the chain (the kernel refuses to delete it), fails the whole
    batch and changes nothing. None when no address of this family is known."""
    # One jump per host address, however many prefixes the caller gathered it with.
    sources = {a.ip: a for a in request.addresses if a.version == family}
    if not sources:
        return None
    lines = ["-D" + jump_rule(request, a)[2:] for a in sources.values()]
    return _batch([*lines, f"-F {request.chain}", f"-X {request.chain}"])


def render_teardown(
    current: NatTable, chain: str, sources: Sequence[IPInterface] = ()
) -> str | None:
    """Remove the POSTROUTING jumps to `chain` for `sources` (all jumps when empty), then the
    chain once nothing jumps to it. None when there is nothing to remove."""
    hosts = {f"{a.ip}/{a.max_prefixlen}" for a in sources}
    return _batch(_teardown_lines(current, chain, hosts))


def _teardown_lines(current: NatTable, chain: str, hosts: set[str]) -> list[str]:
    jumps = current.jumps_to(chain)
    doomed = [r for r in jumps if not hosts or rule_source(r) in hosts]
    keep_chain = len(doomed) < len(jumps)
    lines = ["-D" + rule[2:] for rule in doomed]
    if chain in current.chains and not keep_chain:
        lines += [f"-F {chain}", f"-X {chain}"]
    return lines


def _batch(lines: list[str]) -> str | None:
    if not lines:
        return None
    return "\n".join(["*nat", *lines, "COMMIT"]) + "\n"


_COMMENT_RE = r'^name: ("(?:[^"\\]|\\.)*") id: ("(?:[^"\\]|\\.)*")$'


def parse_comment(comment: str) -> tuple[str, str] | None:
    """(network, containerID) from `name: "<net>" id: "<cid>"`, or None for other comments."""
    import re  # noqa: PLC0415 - reading rules back only; re caches the compiled pattern

    found = re.match(_COMMENT_RE, comment)
    if found is None:
        return None
    try:
        network, container_id = (cjson.loads(group) for group in found.groups())
    except ValueError:  # a Go escape JSON does not know; not a name CNI allows anyway
        return None
    return str(network), str(container_id)


def _comment(rule: str) -> str:
    words = shlex.split(rule)
    for i, word in enumerate(words[:-1]):
        if word == "--comment":
            return words[i + 1]
    return ""


def owned_chains(current: NatTable, network: str) -> dict[str, str]:
    """chain -> containerID for every masquerade chain of `network`: a chain counts only when
    a rule's comment names this network and the chain's name is that container's hash, so
    another network's chains (or someone else's CNI- chains) are never claimed."""
    owners: dict[str, str] = {}
    for rule in current.rules:
        owner = parse_comment(_comment(rule))
        if owner is None or owner[0] != network:
            continue
        chain = chain_name(network, owner[1])
        if chain in current.chains:
            owners[chain] = owner[1]
    return owners


def render_gc(
    current: NatTable, network: str, valid_ids: Collection[str]
) -> tuple[str | None, dict[str, str]]:
    """One iptables-restore batch removing every chain (and its POSTROUTING jumps) of
    `network` whose container is not in `valid_ids`; also returns chain -> containerID of
    what it removes."""
    stale = {c: cid for c, cid in owned_chains(current, network).items() if cid not in valid_ids}
    lines = [line for chain in sorted(stale) for line in _teardown_lines(current, chain, set())]
    return _batch(lines), stale


def _normalise(rule: str) -> tuple[str, ...]:
    """Compare rules word by word after shell-style unquoting (iptables-save quotes its own way,
    prints /32 on hosts and orders options its own way)."""
    words = shlex.split(rule)
    return tuple(sorted(words))


def _normalised_rules_of(current: NatTable, chain: str) -> set[tuple[str, ...]]:
    """Only the rules naming `chain` (its own, and the jumps to it) can match ours: the cost
    stays flat however many containers share the table."""
    return {_normalise(r) for r in current.rules if chain in r}


def rules_missing(current: NatTable, request: MasqRequest, family: int) -> list[str]:
    """The expected rules not installed, for CHECK."""
    have = _normalised_rules_of(current, request.chain)
    expected = chain_rules(request, family)
    expected += [jump_rule(request, a) for a in request.addresses if a.version == family]
    return [rule for rule in expected if _normalise(rule) not in have]
