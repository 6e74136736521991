"""A cluster in namespaces: an underlay bridge, a 3-member etcd cluster, and nodes that each
have their own bridge, data dir, subnet file, node service and plugin runs.

    underlay namespace: bridge ul0 ----+----------------+----------------+------ ...
                                       |                |                |
    etcd members (10.213.0.101-103)  nodes (10.213.0.11, .12, ...)   (veths named "ul")

Every process is started here through Popen and stopped through its handle (never by name);
every namespace is made by the suite's factory and deleted by its cleanup, also on failure.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.netns import Namespace, NamespaceFactory, sh, unique
from tests.support.plugin import Outcome, Plugin, installed_plugin

UNDERLAY = "10.213.0"
CLUSTER_RANGE = "10.244.0.0/16"
ETCD_CLIENT_PORT = 2379
ETCD_PEER_PORT = 2380
# Tests shorten the lease: a dead node's subnet comes back in seconds.
TTL = 5
SYNC = 0.5


def wait_for(check: Callable[[], bool], timeout: float, what: str, step: float = 0.1) -> float:
    """Seconds until `check` held; AssertionError naming `what` after `timeout`."""
    start = time.monotonic()
    while True:
        if check():
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(step)


class Underlay:
    """The shared L2 segment: a bridge in a namespace of its own."""

    def __init__(self, factory: NamespaceFactory) -> None:
        self.ns = factory.host("underlay")
        self.ns.exec("ip", "link", "add", "ul0", "type", "bridge")
        self.ns.exec("ip", "link", "set", "ul0", "up")
        self.ports = 0
        self.hosts = 10

    def next_host(self) -> int:
        """A host number for a node's underlay address (.11 and up; etcd has .101-.103)."""
        self.hosts += 1
        assert self.hosts < 100
        return self.hosts

    def attach(self, ns: Namespace, address: str) -> None:
        """A veth from the bridge into `ns`, named "ul" there, with `address`/24."""
        self.ports += 1
        port = f"p{self.ports}"
        sh(
            "ip",
            "-n",
            self.ns.name,
            "link",
            "add",
            port,
            "type",
            "veth",
            "peer",
            "name",
            "ul",
            "netns",
            ns.name,
        )
        sh("ip", "-n", self.ns.name, "link", "set", port, "master", "ul0", "up")
        sh("ip", "-n", ns.name, "addr", "add", f"{address}/24", "dev", "ul")
        sh("ip", "-n", ns.name, "link", "set", "ul", "up")


@dataclass
class EtcdMember:
    name: str
    ns: Namespace
    address: str
    data_dir: Path
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def client_url(self) -> str:
        return f"http://{self.address}:{ETCD_CLIENT_PORT}"

    @property
    def peer_url(self) -> str:
        return f"http://{self.address}:{ETCD_PEER_PORT}"

    def start(self, initial_cluster: str, token: str, state: str = "new") -> None:
        assert self.proc is None or self.proc.poll() is not None
        argv = self.ns.argv(
            "etcd",
            "--name", self.name,
            "--data-dir", str(self.data_dir),
            "--listen-client-urls", self.client_url,
            "--advertise-client-urls", self.client_url,
            "--listen-peer-urls", self.peer_url,
            "--initial-advertise-peer-urls", self.peer_url,
            "--initial-cluster", initial_cluster,
            "--initial-cluster-token", token,
            "--initial-cluster-state", state,
            # A fast failover on a quiet machine (defaults: 100 ms and 1 s).
            "--heartbeat-interval", "100",
            "--election-timeout", "500",
        )  # fmt: skip
        with self.log.open("ab") as log:
            # `ip netns exec` execs etcd: this handle is etcd itself.
            self.proc = subprocess.Popen(argv, stdout=log, stderr=log, stdin=subprocess.DEVNULL)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


