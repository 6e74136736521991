"""The host side of the runtime tests: the machine's real root network namespace.

Runtimes put the bridge, the host veths and the NAT rules on the host, so every test network
gets a bridge name and a 10.x /24 nobody uses on this machine, and a network name that only it
uses. Cleanup finds what is ours by those names alone: the veths enslaved to our bridge, the
bridge, and the NAT rules whose comment names our network. Nothing else is touched.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import random
import secrets
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.netns import sh

IP_FORWARD = Path("/proc/sys/net/ipv4/ip_forward")
CGROUP_ROOT = Path("/sys/fs/cgroup")

_chosen: set[ipaddress.IPv4Network] = set()  # subnets handed out in this session


def unique(tag: str) -> str:
    """A short name no other test, session or runtime uses: `cbpt<6 hex><tag>`."""
    return f"cbpt{secrets.token_hex(3)}{tag}"


def _ip_json(*args: str) -> list[dict[str, Any]]:
    out = sh("ip", "-j", *args)
    return json.loads(out) if out.strip() else []


def used_ipv4_networks() -> list[ipaddress.IPv4Network]:
    """Every IPv4 prefix the host routes or has an address in (all tables)."""
    used = []
    for route in _ip_json("-4", "route", "show", "table", "all"):
        dst = route.get("dst", "")
        if dst and dst != "default":
            used.append(ipaddress.IPv4Network(dst if "/" in dst else f"{dst}/32", strict=False))
    for link in _ip_json("-4", "addr", "show"):
        for info in link.get("addr_info", []):
            used.append(ipaddress.IPv4Network(f"{info['local']}/{info['prefixlen']}", False))
    return used


def free_subnet() -> ipaddress.IPv4Network:
    """A random 10.x.y.0/24 that overlaps nothing on the host nor in this session."""
    used = used_ipv4_networks()
    for _ in range(200):
        candidate = ipaddress.IPv4Network(
            f"10.{random.randrange(100, 250)}.{random.randrange(1, 255)}.0/24"
        )
        if candidate not in _chosen and not any(candidate.overlaps(u) for u in used):
            _chosen.add(candidate)
            return candidate
    raise AssertionError("no free 10.x.y.0/24 on this host")


def link_names(**filters: str) -> list[str]:
    """Root-namespace links, e.g. link_names(master="br0") for the ports of a bridge."""
    links = _ip_json("link", "show")
    return sorted(
        entry["ifname"]
        for entry in links
        if all(entry.get(key) == value for key, value in filters.items())
    )


def link_alias(name: str) -> str:
    entries = _ip_json("link", "show", "dev", name)
    return str(entries[0].get("ifalias", "")) if entries else ""


@dataclass(frozen=True)
class HostNetwork:
    """One CNI network of a test: its unique name, bridge, subnet and host-local data dir."""

    name: str
    bridge: str
    subnet: ipaddress.IPv4Network
    data_dir: Path

    @classmethod
    def make(cls, tag: str, data_dir: Path) -> HostNetwork:
        return cls(f"{unique('')}-{tag}", unique("br"), free_subnet(), data_dir)

    @property
    def gateway(self) -> str:
        return str(self.subnet.network_address + 1)

    def address(self, host: int) -> str:
        return str(self.subnet.network_address + host)

    def plugin(self, plugin_type: str = "cni-bridge-py") -> dict[str, Any]:
        """The bridge plugin entry: gateway on the bridge, default route, masquerade, hairpin
        (podman's own bridge networks turn it on), host-local ranges form (podman reads the
        subnet from it: `--ip` needs that)."""
        return {
            "type": plugin_type,
            "bridge": self.bridge,
            "isGateway": True,
            "ipMasq": True,
            "hairpinMode": True,
            "capabilities": {"ips": True, "mac": True},
            "ipam": {
                "type": "host-local",
                "ranges": [[{"subnet": str(self.subnet), "gateway": self.gateway}]],
                "routes": [{"dst": "0.0.0.0/0"}],
                "dataDir": str(self.data_dir),
            },
        }

    def conflist(self, plugin_type: str = "cni-bridge-py") -> dict[str, Any]:
        return {"cniVersion": "1.0.0", "name": self.name, "plugins": [self.plugin(plugin_type)]}

    def write_conflist(self, directory: Path, plugin_type: str = "cni-bridge-py") -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"10-{self.name}.conflist"
        path.write_text(json.dumps(self.conflist(plugin_type), indent=2) + "\n")
        return path

    # --- what exists on the host ---------------------------------------------------------

    def veths(self) -> list[str]:
        return link_names(master=self.bridge)

    def bridge_exists(self) -> bool:
        return bool(link_names(ifname=self.bridge))

    def nat_rules(self) -> list[str]:
        marker = f'name: \\"{self.name}\\"'
        return [line for line in sh("iptables", "-t", "nat", "-S").splitlines() if marker in line]

    def reservations(self) -> list[str]:
        directory = self.data_dir / self.name
        if not directory.is_dir():
            return []
        return sorted(
            p.name
            for p in directory.iterdir()
            if p.name != "lock" and not p.name.startswith("last_reserved_ip.")
        )

    def leftovers(self, cache_dir: Path | None = None) -> dict[str, list[str]]:
        """Everything an attachment of this network could leave behind; {} when clean."""
        found = {
            "veths on the bridge": self.veths(),
            "reservations": self.reservations(),
            "NAT rules": self.nat_rules(),
        }
        if cache_dir is not None:
            found["cache files"] = sorted(
                p.name for p in (cache_dir / "results").glob(f"{self.name}-*")
            )
        return {what: items for what, items in found.items() if items}

    def cleanup(self) -> None:
        """Remove what this network may have left on the host (a finalizer: never raises)."""
        for veth in self.veths():
            sh("ip", "link", "del", veth, check=False)
        if self.bridge_exists():
            sh("ip", "link", "del", self.bridge, check=False)
        self._remove_nat_rules()

    def _remove_nat_rules(self) -> None:
        chains = set()
        for line in self.nat_rules():
            args = shlex.split(line)
            if "-j" in args and args[args.index("-j") + 1].startswith("CNI-"):
                chains.add(args[args.index("-j") + 1])
            if args[1].startswith("CNI-"):
                chains.add(args[1])
            if args[:2] == ["-A", "POSTROUTING"]:
                sh("iptables", "-w", "-t", "nat", "-D", *args[1:], check=False)
        for chain in sorted(chains):
            sh("iptables", "-w", "-t", "nat", "-F", chain, check=False)
            sh("iptables", "-w", "-t", "nat", "-X", chain, check=False)


def read_ip_forward() -> str:
    return IP_FORWARD.read_text().strip()


def restore_ip_forward(value: str) -> None:
    if read_ip_forward() != value:
        IP_FORWARD.write_text(value + "\n")


def remove_cgroups(name: str) -> list[str]:
    """rmdir, deepest first, every cgroup directory called `name` at the top of a hierarchy
    (v1: /sys/fs/cgroup/<controller>/<name>, v2: /sys/fs/cgroup/<name>) — the parent cgroup a
    runtime made for our containers. Returns what could not be removed."""
    failed = []
    tops = [CGROUP_ROOT / name]
    with contextlib.suppress(OSError):
        tops += [p / name for p in CGROUP_ROOT.iterdir() if p.is_dir() and not p.is_symlink()]
    for top in tops:
        if not top.is_dir():
            continue
        for directory, _, _ in os.walk(top, topdown=False):
            try:
                os.rmdir(directory)
            except OSError as e:
                failed.append(f"{directory}: {e.strerror}")
    return failed


NetworkFactory = Callable[[str], HostNetwork]  # the `networks` fixture: tag -> network
