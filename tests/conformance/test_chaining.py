"""Ours as the first plugin of a conflist, followed by the reference portmap, firewall, tuning and
bandwidth, driven by our runner (`cni-bridge-py cnitool`) inside a throwaway host namespace:
prevResult flows through, each plugin does its job (a host port reaches a listener in the
container), CHECK passes and DEL removes everything. Traffic stays inside our namespaces."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conformance.harness import NS_TAG
from tests.support.netns import Namespace, NamespaceFactory
from tests.support.plugin import LAUNCHER, REFERENCE_DIR
from tests.support.runtime import Runtime

NETWORK = "chainnet"
BRIDGE = "cbr1"
GATEWAY = "10.190.0.1"
HOST_PORT = 18080
CONTAINER_PORT = 8000
GREETING = "hello from the container"
PORTMAP_CHECK_BUG = re.compile(
    r"portmap: error 999: could not check ipv6 dnat: "
    r"chain CNI-DN-[0-9a-f]+ not found in iptables table nat"
)
# One connection, one line, then exit: a listener bounded in time by `timeout` as well.
SERVER = f"""
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", {CONTAINER_PORT}))
s.listen(1)
s.settimeout(15)
print("ready", flush=True)
conn, _ = s.accept()
conn.sendall(b"{GREETING}\\n")
conn.close()
"""
CLIENT = f"""
import socket
with socket.create_connection(("{GATEWAY}", {HOST_PORT}), timeout=5) as c:
    print(c.makefile().readline().strip())
"""


def conflist(data_dir: Path) -> dict[str, Any]:
    return {
        "cniVersion": "1.0.0",
        "name": NETWORK,
        "plugins": [
            {
                "type": "cni-bridge-py",
                "bridge": BRIDGE,
                "isGateway": True,
                "ipMasq": True,
                "ipam": {
                    "type": "host-local",
                    "subnet": "10.190.0.0/24",
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "dataDir": str(data_dir),
                },
            },
            {"type": "firewall"},
            {"type": "tuning", "mtu": 1400, "sysctl": {"net.ipv4.conf.eth0.arp_filter": "1"}},
            {
                "type": "bandwidth",
                "ingressRate": 8_000_000,
                "ingressBurst": 100_000,
                "egressRate": 8_000_000,
                "egressBurst": 100_000,
            },
            # last: its CHECK has a bug of its own (below), so every other CHECK runs first
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }


PORT_MAPPING = {"hostPort": HOST_PORT, "containerPort": CONTAINER_PORT, "protocol": "tcp"}


@pytest.fixture
def host(namespaces: NamespaceFactory) -> Namespace:
    return namespaces.host(f"{NS_TAG}hchain")


@pytest.fixture
def runtime(installed: Path, host: Namespace, tmp_path: Path) -> Runtime:
    """Our runner (`cni-bridge-py cnitool`) on chainnet, finding the reference plugins after
    ours on CNI_PATH, and asking portmap for one mapping (libcni's CAP_ARGS)."""
    (tmp_path / "net.d").mkdir()
    (tmp_path / "net.d" / f"{NETWORK}.conflist").write_text(
        json.dumps(conflist(tmp_path / "networks"))
    )
    return Runtime(
        installed / LAUNCHER,
        host,
        tmp_path / "net.d",
        tmp_path / "cache",
        f"{installed}:{REFERENCE_DIR}",
        env={"CAP_ARGS": json.dumps({"portMappings": [PORT_MAPPING]})},
    )


@pytest.fixture
def listener(namespaces: NamespaceFactory) -> Iterator[tuple[Namespace, subprocess.Popen[str]]]:
    """The container namespace with a one-shot TCP server on CONTAINER_PORT (ours to stop)."""
    container = namespaces.new(f"{NS_TAG}chained")
    container.exec("ip", "link", "set", "lo", "up")
    with subprocess.Popen(
        ["ip", "netns", "exec", container.name, "timeout", "30", "python3", "-c", SERVER],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    ) as server:  # (closes its pipe)
        try:
            assert server.stdout is not None and server.stdout.readline().strip() == "ready"
            yield container, server
        finally:
            server.kill()
            server.wait(timeout=10)


def nat_and_filter(host: Namespace) -> str:
    return host.exec("iptables-save")


def test_chain_add_check_del(
    runtime: Runtime,
    host: Namespace,
    listener: tuple[Namespace, subprocess.Popen[str]],
    tmp_path: Path,
) -> None:
    container, server = listener
    before = (host.link_names(), nat_and_filter(host))

    added = runtime.run("add", NETWORK, container)
    assert added.code == 0, added.stderr
    result = json.loads(added.stdout)
    # prevResult flowed through every plugin: the final result is still ours.
    assert result["interfaces"][0]["name"] == BRIDGE
    assert result["ips"][0]["address"] == "10.190.0.2/24"
    host_veth = result["interfaces"][1]["name"]

    # tuning: MTU and sysctl inside the container
    assert (container.link("eth0") or {})["mtu"] == 1400
    assert container.sysctl("net/ipv4/conf/eth0/arp_filter") == "1"
    # bandwidth: a token bucket on the host veth, and an ingress qdisc redirecting to an ifb
    qdiscs = host.exec("tc", "qdisc", "show", "dev", host_veth)
    assert "qdisc tbf" in qdiscs and "qdisc ingress" in qdiscs, qdiscs
    assert host.links("ifb"), "no ifb device for egress shaping"
    # firewall: the container's address is let through FORWARD
    assert "10.190.0.2" in host.exec("iptables", "-S", "CNI-FORWARD")
    # portmap: the host port reaches the listener in the container
    rules = nat_and_filter(host)
    assert f"--dport {HOST_PORT}" in rules and "CNI-HOSTPORT-DNAT" in rules
    reply = host.exec("timeout", "10", "python3", "-c", CLIENT)
    assert reply.strip() == GREETING
    assert server.wait(timeout=10) == 0

    # libcni runs CHECK plugin by plugin: ours, firewall, tuning and bandwidth pass; Debian's
    # portmap 1.1.1 then fails on any IPv4-only container (it checks an IPv6 chain it never
    # made; the same with the reference bridge first).
    checked = runtime.run("check", NETWORK, container)
    assert checked.code == 1, checked.stderr
    assert PORTMAP_CHECK_BUG.fullmatch(checked.stderr.strip()), checked.stderr

    deleted = runtime.run("del", NETWORK, container)
    assert deleted.code == 0, deleted.stderr
    assert container.link_names() == ["lo"]
    assert host.links("veth") == [] and host.links("ifb") == []
    after = nat_and_filter(host)
    for gone in ("10.190.0.2", f"--dport {HOST_PORT}", "CNI-DN-", 'id: \\"cnitool-'):
        assert gone not in after, f"{gone!r} left after DEL:\n{after}"
    leftover_rules = [
        line
        for line in after.splitlines()
        if line.startswith("-A") and line not in before[1].splitlines()
    ]
    # What stays is the plugins' shared, empty scaffolding: the top-level CNI-HOSTPORT-* and
    # CNI-FORWARD chains and their hooks, never a rule about this container.
    assert all(
        "CNI-HOSTPORT" in line or "CNI-FORWARD" in line or "CNI-ADMIN" in line
        for line in leftover_rules
    ), leftover_rules
    assert not list((tmp_path / "networks" / NETWORK).glob("10.*")), "reservation left"
