"""Masquerade rules through python-iptables (libiptc), for hosts whose iptables is legacy.

libiptc edits the legacy tables only; a host on iptables-nft uses iptables_restore instead.
libiptc works on a snapshot of the whole table (read in process) and replaces it in one
commit, which the kernel does not check against concurrent writers: every change holds the
xtables lock from snapshot to commit, as the iptables binaries do. Within that, ADD and DEL
read no rules in the usual case: a chain that ADD creates has no rule and nothing jumps to it,
and DEL deletes the jumps of the addresses it knows by spec, then the chain, which libiptc
refuses while another jump remains; anything unexpected is retried from the rules as read.
"""

from __future__ import annotations

import contextlib
import ipaddress
from collections.abc import Collection
from typing import Any

import iptc

from cni_bridge_py.errors import IOFailure
from cni_bridge_py.filelock import exclusive
from cni_bridge_py.firewall.layout import MULTICAST, MasqRequest, chain_name, parse_comment
from cni_bridge_py.netaddr import IPInterface

# The lock every legacy iptables binary takes (iptables -w): we serialise with them.
XTABLES_LOCK = "/run/xtables.lock"


def _api(family: int) -> tuple[Any, Any]:
    return (iptc.Table, iptc.Rule) if family == 4 else (iptc.Table6, iptc.Rule6)


class LegacyIptables:
    name = "iptables-legacy"

    def __init__(self, lock_path: str = XTABLES_LOCK) -> None:
        self.lock_path = lock_path

    def setup(self, request: MasqRequest) -> None:
        with self._lock():
            for family in sorted({a.version for a in request.addresses}):
                self._setup_family(request, family)

    def teardown(self, request: MasqRequest) -> None:
        chain, sources = request.chain, request.addresses
        hosts = {f"{a.ip}/{a.max_prefixlen}" for a in sources}
        with self._lock():
            for family in (4, 6):
                if any(a.version == family for a in sources) and self._remove_known(
                    request, family
                ):
                    continue
                self._remove_chains(family, {chain: hosts}, f"masquerade chain {chain}")

    def gc(self, network: str, valid: Collection[tuple[str, str]]) -> list[str]:
        """One commit per family removing the chains of `network` whose container has no
        valid attachment; chains are claimed as in layout.owned_chains."""
        valid_ids = {container_id for container_id, _ in valid}
        removed: list[str] = []
        with self._lock():
            for family in (4, 6):
                table_cls, _ = _api(family)
                table = table_cls(table_cls.NAT)
                table.refresh()
                stale = {
                    chain: cid
                    for chain, cid in _owned_chains(table, network).items()
                    if cid not in valid_ids
                }
                if stale:
                    what = f"stale masquerade chains of {network}"
                    self._remove_chains(family, {chain: set() for chain in stale}, what)
                tool = "iptables" if family == 4 else "ip6tables"
                removed += [f"{tool}-legacy {chain} id: {cid}" for chain, cid in stale.items()]
        return removed

    def missing(self, request: MasqRequest) -> list[str]:
        out: list[str] = []
        for family in sorted({a.version for a in request.addresses}):
            table_cls, _ = _api(family)
            table = table_cls(table_cls.NAT)
            table.refresh()
            if not table.is_chain(request.chain):
                out.append(f"chain {request.chain}")
                continue
            have = {_describe(r) for r in iptc.Chain(table, request.chain).rules}
            for rule in self._chain_rules(request, family):
                if _describe(rule) not in have:
                    out.append(f"{request.chain}: {_describe(rule)}")
            jumps = {_describe(r) for r in iptc.Chain(table, "POSTROUTING").rules}
            for addr in request.addresses:
                if addr.version == family:
                    rule = self._jump(request, addr, family)
                    if _describe(rule) not in jumps:
                        out.append(f"POSTROUTING: {_describe(rule)}")
        return out

    def _setup_family(self, request: MasqRequest, family: int) -> None:
        table_cls, _ = _api(family)
        try:
            table = table_cls(table_cls.NAT)
            table.autocommit = False
            table.refresh()
            fresh = not table.is_chain(request.chain)
            if fresh:
                table.create_chain(request.chain)
            chain = iptc.Chain(table, request.chain)
            # Append-unique like the reference; ACCEPTs go in front of the MASQUERADE. A chain
            # just made has no rule and no jump to it: nothing to read (the rules of
            # POSTROUTING, one per container, are what made an ADD grow with their number).
            present = set() if fresh else {_describe(r) for r in chain.rules}
            *accepts, masquerade = self._chain_rules(request, family)
            for rule in accepts:
                if _describe(rule) not in present:
                    chain.insert_rule(rule)
            if _describe(masquerade) not in present:
                chain.append_rule(masquerade)
            postrouting = iptc.Chain(table, "POSTROUTING")
            present = set() if fresh else {_describe(r) for r in postrouting.rules}
            for addr in request.addresses:
                if addr.version == family:
                    jump = self._jump(request, addr, family)
                    if _describe(jump) not in present:
                        postrouting.append_rule(jump)
            table.commit()
        except iptc.IPTCError as exc:
            _discard(table)
            raise IOFailure(
                f"installing masquerade chain {request.chain} (legacy iptables)", str(exc)
            ) from exc
        finally:
            table.autocommit = True

    def _remove_known(self, request: MasqRequest, family: int) -> bool:
        """The DEL of an attachment as its ADD made it, reading no rule: the jumps of the
        addresses known for this family (deleted by spec), then the chain. True when done,
        or when the chain does not exist (nothing can jump to it); False when the state is
        another (a jump missing, or another still pointing at the chain): nothing was
        committed then."""
        table_cls, _ = _api(family)
        try:
            table = table_cls(table_cls.NAT)
        except iptc.IPTCError:
            return False  # the careful path reports it
        try:
            table.autocommit = False
            table.refresh()
            if not table.is_chain(request.chain):
                return True
            postrouting = iptc.Chain(table, "POSTROUTING")
            sources = {a.ip: a for a in request.addresses if a.version == family}
            for addr in sources.values():
                postrouting.delete_rule(self._jump(request, addr, family))
            iptc.Chain(table, request.chain).flush()
            table.delete_chain(request.chain)
            table.commit()
            return True
        except iptc.IPTCError:
            _discard(table)
            return False
        finally:
            table.autocommit = True

    def _remove_chains(self, family: int, chains: dict[str, set[str]], what: str) -> None:
        """For each chain: drop its POSTROUTING jumps from the given hosts (all when empty),
        and the chain itself once nothing jumps to it. One commit."""
        table_cls, _ = _api(family)
        try:
            table = table_cls(table_cls.NAT)
        except iptc.IPTCError as exc:
            raise IOFailure(f"removing {what} (legacy iptables)", str(exc)) from exc
        try:
            table.autocommit = False
            table.refresh()
            # Nothing jumps to a chain that does not exist: no rule needs reading for it.
            chains = {c: hosts for c, hosts in chains.items() if table.is_chain(c)}
            if not chains:
                return
            postrouting = iptc.Chain(table, "POSTROUTING")
            for chain, hosts in chains.items():
                jumps = [
                    r for r in postrouting.rules if r.target is not None and r.target.name == chain
                ]
                doomed = [r for r in jumps if not hosts or _host(r.src) in hosts]
                for rule in doomed:
                    postrouting.delete_rule(rule)
                if table.is_chain(chain) and len(doomed) == len(jumps):
                    iptc.Chain(table, chain).flush()
                    table.delete_chain(chain)
            table.commit()
        except iptc.IPTCError as exc:
            _discard(table)
            raise IOFailure(f"removing {what} (legacy iptables)", str(exc)) from exc
        finally:
            table.autocommit = True

    @staticmethod
    def _rule(family: int, comment: str, target: str) -> Any:
        _, rule_cls = _api(family)
        rule = rule_cls()
        match = rule.create_match("comment")
        match.comment = comment
        rule.create_target(target)
        return rule

    def _chain_rules(self, request: MasqRequest, family: int) -> list[Any]:
        rules = []
        for addr in request.addresses:
            if addr.version == family:
                accept = self._rule(family, request.comment, "ACCEPT")
                accept.dst = str(addr.network)
                rules.append(accept)
        masq = self._rule(family, request.comment, "MASQUERADE")
        masq.dst = "!" + MULTICAST[family]
        rules.append(masq)
        return rules

    def _jump(self, request: MasqRequest, addr: IPInterface, family: int) -> Any:
        jump = self._rule(family, request.comment, request.chain)
        jump.src = f"{addr.ip}/{addr.max_prefixlen}"
        return jump

    def _lock(self) -> contextlib.AbstractContextManager[None]:
        return exclusive(self.lock_path, dir_mode=0o755)


