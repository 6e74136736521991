"""`inspect --graph`: the networks drawn with Graphviz (the PyPI `graphviz` package builds the
DOT source and quotes every name and label; Debian's `dot` renders it).

Per network: the bridge with its gateway addresses, each host veth joined to it and, across
the veth pair, the container's namespace with its interface and addresses; with ipMasq, each
attachment's NAT chain leading to the masquerade and out. Anything a row's state names as
missing or extra is drawn red, with the state as the edge's or node's label.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cni_bridge_py.inspect.model import NetworkSummary, Row

FORMATS = {".svg": "svg", ".png": "png", ".dot": "dot", ".gv": "dot"}
ANOMALY = "red"
HEALTHY = "black"


class GraphError(Exception):
    """The picture cannot be made here: an unknown format, or Graphviz missing."""


def build(summaries: Sequence[NetworkSummary]) -> Any:
    """The graphviz.Digraph of the networks (the package is imported only for --graph)."""
    try:
        import graphviz  # noqa: PLC0415 - an optional extra: cni-bridge-py[inspect]
    except ImportError as e:
        raise GraphError(
            "--graph needs the Python package graphviz: pip install 'cni-bridge-py[inspect]'"
        ) from e
    top = graphviz.Digraph("cni", graph_attr={"rankdir": "LR", "fontname": "Helvetica"})
    top.attr("node", fontname="Helvetica", fontsize="10")
    top.attr("edge", fontname="Helvetica", fontsize="9")
    for number, summary in enumerate(summaries):
        with top.subgraph(name=f"cluster_{number}") as net:
            _network(net, summary, f"n{number}")
    return top


def _network(g: Any, s: NetworkSummary, prefix: str) -> None:
    healthy = not s.problems
    g.attr(label=f"network {s.name}", color=HEALTHY if s.ok else ANOMALY)
    bridge = f"{prefix}_bridge"
    bridge_label = "\n".join(
        [f"bridge {s.bridge}" + ("" if s.bridge_present else " (missing)"), *s.gateways]
    )
    g.node(bridge, bridge_label, shape="box", style="rounded,bold", color=_color(healthy))
    masq = f"{prefix}_masq"
    if s.masquerade != "off":
        g.node(masq, f"MASQUERADE\n({s.masquerade})", shape="hexagon")
        g.node(f"{prefix}_out", "outside\n(host routes)", shape="plaintext")
        g.edge(masq, f"{prefix}_out")
    for number, row in enumerate(s.rows):
        _attachment(g, row, f"{prefix}_a{number}", bridge, masq if s.masquerade != "off" else "")


def _attachment(g: Any, row: Row, prefix: str, bridge: str, masq: str) -> None:
    color = _color(row.ok)
    container = f"{prefix}_ns"
    lines = [
        f"netns {row.netns or '?'}",
        f"{row.ifname or '?'} {row.mac}".rstrip(),
        *row.addresses,
        f"container {row.container_id or '?'}",
    ]
    if not row.ok:
        lines.append(row.state)
    g.node(container, "\n".join(lines), shape="box", color=color, fontcolor=color)
    if row.host_veth:
        veth = f"{prefix}_veth"
        g.node(veth, f"veth {row.host_veth}", shape="ellipse", color=color, fontcolor=color)
        g.edge(bridge, veth, arrowhead="none", color=color)
        g.edge(veth, container, label="veth pair", arrowhead="none", dir="none", color=color)
    else:
        g.edge(bridge, container, label="no veth", style="dashed", color=ANOMALY, fontcolor=ANOMALY)
    if row.nat and masq:
        chain = f"{prefix}_nat"
        g.node(chain, row.nat, shape="note", color=color, fontcolor=color)
        g.edge(container, chain, label=" ".join(a.split("/")[0] for a in row.addresses))
        g.edge(chain, masq)


def _color(ok: bool) -> str:
    return HEALTHY if ok else ANOMALY


def write(summaries: Sequence[NetworkSummary], target: str) -> None:
    path = Path(target)
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise GraphError(f"--graph {target}: name a .svg, .png or .dot file")
    graph = build(summaries)
    if fmt == "dot":
        path.write_text(graph.source)
        return
    import graphviz  # noqa: PLC0415

    try:
        data = graph.pipe(format=fmt)
    except graphviz.ExecutableNotFound as e:
        raise GraphError(
            "--graph needs Graphviz's dot: apt-get install graphviz (or write a .dot file)"
        ) from e
    path.write_bytes(data)
