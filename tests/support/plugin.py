"""Running the installed plugin the way a runtime does: a subprocess with CNI_* variables, a
minimal environment and the config on stdin, inside the test's host namespace."""

from __future__ import annotations

import hashlib
import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.netns import Namespace

MINIMAL_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
LAUNCHER = "cni-bridge-py"  # what `make install` names the bridge plugin
# The Debian package containernetworking-plugins: the reference the suites compare with, and
# the main and IPAM plugins ours is chained with or delegates to.
REFERENCE_DIR = Path("/usr/lib/cni")
# The plugin's test hook: `<step>` fails that step of ADD or DEL, `kill:<step>` SIGKILLs there.
FAULT_ENV = "CNI_BRIDGE_PY_FAULT"


@dataclass
class Outcome:
    code: int
    stdout: str
    stderr: str

    @property
    def json(self) -> dict[str, Any]:
        value = json.loads(self.stdout)
        assert isinstance(value, dict)
        return value

    def ok(self) -> Outcome:
        assert self.code == 0, f"plugin failed ({self.code}): {self.stdout}\n{self.stderr}"
        return self

    def error(self, code: int) -> dict[str, Any]:
        assert self.code == 1, f"expected a failure, got {self.code}: {self.stdout}"
        body = self.json
        assert body["code"] == code, body
        assert "Traceback" not in self.stdout
        return body

    def cni_error(self) -> dict[str, Any]:
        """A runtime's view of any failure: exit 1 and exactly one JSON error object on stdout
        (json.loads rejects trailing data) with cniVersion, an int code that is not the
        catch-all 999, and a message; no traceback anywhere."""
        assert self.code == 1, f"expected exit 1, got {self.code}: {self.stdout}\n{self.stderr}"
        body = self.json
        assert {"cniVersion", "code", "msg"} <= body.keys(), body
        assert isinstance(body["code"], int) and body["code"] != 999, body
        assert isinstance(body["msg"], str) and body["msg"], body
        assert "Traceback" not in self.stdout + self.stderr, self.stderr
        return body


@dataclass
class Plugin:
    executable: Path
    host: Namespace
    cni_path: str

    def run(
        self,
        command: str,
        config: dict[str, Any] | bytes,
        *,
        container_id: str = "",
        netns: str = "",
        ifname: str = "eth0",
        cni_args: str = "",
        extra_env: dict[str, str] | None = None,
        unset: tuple[str, ...] = (),
        timeout: float = 60,
    ) -> Outcome:
        env = {
            "PATH": MINIMAL_PATH,
            "CNI_COMMAND": command,
            "CNI_CONTAINERID": container_id,
            "CNI_NETNS": netns,
            "CNI_IFNAME": ifname,
            "CNI_ARGS": cni_args,
            "CNI_PATH": self.cni_path,
            **(extra_env or {}),
        }
        for name in unset:  # absent, not merely empty
            env.pop(name, None)
        stdin = config if isinstance(config, bytes) else json.dumps(config).encode()
        proc = subprocess.run(
            ["ip", "netns", "exec", self.host.name, str(self.executable)],
            input=stdin,
            capture_output=True,
            env=env,
            check=False,
            timeout=timeout,
        )
        return Outcome(proc.returncode, proc.stdout.decode(), proc.stderr.decode())

    def add(self, config: dict[str, Any], container_id: str, netns: str) -> str:
        """A successful ADD; the host veth's name."""
        result = self.run("ADD", config, container_id=container_id, netns=netns).ok().json
        return str(result["interfaces"][1]["name"])

    def tool(self, *argv: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
        """One of the executable's own commands (inspect, doctor) in the host namespace, with
        `env` and PATH alone; a traceback fails the test."""
        proc = subprocess.run(
            self.host.argv(str(self.executable), *argv),
            capture_output=True,
            text=True,
            env={"PATH": MINIMAL_PATH, **env},
            check=False,
            timeout=60,
        )
        assert "Traceback" not in proc.stderr, proc.stderr
        return proc


def installed_plugin(bin_dir: Path, host: Namespace, *also: Path, name: str = LAUNCHER) -> Plugin:
    """`name` as `make install` laid it out in `bin_dir`, run inside `host`; its CNI_PATH is
    `bin_dir` and then `also` (where a delegated IPAM plugin or a chained one is found)."""
    return Plugin(bin_dir / name, host, ":".join(str(d) for d in (bin_dir, *also)))


def chain_name(network: str, container_id: str) -> str:
    """The reference's per-container nat chain, computed independently of the plugin."""
    return "CNI-" + hashlib.sha512((network + container_id).encode()).hexdigest()[:24]


def nat_rules_for(network: str, container_id: str, address: str, subnet: str) -> list[str]:
    """The four lines `iptables -t nat -S` shows for one masqueraded container: the reference's
    shape (tests/data/reference/direct/state-1-after-add-red/iptables-nat.txt, checked by
    tests/unit/test_oracles.py)."""
    chain = chain_name(network, container_id)
    comment = f'--comment "name: \\"{network}\\" id: \\"{container_id}\\""'
    return [
        f"-N {chain}",
        f"-A POSTROUTING -s {address}/32 -m comment {comment} -j {chain}",
        f"-A {chain} -d {subnet} -m comment {comment} -j ACCEPT",
        f"-A {chain} ! -d 224.0.0.0/4 -m comment {comment} -j MASQUERADE",
    ]


def store_files(data_dir: Path, network: str) -> dict[str, bytes]:
    """Every file host-local keeps for `network`, by name."""
    directory = data_dir / network
    if not directory.is_dir():
        return {}
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def reservations(data_dir: Path, network: str) -> dict[str, bytes]:
    """The reservation files only (not `lock` nor `last_reserved_ip.*`)."""
    return {
        name: content
        for name, content in store_files(data_dir, network).items()
        if name != "lock" and not name.startswith("last_reserved_ip.")
    }