def _discard(table: Any) -> None:
    """Drop the snapshot with whatever a failed change left in it. The table object is shared
    by the process (python-iptables keeps one per table), and its next refresh with
    autocommit on would commit the half-made change."""
    table.autocommit = False
    with contextlib.suppress(iptc.IPTCError):
        table.close()


def _owned_chains(table: Any, network: str) -> dict[str, str]:
    """chain -> containerID of `network`'s masquerade chains, by the rule comments."""
    owners: dict[str, str] = {}
    for chain in table.chains:
        for rule in chain.rules:
            for match in rule.matches:
                owner = parse_comment(_comment(match)) if match.name == "comment" else None
                if owner is not None and owner[0] == network:
                    name = chain_name(network, owner[1])
                    if table.is_chain(name):
                        owners[name] = owner[1]
    return owners


def _comment(match: Any) -> str:
    """A comment match's text. `match.comment` is None on a rule read back from the kernel
    until this process has itself built a comment match; the parameters are always there."""
    values = match.get_all_parameters().get("comment") or [match.comment or ""]
    return str(values[0])


def _host(src: str) -> str:
    """libiptc spells a host as 10.0.0.2/255.255.255.255; we compare 10.0.0.2/32."""
    addr, _, mask = src.partition("/")
    if "." not in mask and ":" not in mask:
        return src
    return str(ipaddress.ip_interface(f"{addr}/{mask}"))


def _describe(rule: Any) -> str:
    """A comparable text of a rule: addresses, comment and target."""
    comments = [_comment(m) for m in rule.matches if m.name == "comment"]
    target = rule.target.name if rule.target is not None else ""
    return f"src={rule.src} dst={rule.dst} comment={comments} target={target}"
