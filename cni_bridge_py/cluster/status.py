"""`node --status`: every node's key, and what this node's kernel holds for the others."""

from __future__ import annotations

import time
from typing import TextIO

from cni_bridge_py.cluster import lease_file
from cni_bridge_py.cluster.config import ClusterConf
from cni_bridge_py.cluster.ports import Kernel, Store, StoreUnavailable
from cni_bridge_py.cluster.records import BadRecord, parse_record, subnets_prefix


def render_nodes(rows: list[tuple[str, str, str, str, str, str]]) -> list[str]:
    """A fixed-width table (pure)."""
    header = ("NODE", "SUBNET", "ADDRESS", "BACKEND", "AGE", "TTL LEFT")
    table = [header, *rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    return [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in table
    ]


def print_status(conf: ClusterConf, store: Store, kernel: Kernel, out: TextIO) -> int:
    code = 0
    out.write(
        f"network {conf.network}: range {conf.cluster_range}, /{conf.subnet_len} per node,"
        f" backend {conf.backend}\n"
    )
    try:
        local = lease_file.read(conf.subnet_file)
    except (lease_file.UnreadableLease, OSError) as exc:
        local = None
        out.write(f"local lease: unreadable ({exc})\n")
    else:
        out.write(
            f"local lease: {local.subnet} ({local.node}) in {conf.subnet_file}\n"
            if local
            else f"local lease: none ({conf.subnet_file} does not exist)\n"
        )
    try:
        entries = store.list(subnets_prefix(conf.network_prefix))
        rows = []
        now = time.time()
        for entry in sorted(entries, key=lambda e: e.key):
            try:
                record = parse_record(entry.value)
            except BadRecord:
                continue
            left, _granted = store.time_to_live(entry.lease) if entry.lease else (-1, 0)
            rows.append(
                (
                    record.node,
                    str(record.subnet),
                    str(record.address),
                    record.backend + (f" {record.vtep_mac}" if record.vtep_mac else ""),
                    f"{now - record.since:.0f}s" if record.since else "?",
                    f"{left}s" if left >= 0 else "expired",
                )
            )
        out.write(f"nodes ({len(rows)}):\n")
        for line in render_nodes(rows):
            out.write(f"  {line}\n")
    except StoreUnavailable as exc:
        out.write(f"etcd unreachable: {exc}\n")
        code = 1
    routes, neighbours, fdb = kernel.state()
    out.write(f"routes held by this node ({len(routes)}):\n")
    for route in sorted(routes, key=lambda r: int(r.dst.network_address)):
        out.write(f"  {route.dst} via {route.via}\n")
    if conf.backend == "vxlan":
        out.write(f"FDB entries on {conf.vxlan_device} ({len(fdb)}):\n")
        for mac, dst in sorted(fdb.items()):
            out.write(f"  {mac} dst {dst}\n")
        out.write(f"neighbours on {conf.vxlan_device} ({len(neighbours)}):\n")
        for ip, mac in sorted(neighbours.items()):
            out.write(f"  {ip} lladdr {mac}\n")
    return code
