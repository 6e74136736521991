"""`cni-bridge-py inspect`: arguments, the reads, the report, the exit code."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping

from cni_bridge_py.inspect import join, read, render

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
    p.add_argument("networks", nargs="*", metavar="NETWORK", help="network names (default: all)")
    p.add_argument("--conf", metavar="FILE", help="inspect the network of this config file only")
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
    if args.conf and args.networks:
        sys.stderr.write("inspect: give NETWORK names or --conf, not both\n")
        return 2
    try:
        specs = read.load_specs(environment, args.networks, args.conf)
    except read.InspectError as e:
        sys.stderr.write(f"inspect: {e}\n")
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
