"""A Kubernetes node without Kubernetes: containerd 1.6 with its CRI plugin, the CNI plugins
a node has, and the node's network config, all private to the test.

The node is a seed host (tests/runtimes/seedhost.py): one mount + network namespace in which
/opt/cni/bin, /etc/cni/net.d, /var/lib/cni (host-local's store, libcni's cache) and /run/netns
(where the CRI plugin mounts each pod's netns) are test directories, and the node's network is
a fresh namespace: bridge cni0, the pod CIDR, the NAT and portmap rules and ip_forward of the
node config live there and vanish with it. /opt/cni/bin starts as a node's does (the reference
bridge, host-local, portmap, bandwidth and loopback, as Kubernetes' CNI package lays them out);
the README's "On a Kubernetes node" commands then put ours in place of bridge and host-local.

The daemon (tests/runtimes/containerd.py) runs in that namespace with its own root, state,
socket and /run/containerd; its CRI plugin's cni.bin_dir and cni.conf_dir are the node's
/opt/cni/bin and /etc/cni/net.d, and its sandbox image is the pause image of image.py.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import signal
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tests.runtimes.containerd import Containerd
from tests.runtimes.cri.client import CriClient, Pod, PodStatus
from tests.runtimes.cri.image import pause_archive
from tests.runtimes.hostnet import CGROUP_ROOT
from tests.runtimes.seedhost import SeedHost, readme_commands
from tests.runtimes.support import REPO, run
from tests.support.agent import AGENT_ENV
from tests.support.plugin import REFERENCE_DIR

SECTION = "On a Kubernetes node"
CONF = REPO / "conf" / "k8s-node.conflist"
PAUSE_IMAGE = "localhost/cbpt-pause:cri"
K8S_NAMESPACE = "k8s.io"  # the containerd namespace of the CRI plugin's images and containers
# What Kubernetes' CNI package puts in /opt/cni/bin, of the plugins the node config uses.
NODE_PLUGINS = ("bridge", "host-local", "portmap", "bandwidth", "loopback")

# containerd 1.6's CRI plugin (config version 2). This sandbox has no CAP_SYS_RESOURCE, so runc
# must not raise the OOM score adjustment (restrict_oom_score_adj); the native snapshotter
# works where overlayfs may not; no AppArmor or SELinux here; cgroupfs, not systemd. The
# streaming server listens in the node's network namespace, on a port of the kernel's choice.
CRI_SECTION = """\
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{image}"
  disable_apparmor = true
  enable_selinux = false
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_tls_streaming = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "native"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/opt/cni/bin"
    conf_dir = "/etc/cni/net.d"
    max_conf_num = 1
"""


def node_conflist(ipam: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """conf/k8s-node.conflist, with keys of the bridge plugin's "ipam" replaced."""
    conflist: dict[str, Any] = json.loads(CONF.read_text())
    conflist["plugins"][0]["ipam"].update(ipam or {})
    return conflist


def kill_cgroup_processes(parent: str) -> list[str]:
    """SIGKILL every process left in the cgroup parent our pods were given (a pod that could
    not be stopped): ours, found by the unique cgroup name, never by a process name."""
    name = parent.strip("/")
    tops = [CGROUP_ROOT / name, *(p / name for p in CGROUP_ROOT.iterdir() if p.is_dir())]
    pids = set()
    for top in tops:
        for procs in top.rglob("cgroup.procs") if top.is_dir() else ():
            with contextlib.suppress(OSError):
                pids |= {int(pid) for pid in procs.read_text().split()}
    for pid in sorted(pids):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return [f"killed pod process {pid} left in {parent}" for pid in sorted(pids)]


