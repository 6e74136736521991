"""The report as a plain-text table (aligned columns) or as JSON."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from cni_bridge_py.inspect.model import NetworkSummary, Row

COLUMNS = (
    ("CONTAINER", "container_id"),
    ("IFNAME", "ifname"),
    ("NETNS", "netns"),
    ("ADDRESSES", "addresses"),
    ("HOST VETH", "host_veth"),
    ("MAC", "mac"),
    ("NAT", "nat"),
    ("CACHE", "cache"),
    ("STATE", "state"),
)


def table(summaries: Sequence[NetworkSummary]) -> str:
    return "\n".join(_network_text(s) for s in summaries)


def _network_text(s: NetworkSummary) -> str:
    bridge = s.bridge if s.bridge_present else f"{s.bridge} (missing)"
    use = ", ".join(f"{u.ranges} {u.used}/{u.size}" for u in s.range_use) or "-"
    lines = [
        f"network {s.name}: {'ok' if s.ok else 'ANOMALIES'}",
        f"  bridge      {bridge}",
        f"  gateway     {', '.join(s.gateways) or '-'}",
        f"  ports       {', '.join(s.ports) or '-'}",
        f"  masquerade  {s.masquerade}",
        f"  range use   {use}",
    ]
    lines += [f"  problem     {p}" for p in s.problems]
    lines.append("")
    lines += _aligned([[h for h, _ in COLUMNS]] + [_cells(row) for row in s.rows])
    lines.append("")
    return "\n".join(lines)


def _cells(row: Row) -> list[str]:
    out = []
    for _, attr in COLUMNS:
        value = getattr(row, attr)
        text = ",".join(value) if isinstance(value, tuple) else str(value)
        if attr == "cache":
            text = text.rsplit("/", 1)[-1]  # the file name; --json has the whole path
        out.append(text or "-")
    return out


def _aligned(rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]


def to_json(summaries: Sequence[NetworkSummary]) -> str:
    return json.dumps({"networks": [summary_dict(s) for s in summaries]}, indent=2) + "\n"


def summary_dict(s: NetworkSummary) -> dict[str, Any]:
    return {
        "name": s.name,
        "ok": s.ok,
        "bridge": s.bridge,
        "bridgePresent": s.bridge_present,
        "gateways": list(s.gateways),
        "ports": list(s.ports),
        "masquerade": s.masquerade,
        "rangeUse": [{"ranges": u.ranges, "used": u.used, "size": u.size} for u in s.range_use],
        "problems": list(s.problems),
        "attachments": [row_dict(r) for r in s.rows],
    }


def row_dict(r: Row) -> dict[str, Any]:
    return {
        "containerID": r.container_id,
        "ifname": r.ifname,
        "netns": r.netns,
        "addresses": list(r.addresses),
        "hostVeth": r.host_veth,
        "mac": r.mac,
        "nat": r.nat,
        "cache": r.cache,
        "state": r.state,
        "problems": list(r.problems),
    }
