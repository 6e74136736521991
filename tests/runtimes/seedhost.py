"""The README reader's machine in miniature: the seed network exactly as shipped, run with
exactly the README's commands, in namespaces of the test.

A SeedHost is one private mount namespace *and* network namespace (one `unshare --mount
--net` holder, see mountns.py). Inside it the fixed paths the README and the runtimes use —
/opt/cni/bin, /etc/cni/net.d, /var/lib/cni (host-local's store and libcni's cache) and
/run/netns (where `ip netns add red` puts red) — are the test's own directories, and the
"host" network is a fresh namespace: bridge v-net-0, 192.168.15.0/24, the NAT rules and
ip_forward of conf/mynet.conflist live there and vanish with it. So the README's commands run
word for word (`make install CNI_BIN_DIR=/opt/cni/bin`, `ip netns add red`, `cnitool add
mynet /var/run/netns/red`) without touching the machine's files, links, rules or namespaces.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.runtimes.mountns import MountNamespace
from tests.runtimes.support import REPO, run

README = REPO / "README.md"
ROOT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def reader_path() -> str:
    """The reader's PATH: the test runner's (the `python3` that made the venv) and root's."""
    return ":".join(p for p in (os.environ.get("PATH", ""), ROOT_PATH) if p)


# Fixed paths of the README and of libcni, each a test directory inside the namespace; also
# where `make install` puts the agent's systemd units, and /run/systemd, empty inside, so that
# `make install` finds no running systemd and enables nothing on the machine.
SEED_PATHS = (
    "/opt/cni/bin",
    "/etc/cni/net.d",
    "/var/lib/cni",
    "/run/netns",
    "/etc/systemd/system",
    "/run/systemd",
)

# conf/mynet.conflist, as the README and the tutorials describe it.
NETWORK = "mynet"
BRIDGE = "v-net-0"
SUBNET = "192.168.15.0/24"
GATEWAY = "192.168.15.5"


def readme_commands(section: str = "Using it") -> list[str]:
    """The commands of the first ```sh block of README section `section` (## or ###), one per line,
    comments and blank lines dropped: what a reader types."""
    text = README.read_text()
    heading = re.search(rf"^(#{{2,}}) {re.escape(section)}\s*$", text, re.MULTILINE)
    assert heading, f"README.md has no '## {section}' section"
    body = text[heading.end() :]
    # The section ends at the next heading of its level or above.
    following = re.search(rf"^#{{1,{len(heading[1])}}} ", body, re.MULTILINE)
    body = body[: following.start()] if following else body
    block = re.search(r"^```sh\n(.*?)^```", body, re.MULTILINE | re.DOTALL)
    assert block, f"README.md section '{section}' has no ```sh block"
    commands = []
    for raw in block.group(1).splitlines():
        line = re.sub(r"\s+#.*$", "", raw).strip()
        if line and not line.startswith("#"):
            commands.append(line)
    return commands


def cnitool_container_id(netns_path: str) -> str:
    """The container ID cnitool gives a netns path."""
    return "cnitool-" + hashlib.sha512(netns_path.encode()).hexdigest()[:20]


@dataclass
class SeedHost:
    ns: MountNamespace
    scratch: Path

    @classmethod
    def make(cls, scratch: Path, *, hide_reference: bool = False) -> SeedHost:
        """hide_reference: /usr/lib/cni empty inside, for runtimes that fall back to it
        (ctr, podman), so only the plugins the README installed can run."""
        ns = MountNamespace(scratch / "mnt", network=True)
        host = cls(ns, scratch)
        try:
            for target in SEED_PATHS:
                directory = host.dir(target)
                directory.mkdir(parents=True)
                ns.shadow(target, directory)
            if hide_reference:
                ns.hide("/usr/lib/cni")
            host.sh("ip link set lo up")
        except BaseException:
            ns.close()
            raise
        return host

    def dir(self, target: str) -> Path:
        """The test directory that is `target` inside the namespace."""
        return self.scratch / target.strip("/").replace("/", "-")

    def sh(
        self,
        line: str,
        *,
        exports: Sequence[str] = (),
        check: bool = True,
        timeout: float = 300,
    ) -> subprocess.CompletedProcess[str]:
        """One command line as a root shell in a clone of this repository runs it; `exports`
        are the README's earlier `export ...` lines."""
        script = "\n".join(["set -e", f"cd {REPO}", *exports, line])
        env = {"PATH": reader_path(), "HOME": os.environ.get("HOME", "/root"), "LC_ALL": "C.UTF-8"}
        return run(self.ns.argv("bash", "-c", script), env=env, check=check, timeout=timeout)

    def close(self) -> None:
        """Ends the namespaces: red, blue, the bridge, veths and NAT rules go with them."""
        self.ns.close()

    # --- what the reader would look at ---------------------------------------------------

    def ip_json(self, *args: str) -> list[dict[str, Any]]:
        out = self.sh("ip -j " + " ".join(args)).stdout
        return json.loads(out) if out.strip() else []

    def addresses(self, ifname: str, netns: str = "") -> list[str]:
        where = f"-n {netns} " if netns else ""
        return [
            f"{info['local']}/{info['prefixlen']}"
            for entry in self.ip_json(f"{where}-4 addr show dev {ifname}")
            for info in entry.get("addr_info", [])
        ]

    def default_routes(self, netns: str) -> list[dict[str, Any]]:
        return [r for r in self.ip_json(f"-n {netns} -4 route show") if r.get("dst") == "default"]

    def links_in(self, netns: str) -> list[str]:
        return sorted(entry["ifname"] for entry in self.ip_json(f"-n {netns} link show"))

    def bridge_ports(self, bridge: str = BRIDGE) -> dict[str, str]:
        """Host veth on the bridge -> its owner alias."""
        if not any(e["ifname"] == bridge for e in self.ip_json("link show")):
            return {}
        return {
            entry["ifname"]: str(entry.get("ifalias", ""))
            for entry in self.ip_json(f"link show master {bridge}")
        }

    def nat_rules(self, container_id: str = "", network: str = NETWORK) -> list[str]:
        marker = f'name: \\"{network}\\" id: \\"{container_id}'
        rules = self.sh("iptables -t nat -S").stdout.splitlines()
        return [line for line in rules if marker in line]

    def reservations(self, network: str = NETWORK) -> dict[str, bytes]:
        """host-local's store in /var/lib/cni/networks/<network>: address -> file content."""
        directory = self.dir("/var/lib/cni") / "networks" / network
        if not directory.is_dir():
            return {}
        return {
            p.name: p.read_bytes()
            for p in directory.iterdir()
            if p.name != "lock" and not p.name.startswith("last_reserved_ip.")
        }

    def cache_files(self, network: str = NETWORK) -> list[str]:
        """libcni's result cache in /var/lib/cni/results."""
        return sorted(p.name for p in (self.dir("/var/lib/cni") / "results").glob(f"{network}-*"))

    def leftovers(self, network: str = NETWORK) -> dict[str, object]:
        """Everything an attachment of `network` could leave behind; {} when clean."""
        found: dict[str, object] = {
            "veths on the bridge": self.bridge_ports(),
            "NAT rules": self.nat_rules(network=network),
            "reservations": self.reservations(network),
            "cache files": self.cache_files(network),
        }
        return {what: items for what, items in found.items() if items}
