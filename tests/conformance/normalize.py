"""Make two runs comparable: what differs run to run by chance becomes a stable label.

- namespace names and paths, data dirs: the lane registers them ("<netns:red>", "<dataDir>");
- a host veth is named after the container interface it peers with ("<veth:red/eth0>");
- a MAC is named after its owner ("<mac:host/cbr0>", "<mac:red/eth0>", "<mac:<veth:red/eth0>>"),
  so a result's MAC still has to be the kernel's;
- ifindexes and link-netnsids are dropped.
Literal values a scenario asks for (a MAC from CNI_ARGS) can be kept as they are.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

VETH = re.compile(r"\bveth[0-9a-f]{8}\b")
MAC = re.compile(r"(?<![0-9a-fA-F:])(?:[0-9a-fA-F]{1,2}:){5}[0-9a-fA-F]{1,2}(?![0-9a-fA-F:])")
ZERO_MAC = "00:00:00:00:00:00"


def canonical_mac(text: str) -> str:
    """ "2:fd:3b:6c:f7:a5" (how iproute2 prints a bridge id) -> "02:fd:3b:6c:f7:a5"."""
    return ":".join(part.zfill(2) for part in text.lower().split(":"))


@dataclass
class Labels:
    """Label maps for one lane, filled while its trace is built, applied at the end."""

    literals: dict[str, str] = field(default_factory=dict)  # exact strings (paths, names)
    veths: dict[str, str] = field(default_factory=dict)
    macs: dict[str, str] = field(default_factory=dict)
    keep: set[str] = field(default_factory=set)  # MACs to leave alone

    def literal(self, value: str, label: str) -> None:
        self.literals[value] = label

    def learn(self, host: dict[str, Any], containers: dict[str, Any]) -> None:
        """Name host veths after their container peer and every MAC after its owner, from one
        capture (host and containers read at the same moment)."""
        by_index = {link["_ifindex"]: link for link in host.get("links", [])}
        for tag, state in containers.items():
            if not isinstance(state, dict):
                continue
            for link in state["links"]:
                peer = by_index.get(link["_peer"]) if link["kind"] == "veth" else None
                if peer is not None and VETH.fullmatch(peer["name"]):
                    self.veths.setdefault(peer["name"], f"<veth:{tag}/{link['name']}>")
                self._mac(link["mac"], f"<mac:{tag}/{link['name']}>")
        for link in host.get("links", []):
            name = link["name"]
            if VETH.fullmatch(name):
                self.veths.setdefault(name, f"<veth:?{len(self.veths)}>")
                name = self.veths[name]
            self._mac(link["mac"], f"<mac:host/{name}>")

    def _mac(self, mac: str, label: str) -> None:
        if mac and mac != ZERO_MAC and canonical_mac(mac) not in self.keep:
            self.macs.setdefault(canonical_mac(mac), label)

    def text(self, value: str) -> str:
        for literal in sorted(self.literals, key=len, reverse=True):
            value = value.replace(literal, self.literals[literal])
        value = VETH.sub(lambda m: self.veths.get(m.group(), "<veth:?>"), value)
        return MAC.sub(self._mac_label, value)

    def _mac_label(self, match: re.Match[str]) -> str:
        mac = canonical_mac(match.group())
        if mac == ZERO_MAC or mac in self.keep:
            return mac
        return self.macs.get(mac, "<mac:?>")

    def apply(self, value: Any) -> Any:
        """The same structure with every string (dict keys too) relabelled and the private
        "_" keys dropped. Lists of links and sysctl maps are re-sorted by their new names, so
        the random names they had do not decide the order."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            out = {self.text(k): self.apply(v) for k, v in value.items() if not k.startswith("_")}
            if "sysctl" in out:
                out["sysctl"] = dict(sorted(out["sysctl"].items()))
            if "links" in out:
                out["links"] = sorted(out["links"], key=lambda link: str(link["name"]))
            return out
        if isinstance(value, list | tuple):
            return [self.apply(v) for v in value]
        return value


def keep_macs(values: Iterable[str]) -> set[str]:
    return {canonical_mac(v) for v in values}