class EtcdCluster:
    def __init__(self, factory: NamespaceFactory, underlay: Underlay, tmp: Path) -> None:
        self.token = unique("etcd")
        self.members = []
        for i in range(3):
            ns = factory.host(f"etcd{i}")
            address = f"{UNDERLAY}.{101 + i}"
            underlay.attach(ns, address)
            self.members.append(
                EtcdMember(f"m{i}", ns, address, tmp / f"etcd{i}", tmp / f"etcd{i}.log")
            )
        self.initial = ",".join(f"{m.name}={m.peer_url}" for m in self.members)

    @property
    def endpoints(self) -> list[str]:
        return [m.client_url for m in self.members]

    def start(self, state: str = "new") -> float:
        """Seconds until the members elected a leader and answer."""
        for member in self.members:
            member.start(self.initial, self.token, state)
        return self.wait_healthy()

    def stop(self) -> None:
        for member in self.members:
            member.stop()

    def wait_healthy(self, timeout: float = 30) -> float:
        return wait_for(self.healthy, timeout, "etcd to elect a leader", step=0.2)

    def live(self) -> list[EtcdMember]:
        return [m for m in self.members if m.proc is not None and m.proc.poll() is None]

    def healthy(self) -> bool:
        live = self.live()
        if not live:
            return False
        proc = self.etcdctl("endpoint", "health", check=False, member=live[0])
        return proc.returncode == 0

    def etcdctl(
        self, *args: str, check: bool = True, member: EtcdMember | None = None
    ) -> subprocess.CompletedProcess[str]:
        member = member or self.live()[0]
        argv = member.ns.argv(
            "etcdctl", "--dial-timeout=2s", "--command-timeout=3s",
            f"--endpoints={member.client_url}", *args,
        )  # fmt: skip
        proc = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=30)
        if check and proc.returncode != 0:
            raise AssertionError(f"etcdctl {' '.join(args)}: {proc.stderr.strip()}")
        return proc

    def keys(self, prefix: str) -> list[str]:
        out = self.etcdctl("get", "--prefix", "--keys-only", prefix).stdout
        return [line for line in out.splitlines() if line]

    def kill_all(self) -> None:
        for member in self.members:
            member.kill()


