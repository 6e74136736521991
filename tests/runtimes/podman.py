"""podman (Debian 4.3) with the CNI network backend, entirely private to the test.

Storage (vfs), run root, tmp dir, events log and containers.conf live under a temporary
directory (--root/--runroot, CONTAINERS_CONF, CONTAINERS_STORAGE_CONF); the network config dir
and plugin dir are options of containers.conf. podman still has fixed paths of its own: the
libcni cache (/var/lib/cni), its container netns files (/run/netns), the image blob-info cache
(/var/lib/containers/cache) and /run/containers, /run/libpod. It runs in a private mount
namespace where those are test directories, /usr/lib/cni and /etc/cni/net.d are empty, so it
neither writes the host's files nor finds the reference plugins or the package's network.
"""

from __future__ import annotations

import os
import re
import resource
import subprocess
import tarfile
from pathlib import Path

from tests.runtimes.hostnet import remove_cgroups, unique
from tests.runtimes.mountns import MountNamespace
from tests.runtimes.seedhost import SeedHost
from tests.runtimes.support import run

IMAGE = "localhost/cbpt-busybox:runtimes"

CONTAINERS_CONF = """\
[containers]
# This sandbox lacks CAP_SYS_RESOURCE: runc cannot raise limits above the current ones.
default_ulimits = ["nofile={nofile}", "nproc=4096:4096"]

[network]
network_backend = "cni"
{network_dirs}
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "{scratch}/events.log"
tmp_dir = "{scratch}/tmp"
"""

STORAGE_CONF = """\
[storage]
driver = "vfs"
graphroot = "{scratch}/storage"
runroot = "{scratch}/runroot"
"""


def nofile_hard_limit() -> int:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    return hard if hard != resource.RLIM_INFINITY else 1048576


class Podman:
    def __init__(self, scratch: Path, seed: SeedHost | None = None) -> None:
        """In a mount namespace of its own where /usr/lib/cni and /etc/cni/net.d are empty;
        or in a seed host's namespaces, with the seed's CNI configs, plugins, store, cache
        and /run/netns (close() then ends the seed host too)."""
        self.scratch = scratch
        self.cgroup_parent = unique("pm")  # /sys/fs/cgroup/*/<it>, removed at the end
        self.storage_conf = scratch / "storage.conf"
        private = ["/var/lib/containers", "/run/containers", "/run/libpod"]
        if seed is None:
            self.ns = MountNamespace(scratch / "mnt")
            self.cache_dir, self.netns_dir = scratch / "var-lib-cni", scratch / "run-netns"
            private += ["/var/lib/cni", "/run/netns"]
        else:
            self.ns = seed.ns
            self.cache_dir, self.netns_dir = seed.dir("/var/lib/cni"), seed.dir("/run/netns")
        try:
            scratch.mkdir(parents=True, exist_ok=True)
            self.storage_conf.write_text(STORAGE_CONF.format(scratch=scratch))
            for target in private:
                directory = scratch / target.strip("/").replace("/", "-")
                directory.mkdir()
                self.ns.shadow(target, directory)
            if seed is None:
                self.ns.hide("/usr/lib/cni")
                self.ns.hide("/etc/cni/net.d")
        except BaseException:
            self.ns.close()
            raise

    def containers_conf(
        self, name: str, conf_dir: Path | None = None, plugin_dir: Path | None = None
    ) -> Path:
        """A containers.conf whose CNI networks are in conf_dir and plugins in plugin_dir
        (podman's defaults, /etc/cni/net.d and its list ending in /opt/cni/bin, when None)."""
        network_dirs = ""
        if conf_dir is not None:
            network_dirs += f'network_config_dir = "{conf_dir}"\n'
        if plugin_dir is not None:
            network_dirs += f'cni_plugin_dirs = ["{plugin_dir}"]\n'
        path = self.scratch / f"containers-{name}.conf"
        path.write_text(
            CONTAINERS_CONF.format(
                nofile=nofile_hard_limit(), network_dirs=network_dirs, scratch=self.scratch
            )
        )
        return path

    def __call__(
        self, conf: Path, *args: str, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        return run(self.argv(*args), env=self.env(conf), check=check, timeout=timeout)

    def argv(self, *args: str) -> list[str]:
        """The command line of `podman <args>` on this storage, inside the namespace."""
        return self.ns.argv(
            "podman",
            "--root",
            str(self.scratch / "storage"),
            "--runroot",
            str(self.scratch / "runroot"),
            *args,
        )

    def env(self, conf: Path) -> dict[str, str]:
        """The environment of a podman run with the containers.conf `conf`."""
        return {
            **os.environ,
            "CONTAINERS_CONF": str(conf),
            "CONTAINERS_STORAGE_CONF": str(self.storage_conf),
        }

    def run_args(self, network: str) -> list[str]:
        """`podman run` options every test container gets."""
        return [
            "--network",
            network,
            "--cgroup-parent",
            f"/{self.cgroup_parent}",
            "--cap-add",
            "NET_RAW",  # busybox ping needs a raw socket
        ]

    def import_image(self, conf: Path, rootfs: Path) -> None:
        """`podman import` of the busybox root filesystem: an image made offline."""
        archive = self.scratch / "rootfs.tar"
        with tarfile.open(archive, "w") as tar:
            tar.add(rootfs, arcname=".")
        self(conf, "import", str(archive), IMAGE)

    def close(self, conf: Path) -> list[str]:
        """Remove our containers and images (private storage), end the namespace, and
        report what could not be removed."""
        self(conf, "rm", "--all", "--force", "--time", "0", check=False)
        self(conf, "rmi", "--all", "--force", check=False)
        self.ns.close()
        problems = remove_cgroups(self.cgroup_parent)
        problems += [f"netns left: {p.name}" for p in self.netns_dir.iterdir()]
        return problems


def container_address(podman: Podman, conf: Path, name: str) -> str:
    out = podman(conf, "exec", name, "ip", "-4", "addr", "show", "dev", "eth0").stdout
    (address,) = re.findall(r"inet (\S+)", out)
    return str(address)


def ping(podman: Podman, conf: Path, name: str, target: str) -> bool:
    out = podman(conf, "exec", name, "ping", "-c", "1", "-W", "2", target, check=False).stdout
    return "1 packets received" in out
