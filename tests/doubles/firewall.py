"""Fake firewall ports: a masquerade backend (MasqBackend) and a spoof checker (SpoofChecker)
that keep their rules in memory, log every change in the shared Calls and fail when armed.

The masquerade fake keeps the two real backends' ownership rules, which DEL and GC depend on:
"iptables" has one chain per (network, container) with a jump per address and no ifname, so
a teardown removes the jumps of the addresses it names (all of them when it names none);
"nftables" names every rule by (network, container, ifname), so a teardown removes the whole
attachment whatever addresses it names.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from cni_bridge_py.errors import IOFailure
from cni_bridge_py.firewall.layout import MasqRequest, chain_name, jump_rule
from cni_bridge_py.firewall.spoof_layout import SpoofCheck
from cni_bridge_py.netaddr import IPInterface
from tests.doubles.calls import Calls


@dataclass(frozen=True)
class MasqRule:
    network: str
    container_id: str
    # "" under iptables, whose rules do not name the interface.
    ifname: str
    address: IPInterface


class FakeMasq:
    def __init__(self, name: str, calls: Calls) -> None:
        assert name in ("iptables", "nftables")
        self.name = name
        self.calls = calls
        self.rules: set[MasqRule] = set()

    def setup(self, request: MasqRequest) -> None:
        self._call("setup", request.container_id, _addresses(request))
        ifname = request.ifname if self.name == "nftables" else ""
        for address in request.addresses:
            self.rules.add(MasqRule(request.network, request.container_id, ifname, address))

    def teardown(self, request: MasqRequest) -> None:
        self._call("teardown", request.container_id, _addresses(request))
        self.rules -= {r for r in self.rules if self._doomed(r, request)}

    def missing(self, request: MasqRequest) -> list[str]:
        self.calls.hit(self.name, "missing", request.container_id, fail=self._failure, logged=False)
        ifname = request.ifname if self.name == "nftables" else ""
        have = {(r.network, r.container_id, r.ifname, r.address.ip) for r in self.rules}
        return [
            self._describe(request, a)
            for a in request.addresses
            if (request.network, request.container_id, ifname, a.ip) not in have
        ]

    def gc(self, network: str, valid: Collection[tuple[str, str]]) -> list[str]:
        self._call("gc", network, "")
        valid_ids = {container_id for container_id, _ in valid}
        if self.name == "iptables":
            # A chain has no ifname: any valid pair of its container keeps it.
            stale = {
                r for r in self.rules if r.network == network and r.container_id not in valid_ids
            }
            lines = {
                f"iptables {chain_name(network, r.container_id)} id: {r.container_id}"
                for r in stale
            }
        else:
            stale = {
                r
                for r in self.rules
                if r.network == network and (r.container_id, r.ifname) not in valid
            }
            lines = {f'"{network}" {r.container_id} {r.ifname}' for r in stale}
        self.rules -= stale
        return sorted(lines)

    def of(self, container_id: str) -> list[str]:
        """The addresses masqueraded for a container, for assertions."""
        return sorted(str(r.address) for r in self.rules if r.container_id == container_id)

    def _describe(self, request: MasqRequest, address: IPInterface) -> str:
        if self.name == "iptables":
            return jump_rule(request, address)
        return f"ip saddr {address.ip} masquerade ({request.container_id} {request.ifname})"

    def _doomed(self, rule: MasqRule, request: MasqRequest) -> bool:
        if (rule.network, rule.container_id) != (request.network, request.container_id):
            return False
        if self.name == "nftables":
            return rule.ifname == request.ifname
        return not request.addresses or rule.address.ip in {a.ip for a in request.addresses}

    def _call(self, op: str, target: str, details: str) -> None:
        self.calls.hit(self.name, op, target, details, fail=self._failure)

    def _failure(self, code: int) -> Exception:
        return IOFailure(f"{self.name}-restore failed (exit {code})", "injected by the test")


def _addresses(request: MasqRequest) -> str:
    """The addresses a call names; "*" when it names none (a teardown of everything)."""
    return ",".join(str(a) for a in request.addresses) or "*"


class FakeSpoofChecker:
    def __init__(self, calls: Calls) -> None:
        self.calls = calls
        self.rules: dict[tuple[str, str], SpoofCheck] = {}

    def setup(self, spec: SpoofCheck) -> None:
        self._call("setup", spec, f"{spec.host_veth} {spec.mac}")
        self.rules[(spec.container_id, spec.ifname)] = spec

    def teardown(self, spec: SpoofCheck) -> None:
        self._call("teardown", spec, "")
        self.rules.pop((spec.container_id, spec.ifname), None)

    def missing(self, spec: SpoofCheck) -> list[str]:
        target = spec.ref_id
        self.calls.hit("spoof", "missing", target, fail=self._failure, logged=False)
        have = self.rules.get((spec.container_id, spec.ifname))
        out = []
        if have is None or have.host_veth != spec.host_veth:
            out.append(f'iifname "{spec.host_veth}" jump {spec.iface_chain}')
        if have is None or have.mac != spec.mac:
            out.append(f"ether saddr {spec.mac} return")
        return out

    def _call(self, op: str, spec: SpoofCheck, details: str) -> None:
        self.calls.hit("spoof", op, spec.ref_id, details, fail=self._failure)

    def _failure(self, code: int) -> Exception:
        return IOFailure(f"nft failed (exit {code})", "injected by the test")
