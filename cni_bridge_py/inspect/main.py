"""`cni-bridge-py inspect`: arguments, the reads, the report, the exit code."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Mapping
from typing import TypeVar

from cni_bridge_py.inspect import join, read, render

T = TypeVar("T")

DESCRIPTION = """\
Show what bridge networks hold: one row per attachment, joined from host-local's store, the
kernel (bridge, host veths, the containers' ends), the masquerade rules (iptables and
nftables) and libcni's result cache, with a state: ok, or what is missing or extra. Read-only:
nothing is created, changed or locked. Works on the reference plugins' state too.

Networks come from the config dir as cnitool finds them (NETCONFPATH, default
/etc/cni/net.d; every bridge network there without NETWORK), or from --conf FILE.
libcni's cache is read from CNI_CACHE_DIR (default /var/lib/cni).

Exit status: 0 when everything is ok, 1 when any anomaly is found, 2 on a usage or config
error."""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="cni-bridge-py inspect",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_selection(p, "inspect")
    p.add_argument("--json", action="store_true", help="JSON for machines instead of the table")
    p.add_argument(
        "--graph",
        metavar="FILE",
        help="also draw the networks with Graphviz: FILE.svg, FILE.png or FILE.dot (DOT text)",
    )
    return p


def main(argv: list[str], env: Mapping[str, str] | None = None) -> int:
    args = parser().parse_args(argv)
    environment = dict(os.environ) if env is None else env
    specs = selected(
        "inspect", args, lambda: read.load_specs(environment, args.networks, args.conf)
    )
    if specs is None:
        return 2
    summaries = [join.summarize(read.observe(spec, environment)) for spec in specs]
    sys.stdout.write(render.to_json(summaries) if args.json else render.table(summaries))
    if args.graph:
        from cni_bridge_py.inspect import graph  # noqa: PLC0415 - only with --graph

        try:
            graph.write(summaries, args.graph)
        except graph.GraphError as e:
            sys.stderr.write(f"inspect: {e}\n")
            return 2
    return 0 if all(s.ok for s in summaries) else 1


def add_selection(p: argparse.ArgumentParser, verb: str) -> None:
    """NETWORK names or --conf FILE: how inspect and doctor choose what to look at."""
    p.add_argument("networks", nargs="*", metavar="NETWORK", help="network names (default: all)")
    p.add_argument("--conf", metavar="FILE", help=f"{verb} the network of this config file only")


def selected(prog: str, args: argparse.Namespace, load: Callable[[], T]) -> T | None:
    """What `load` finds for the chosen networks; None (said on stderr) for a usage or config
    error, which both commands answer with exit 2."""
    if args.conf and args.networks:
        sys.stderr.write(f"{prog}: give NETWORK names or --conf, not both\n")
        return None
    try:
        return load()
    except read.InspectError as e:
        sys.stderr.write(f"{prog}: {e}\n")
        return None
