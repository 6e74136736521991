"""Throwaway network namespaces and kernel inspection for the root suites.

Every test's "host side" is a namespace of its own: the plugin runs inside it (ip netns
exec), so the bridge, the host veths, the NAT rules and ip_forward live there and vanish
with it. The real host is never changed. All inspection goes through iproute2 and iptables
from outside, the way an operator would look.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
from dataclasses import dataclass, field
from typing import Any

# Every namespace the tests make starts with a prefix, so that a leftover is recognisable and
# suites that run at the same time (cbpt: most, cbpr: reliability) can be told apart.
PREFIX = "cbpt"


def sh(*args: str, check: bool = True, input_text: str | None = None) -> str:
    proc = subprocess.run(args, capture_output=True, text=True, check=False, input=input_text)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc.stdout


def unique(tag: str, prefix: str = PREFIX) -> str:
    return f"{prefix}{os.getpid() % 1000:03d}{secrets.token_hex(2)}-{tag}"


@dataclass
class Namespace:
    name: str

    @property
    def path(self) -> str:
        return f"/var/run/netns/{self.name}"

    def delete(self) -> None:
        """Delete it now, as a runtime does before a late DEL (the factory's cleanup copes)."""
        sh("ip", "netns", "del", self.name)

    def add_plain_link(self, name: str) -> str:
        """A link that is not a bridge nor a veth: dummy, or ifb on kernels without the dummy
        driver (this machine's). Returns the kind made."""
        for kind in ("dummy", "ifb"):
            sh("ip", "-n", self.name, "link", "add", name, "type", kind, check=False)
            if self.link(name) is not None:
                return kind
        raise AssertionError(f"cannot create a dummy or ifb link {name} in {self.name}")

    def argv(self, *command: str) -> list[str]:
        """The command line that runs `command` in this namespace (ip netns exec execs it)."""
        return ["ip", "netns", "exec", self.name, *command]

    def exec(self, *args: str, check: bool = True) -> str:
        return sh(*self.argv(*args), check=check)

    def ip_json(self, *args: str) -> list[dict[str, Any]]:
        out = sh("ip", "-n", self.name, "-j", *args)
        return json.loads(out) if out.strip() else []

    def link(self, name: str) -> dict[str, Any] | None:
        links = [entry for entry in self.ip_json("-d", "link", "show") if entry["ifname"] == name]
        return links[0] if links else None

    def links(self, kind: str | None = None) -> list[dict[str, Any]]:
        entries = self.ip_json("-d", "link", "show")
        if kind is None:
            return entries
        return [e for e in entries if e.get("linkinfo", {}).get("info_kind") == kind]

    def addresses(self, ifname: str, family: str = "inet") -> list[str]:
        out = []
        for entry in self.ip_json("addr", "show", "dev", ifname):
            for info in entry.get("addr_info", []):
                if info["family"] == family and info.get("scope") != "link":
                    out.append(f"{info['local']}/{info['prefixlen']}")
        return out

    def routes(self, family: str = "-4") -> list[dict[str, Any]]:
        return self.ip_json(family, "route", "show")

    def nat_rules(self, tool: str = "iptables") -> list[str]:
        out = self.exec(tool, "-t", "nat", "-S")
        return [line for line in out.splitlines() if "CNI-" in line]

    def link_names(self) -> list[str]:
        return sorted(entry["ifname"] for entry in self.ip_json("link", "show"))

    def sysctl(self, key: str) -> str:
        return self.exec("cat", f"/proc/sys/{key}").strip()

    def ping(self, address: str, count: int = 1) -> bool:
        proc = subprocess.run(
            ["ip", "netns", "exec", self.name, "ping", "-c", str(count), "-W", "2", address],
            capture_output=True,
            check=False,
        )
        return proc.returncode == 0


@dataclass
class NamespaceFactory:
    """Throwaway namespaces, deleted (only these) by cleanup()."""

    prefix: str = PREFIX
    made: list[Namespace] = field(default_factory=list)

    def new(self, tag: str) -> Namespace:
        ns = Namespace(unique(tag, self.prefix))
        sh("ip", "netns", "add", ns.name)
        self.made.append(ns)
        return ns

    def host(self, tag: str = "host") -> Namespace:
        """A namespace that stands in for the machine: the plugin runs inside it. Its loopback
        is up, as a machine's is: traffic to its own addresses (a gateway, a mapped host port)
        goes through lo."""
        ns = self.new(tag)
        ns.exec("ip", "link", "set", "lo", "up")
        return ns

    def cleanup(self) -> None:
        for ns in reversed(self.made):
            sh("ip", "netns", "del", ns.name, check=False)
        self.made.clear()
