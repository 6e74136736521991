"""`cni-bridge-py node --config FILE [--status]`: the node service, or the cluster as it is.

FILE is the network's config (a .conf or a .conflist): the service reads the "cluster"
section of its plugin entry, so the plugin and the service cannot disagree on the cluster.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import logging
import signal
import socket
import sys
import threading
from typing import Any

from cni_bridge_py.cluster.config import ClusterConf, parse_cluster
from cni_bridge_py.fields import Fields

log = logging.getLogger("cni-bridge-py.node")


class ConfigProblem(Exception):
    pass


def load(path: str) -> ClusterConf:
    """The "cluster" section of the network config at `path`."""
    try:
        with open(path, "rb") as handle:
            data = json.load(handle)
    except (OSError, ValueError) as exc:
        raise ConfigProblem(f"cannot read {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigProblem(f"{path}: expected a JSON object")
    entries: list[Any] = data.get("plugins") or [data]
    entry = next((e for e in entries if isinstance(e, dict) and "cluster" in e), None)
    if entry is None:
        raise ConfigProblem(f'{path}: no plugin entry has a "cluster" section')
    problems: list[str] = []
    conf = parse_cluster(Fields(entry, "", problems), str(data.get("name", "")))
    if not data.get("name"):
        problems.append('"name": missing (the network\'s name is part of its keys)')
    if problems or conf is None:
        raise ConfigProblem(f"{path}: " + "; ".join(problems))
    return conf


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="cni-bridge-py node",
        description="Lease this node's pod subnet from etcd and route to the other nodes.",
    )
    parser.add_argument("--config", required=True, help="the network config (.conf/.conflist)")
    parser.add_argument("--status", action="store_true", help="print the cluster and exit")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", stream=sys.stderr
    )
    try:
        conf = load(args.config)
    except ConfigProblem as exc:
        print(f"cni-bridge-py node: {exc}", file=sys.stderr)
        return 2
    # Loaded only here: etcd3gw (requests) and the kernel layer.
    from cni_bridge_py.cluster.etcd import Etcd  # noqa: PLC0415
    from cni_bridge_py.cluster.kernel import NodeKernel  # noqa: PLC0415
    from cni_bridge_py.kernel.errors import KernelError  # noqa: PLC0415
    from cni_bridge_py.kernel.overlay import overlay_session  # noqa: PLC0415

    store = Etcd(conf.endpoints)
    with overlay_session() as session:
        kernel = NodeKernel(session, conf)
        if args.status:
            from cni_bridge_py.cluster.status import print_status  # noqa: PLC0415

            return print_status(conf, store, kernel, sys.stdout)
        name = conf.node_name or socket.gethostname()
        address = conf.node_address or kernel.default_address()
        if not isinstance(address, ipaddress.IPv4Address):
            why = "no IPv4 address on the default route's link"
            print(f'cni-bridge-py node: {why}: set "nodeAddress"', file=sys.stderr)
            return 2
        from cni_bridge_py.cluster.service import NodeService  # noqa: PLC0415

        stop = threading.Event()
        service = NodeService(conf, store, kernel, name=name, address=address)
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: service.stop(stop))
        try:
            service.run(stop)
        except KernelError as exc:
            # E.g. the underlay address is not there yet at boot: systemd starts us again.
            log.error("cannot set up this node: %s", exc)
            return 1
        log.info("stopped; the lease expires in %ds unless the service comes back", conf.lease_ttl)
    return 0