class Node:
    def __init__(
        self,
        scratch: Path,
        *,
        ours: bool = True,
        conflist: Mapping[str, Any] | None = None,
    ) -> None:
        """ours: the README's commands install our plugin (else the reference stays);
        conflist: another node config than conf/k8s-node.conflist (written in its place)."""
        self.scratch = scratch
        # containerd's environment reaches every plugin it runs (libcni passes it on): an
        # agent started on this socket serves them, and with none there they run one-shot.
        self.agent_socket = scratch / "agent" / "agent.sock"
        env = {AGENT_ENV: str(self.agent_socket)}
        self.seed = SeedHost.make(scratch / "seed", hide_reference=True)
        self.containerd: Containerd | None = None
        self.cri: CriClient | None = None
        try:
            self._stock_bin_dir(ours)
            config = json.loads(CONF.read_text()) if conflist is None else dict(conflist)
            self.network = str(config["name"])
            self.bridge = str(config["plugins"][0]["bridge"])
            if conflist is not None:
                path = self.seed.dir("/etc/cni/net.d") / CONF.name
                path.write_text(json.dumps(conflist, indent=2) + "\n")
            # kubeadm's preflight requires it: bridged pod-to-pod traffic passes iptables, so
            # a hostPort's DNAT is undone on the reply of a pod on the same bridge.
            self.sh("sysctl -qw net.bridge.bridge-nf-call-iptables=1")
            cri = CRI_SECTION.format(image=PAUSE_IMAGE)
            self.containerd = Containerd(scratch / "ctrd", cri=cri, ns=self.seed.ns, env=env)
            self._import_pause_image()
            self.cri = CriClient(self.containerd.socket)
        except BaseException:
            self.close()
            raise

    def _stock_bin_dir(self, ours: bool) -> None:
        bin_dir = self.seed.dir("/opt/cni/bin")
        for plugin in NODE_PLUGINS:
            shutil.copy2(REFERENCE_DIR / plugin, bin_dir / plugin)
        for line in readme_commands(SECTION):
            installs_ours = not line.startswith("make install-conf")
            if ours or not installs_ours:
                self.seed.sh(line)
        # The block must still do what the section says: ours under the reference's name.
        bridge = (bin_dir / "bridge").resolve().name
        assert bridge == ("cni-bridge-py" if ours else "bridge"), f"/opt/cni/bin/bridge: {bridge}"
        assert (self.seed.dir("/etc/cni/net.d") / CONF.name).is_file()

    def _import_pause_image(self) -> None:
        assert self.containerd is not None
        archive = pause_archive(self.scratch / "pause.tar", PAUSE_IMAGE)
        ctr = ["ctr", "--address", str(self.containerd.socket), "--namespace", K8S_NAMESPACE]
        # Unpacked for the snapshotter the CRI plugin uses, or a sandbox cannot be made from it.
        run(self.argv(*ctr, "images", "import", "--snapshotter", "native", str(archive)))
        listed = run(self.argv(*ctr, "images", "ls", "--quiet")).stdout.split()
        assert PAUSE_IMAGE in listed, listed

    # --- running things on the node ------------------------------------------------------

    def argv(self, *command: str) -> list[str]:
        """`command` on the node (its mount and network namespaces); tests/support/agent.py's
        Host protocol, so the agent can run here."""
        return self.seed.ns.argv(*command)

    def sh(self, line: str, *, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.seed.sh(line, check=check)

    def in_pod(
        self, pod: PodStatus, *command: str, check: bool = True, timeout: float = 30
    ) -> subprocess.CompletedProcess[str]:
        """`command` in the pod's network namespace (the node's tools, the node's files)."""
        assert pod.netns, f"pod {pod.id} has no netns"
        return run(
            self.argv("nsenter", f"--net={pod.netns}", "--", *command), check=check, timeout=timeout
        )

    def ip_json(self, *args: str) -> list[dict[str, Any]]:
        return self.seed.ip_json(*args)

    # --- the CRI ------------------------------------------------------------------------

    @property
    def client(self) -> CriClient:
        assert self.cri is not None
        return self.cri

    @property
    def cgroup_parent(self) -> str:
        """Every pod's cgroups go under /<containerd's unique namespace name> (then removed)."""
        assert self.containerd is not None
        return f"/{self.containerd.namespace}"

    def run_pod(self, pod: Pod) -> str:
        """RunPodSandbox (the pod in the node's cgroup parent): the sandbox ID."""
        return self.client.run(dataclasses.replace(pod, cgroup_parent=self.cgroup_parent))

    def start(self, pod: Pod) -> PodStatus:
        """RunPodSandbox, then its PodSandboxStatus."""
        return self.client.status(self.run_pod(pod))

    def restart_containerd(self) -> None:
        """SIGTERM to the daemon, then start it again; the pods' shims keep running. A new
        channel, as a kubelet reconnects (no waiting out grpc's reconnect backoff)."""
        assert self.containerd is not None and self.cri is not None
        self.cri.close()
        self.containerd.restart()
        self.cri = CriClient(self.containerd.socket)

    # --- what the node holds --------------------------------------------------------------

    def host_veths(self) -> dict[str, str]:
        """Host veth on the node's bridge -> its owner alias (ours sets one)."""
        return self.seed.bridge_ports(self.bridge)

    def nat_rules(self) -> list[str]:
        """iptables and ip6tables nat rules that name the node network: our NAT chains and
        portmap's."""
        marker = f'name: \\"{self.network}\\"'
        return [
            f"{tool}: {line}"
            for tool in ("iptables", "ip6tables")
            for line in self.sh(f"{tool} -t nat -S").stdout.splitlines()
            if marker in line
        ]

    def portmap_chains(self) -> list[str]:
        rules = self.sh("iptables -t nat -S; ip6tables -t nat -S").stdout.splitlines()
        return [line for line in rules if line.startswith("-N CNI-DN-")]

    def links(self, kind: str) -> list[str]:
        return [
            e["ifname"]
            for e in self.ip_json("-d link show")
            if e.get("linkinfo", {}).get("info_kind") == kind
        ]

    def netns_files(self) -> list[str]:
        """The pod netns mounts the CRI plugin keeps under /run/netns."""
        return sorted(p.name for p in self.seed.dir("/run/netns").iterdir())

    def leftovers(self) -> dict[str, object]:
        """Everything a pod of the node network could leave behind; {} when clean."""
        found: dict[str, object] = {
            "veths on the bridge": self.host_veths(),
            "NAT rules": self.nat_rules(),
            "portmap chains": self.portmap_chains(),
            "ifb devices (bandwidth)": self.links("ifb"),
            "reservations": self.seed.reservations(self.network),
            "libcni cache files": self.seed.cache_files(self.network),
            "netns files": self.netns_files(),
        }
        return {what: items for what, items in found.items() if items}

    # --- the end --------------------------------------------------------------------------

    def remove_all_pods(self) -> list[str]:
        """StopPodSandbox and RemovePodSandbox for every pod; the failures, if any."""
        problems: list[str] = []
        if self.cri is None:
            return problems
        for pod_id in self.cri.pods():
            for step in (self.cri.stop, self.cri.remove):
                try:
                    step(pod_id)
                except Exception as e:
                    problems.append(f"{step.__name__} {pod_id[:12]}: {e}")
        return problems

    def close(self) -> list[str]:
        """Pods, then the daemon (and any shim left), then the node's namespaces: its bridge,
        veths, rules and pod netns mounts go with them. Returns what had to be forced."""
        problems: list[str] = []
        try:
            if self.containerd is not None and self.containerd.proc is not None:
                with contextlib.suppress(Exception):
                    problems += self.remove_all_pods()
                if self.cri is not None:
                    self.cri.close()
            if self.containerd is not None:
                problems += kill_cgroup_processes(self.cgroup_parent)
                problems += self.containerd.stop()
        finally:
            self.seed.close()
        return problems