@dataclass
class Node:
    name: str
    ns: Namespace
    address: str
    config_path: Path
    config: dict[str, Any]
    log: Path
    plugin: Plugin
    proc: subprocess.Popen[bytes] | None = None
    pods: dict[str, tuple[Namespace, str]] = field(default_factory=dict)

    @property
    def cluster(self) -> dict[str, Any]:
        cluster = self.config["cluster"]
        assert isinstance(cluster, dict)
        return cluster

    @property
    def subnet_file(self) -> Path:
        return Path(self.cluster["subnetFile"])

    def start(self) -> None:
        assert self.proc is None or self.proc.poll() is not None
        argv = self.ns.argv(
            sys.executable, "-m", "cni_bridge_py", "node", "--config", str(self.config_path)
        )
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=log, stdin=subprocess.DEVNULL)

    def stop(self, sig: int = signal.SIGTERM) -> int | None:
        """The service's exit status (-9: it did not end within 15 s and was killed)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return None if self.proc is None else self.proc.returncode

    def subnet(self) -> str | None:
        try:
            return str(json.loads(self.subnet_file.read_text())["subnet"])
        except FileNotFoundError:
            return None

    def wait_subnet(self, timeout: float = 20) -> str:
        wait_for(lambda: self.subnet() is not None, timeout, f"{self.name}'s lease")
        subnet = self.subnet()
        assert subnet is not None
        return subnet

    def join_ms(self) -> float:
        """How long the service took to lease its subnet, as it logged it."""
        found = re.search(r"(?:leased|kept) subnet \S+ \(lease \w+, TTL \d+s\) in (\d+) ms",
                          self.log_text())  # fmt: skip
        assert found, self.log_text()
        return float(found.group(1))

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def add_pod(self, factory: NamespaceFactory, tag: str) -> Outcome:
        pod = factory.host(f"{self.name}{tag}")
        cid = f"{self.name}-{tag}"
        outcome = self.plugin.run("ADD", self.config, container_id=cid, netns=pod.path)
        if outcome.code == 0:
            address = outcome.json["ips"][0]["address"].split("/")[0]
            self.pods[tag] = (pod, address)
        return outcome

    def routes(self) -> list[dict[str, Any]]:
        return [r for r in self.ns.routes() if r.get("protocol") == "211"]

    def status(self) -> subprocess.CompletedProcess[str]:
        argv = self.ns.argv(
            sys.executable, "-m", "cni_bridge_py", "node", "--status",
            "--config", str(self.config_path),
        )  # fmt: skip
        return subprocess.run(argv, capture_output=True, text=True, check=False, timeout=60)


class Cluster:
    """Nodes on one network, sharing an underlay and an etcd cluster."""

    def __init__(
        self,
        underlay: Underlay,
        etcd: EtcdCluster,
        tmp: Path,
        bin_dir: Path,
        *,
        backend: str = "host-gw",
    ) -> None:
        # Its own namespaces (nodes, pods), deleted by close().
        self.factory = NamespaceFactory(underlay.ns.name[:4])
        self.underlay = underlay
        self.etcd = etcd
        self.tmp = tmp
        self.bin_dir = bin_dir
        self.backend = backend
        self.network = "podnet"
        # Each cluster has keys of its own, so the suite shares one etcd cluster.
        self.key_prefix = "/" + unique("keys")
        self.nodes: list[Node] = []

    def add_node(self, name: str = "", **cluster: Any) -> Node:
        """A node (namespace, underlay address, config); `cluster` overrides the section's keys."""
        name = name or f"n{len(self.nodes) + 1}"
        ns = self.factory.host(name)
        address = f"{UNDERLAY}.{self.underlay.next_host()}"
        self.underlay.attach(ns, address)
        home = self.tmp / name
        home.mkdir()
        config: dict[str, Any] = {
            "cniVersion": "1.0.0",
            "name": self.network,
            "type": "cni-bridge-py",
            "bridge": "cbr0",
            "isGateway": True,
            "isDefaultGateway": True,
            "ipMasq": True,
            "ipam": {"type": "host-local", "dataDir": str(home / "networks")},
            "cluster": {
                "etcdEndpoints": self.etcd.endpoints,
                "keyPrefix": self.key_prefix,
                "clusterRange": CLUSTER_RANGE,
                "subnetLen": 24,
                "backend": self.backend,
                "nodeName": name,
                "nodeAddress": address,
                "subnetFile": str(home / "subnet.json"),
                "leaseTTL": TTL,
                "syncInterval": SYNC,
                **cluster,
            },
        }
        if self.backend == "vxlan":
            config["mtu"] = 1450
        path = home / "podnet.conf"
        path.write_text(json.dumps(config, indent=2))
        node = Node(name, ns, address, path, config, home / "node.log",
                    installed_plugin(self.bin_dir, ns))  # fmt: skip
        self.nodes.append(node)
        return node

    def etcd_keys(self) -> list[str]:
        return self.etcd.keys(self.key_prefix)

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def close(self) -> None:
        """Every service stopped, every namespace of this cluster deleted."""
        try:
            self.stop()
        finally:
            self.factory.cleanup()

    def add_pod(self, node: Node, tag: str) -> Outcome:
        return node.add_pod(self.factory, tag)


def udp_source(receiver: Namespace, address: str, sender: Namespace) -> str:
    """The source address `receiver` sees on a datagram that `sender` sends to `address`."""
    server = subprocess.Popen(
        receiver.argv(
            "python3", "-I", "-S", "-c",
            "import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM);"
            f"s.bind(('{address}', 7777)); s.settimeout(10);"
            "print(s.recvfrom(100)[1][0], flush=True)",
        ),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        time.sleep(0.3)  # the server binds
        for _ in range(20):
            sender.exec(
                "python3", "-I", "-S", "-c",
                "import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM);"
                f"s.sendto(b'who', ('{address}', 7777))",
            )  # fmt: skip
            try:
                out, err = server.communicate(timeout=0.5)
                assert server.returncode == 0, err
                return out.strip()
            except subprocess.TimeoutExpired:
                continue
        raise AssertionError(f"no datagram reached {address}")
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(5)
