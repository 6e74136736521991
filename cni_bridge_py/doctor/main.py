"""`cni-bridge-py doctor`: arguments, the reads, the findings, --fix, the exit code."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from cni_bridge_py.doctor import checks, read
from cni_bridge_py.doctor.facts import ERROR, WARNING, Finding, NetworkFacts
from cni_bridge_py.inspect import read as inspect_read
from cni_bridge_py.inspect.main import add_selection, selected
from cni_bridge_py.inspect.model import NetworkSpec

DESCRIPTION = """\
Find what breaks (or will break) this host's bridge networks, one line each with what to do:
forwarding off, iptables variants mixed, br_netfilter, a route taking a network's subnet, the
bridge name taken or another address on the bridge, the data dir not writable, no masquerade
backend, the agent's socket stale or not root-only, and every anomaly `inspect` finds.
Changes nothing, unless --fix: then GC (the plugin's own, with the attachments libcni's cache
holds and the healthy ones as valid) removes the leftovers it lists first, and the checks run
again.

Networks come from the config dir as cnitool finds them (NETCONFPATH, default
/etc/cni/net.d; every bridge network there without NETWORK), or from --conf FILE.

Exit status: 0 when no error is found (warnings allowed, unless --strict), 1 when an error
(or with --strict a warning) remains, 2 on a usage or config error."""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="cni-bridge-py doctor",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_selection(p, "check")
    p.add_argument("--fix", action="store_true", help="remove leftovers with GC, then recheck")
    p.add_argument("--strict", action="store_true", help="warnings fail the exit status too")
    return p


def main(argv: list[str], env: Mapping[str, str] | None = None) -> int:
    args = parser().parse_args(argv)
    environment = dict(os.environ) if env is None else env
    networks = selected(
        "doctor", args, lambda: inspect_read.load_networks(environment, args.networks, args.conf)
    )
    if networks is None:
        return 2
    findings, facts = examine(networks, environment)
    if args.fix and any(checks.gc_removes(f, row) for f in facts for row in f.summary.rows):
        report(findings, "before --fix")
        fix(networks, facts, environment)
        findings, facts = examine(networks, environment)
    report(findings)
    return checks.exit_code(findings, args.strict)


def examine(
    networks: Sequence[tuple[NetworkSpec, dict[str, Any]]], env: Mapping[str, str]
) -> tuple[list[Finding], list[NetworkFacts]]:
    specs = [spec for spec, _ in networks]
    facts = [read.network_facts(spec, env) for spec in specs]
    findings = checks.host_findings(read.host_facts(env, specs), specs)
    for one in facts:
        findings += checks.network_findings(one)
    return findings, facts


def fix(
    networks: Sequence[tuple[NetworkSpec, dict[str, Any]]],
    facts: Sequence[NetworkFacts],
    env: Mapping[str, str],
) -> None:
    from cni_bridge_py.doctor.fix import run_gc  # noqa: PLC0415 - the verbs, only with --fix

    for (spec, plugin), one in zip(networks, facts, strict=True):
        planned = [
            f"{checks.describe(row)}: {', '.join(things)}"
            for row in one.summary.rows
            if (things := checks.gc_removes(one, row))
        ]
        if not planned:
            continue
        print(f"fix: {spec.name}: GC will remove:")
        for line in planned:
            print(f"  {line}")
        ok, lines = run_gc(plugin, checks.gc_valid(one), env)
        for line in lines:
            print(f"  {line}")
        if not ok:
            print(f"fix: {spec.name}: GC failed")
    sys.stdout.flush()


def report(findings: Sequence[Finding], when: str = "") -> None:
    for finding in findings:
        print(finding.line())
    errors = sum(f.severity == ERROR for f in findings)
    warnings = sum(f.severity == WARNING for f in findings)
    suffix = f" {when}" if when else ""
    print(f"doctor: {errors} error(s), {warnings} warning(s){suffix}")
    sys.stdout.flush()
