"""Side-by-side runs: one scenario (a network config and a sequence of calls) on two lanes,
each in its own throwaway host namespace with its own data dir, then a readable diff.

A lane executes the plugin exactly as tests/support/plugin.py does (`ip netns exec <host>
<exe>` with CNI_* variables and the config on stdin). The "reference" lane runs the Debian
reference bridge (which finds host-local on CNI_PATH=/usr/lib/cni), the "ours" lane the
installed launcher; a call can pin the other plugin (mixed cases). After every call the lane
records the exit code, stdout, the host namespace, every container namespace and the store.
"""

from __future__ import annotations

import copy
import difflib
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.conformance import capture
from tests.conformance.normalize import ZERO_MAC, Labels, canonical_mac, keep_macs
from tests.support.netns import Namespace, NamespaceFactory, unique
from tests.support.plugin import REFERENCE_DIR, Plugin, installed_plugin

REFERENCE_BRIDGE = REFERENCE_DIR / "bridge"
BRIDGE = "cbr0"
NETWORK = "confnet"
NS_TAG = "cf"  # in every namespace name this suite makes (cbpt<pid><rand>-cf...)
TMP = "@TMP@"  # in a config string: the lane's private directory (scenario files live there)

Record = dict[str, Any]
Trace = list[Record]


@dataclass(frozen=True)
class Call:
    """One plugin execution. The container tag names both the container namespace and the
    container ID; `netns` is "own" (that namespace), "empty", "unset" or "missing"."""

    verb: str
    container: str = "red"
    netns: str = "own"
    ifname: str = "eth0"
    cni_args: str = ""
    conf: Mapping[str, Any] | None = None  # replaces these top-level keys of the scenario's
    stdin: bytes | None = None  # raw stdin instead of the config (malformed JSON)
    prev_result: bool = False  # add this lane's last ADD result for the container+ifname
    by: str = ""  # "" the lane's own plugin; "ref" or "ours" pins one (mixed cases)
    ours_code: int | None = None  # our typed code where the reference answers 999

    def describe(self) -> str:
        extra = [f"netns={self.netns}"] if self.netns != "own" else []
        extra += [f"ifname={self.ifname}"] if self.ifname != "eth0" else []
        extra += [f"CNI_ARGS={self.cni_args}"] if self.cni_args else []
        extra += ["prevResult"] if self.prev_result else []
        extra += [f"by {self.by}"] if self.by else []
        return " ".join([self.verb, self.container, *extra])


@dataclass(frozen=True)
class DeleteNetns:
    """The runtime removes a container namespace (before a late DEL)."""

    container: str

    def describe(self) -> str:
        return f"delete netns {self.container}"


Step = Call | DeleteNetns


@dataclass(frozen=True)
class Scenario:
    id: str
    conf: Mapping[str, Any]
    steps: tuple[Step, ...]
    differences: tuple[str, ...] = ()  # intended differences (or known bugs) that must show
    setup: Callable[[Namespace], None] | None = None  # prepares each lane's host namespace
    keep_macs: tuple[str, ...] = ()  # literal MACs the scenario asks for
    files: Mapping[str, str] = field(default_factory=dict)  # written to each lane's @TMP@
    marks: tuple[Any, ...] = ()


def netconf(**keys: Any) -> dict[str, Any]:
    """The scenario base: bridge cbr0, host-local on 10.188.0.0/24 (dataDir set per lane)."""
    base: dict[str, Any] = {
        "cniVersion": "1.0.0",
        "name": NETWORK,
        "type": "bridge",
        "bridge": BRIDGE,
        "ipam": {"type": "host-local", "subnet": "10.188.0.0/24"},
    }
    base.update(keys)
    return base


def ipam(**keys: Any) -> dict[str, Any]:
    return {"type": "host-local", **keys}


@dataclass
class Lane:
    name: str
    plugins: Mapping[str, Plugin]  # "ref" and "ours", both bound to this lane's host
    default: str  # which of them an unpinned call runs
    host: Namespace
    namespaces: NamespaceFactory
    data_dir: Path
    labels: Labels = field(default_factory=Labels)
    containers: dict[str, Namespace] = field(default_factory=dict)
    results: dict[tuple[str, str], Any] = field(default_factory=dict)
    missing_netns: str = field(default_factory=lambda: f"/var/run/netns/{unique('missing')}")
    log: list[str] = field(default_factory=list)  # one line per step: exit code and message

    @property
    def tmp(self) -> Path:
        return self.data_dir.parent

    def __post_init__(self) -> None:
        self.labels.literal(str(self.data_dir), "<dataDir>")
        self.labels.literal(str(self.tmp), TMP)
        self.labels.literal(self.host.name, "<host>")
        self.labels.literal(self.missing_netns, "<netns:missing>")

    def container(self, tag: str) -> Namespace:
        if tag not in self.containers:
            ns = self.namespaces.new(f"{NS_TAG}{tag}")
            self.containers[tag] = ns
            self.labels.literal(ns.path, f"<netns:{tag}>")
            self.labels.literal(ns.name, f"<ns:{tag}>")
        return self.containers[tag]

    def delete_container(self, tag: str) -> None:
        """`ip netns del`, then wait for the kernel to finish: the namespace's veths (and so
        their host ends) are destroyed asynchronously, a little later."""
        ns = self.container(tag)
        peers = {lk.get("link_index") for lk in ns.ip_json("link", "show")} - {None}
        ns.delete()
        deadline = time.monotonic() + 5
        while any(lk["ifindex"] in peers for lk in self.host.ip_json("link", "show")):
            assert time.monotonic() < deadline, f"the host ends of {tag}'s veths stay"
            time.sleep(0.05)

    def config(self, scenario: Scenario, call: Call) -> bytes:
        if call.stdin is not None:
            return call.stdin
        conf = copy.deepcopy(dict(scenario.conf))
        conf.update(copy.deepcopy(dict(call.conf or {})))
        ipam_conf = conf.get("ipam")
        if isinstance(ipam_conf, dict) and ipam_conf.get("type") == "host-local":
            ipam_conf.setdefault("dataDir", str(self.data_dir))
        prev = self.results.get((call.container, call.ifname))
        if call.prev_result and prev is not None:  # (none if that ADD failed on this lane)
            conf["prevResult"] = prev
        return json.dumps(conf).replace(TMP, str(self.tmp)).encode()

    def netns_env(self, call: Call) -> tuple[str, tuple[str, ...]]:
        if call.netns == "own":
            return self.container(call.container).path, ()
        if call.netns == "missing":
            return self.missing_netns, ()
        if call.netns == "unset":
            return "", ("CNI_NETNS",)
        assert call.netns == "empty", call.netns
        return "", ()

    def execute(self, scenario: Scenario, step: Step) -> Record:
        if isinstance(step, DeleteNetns):
            self.delete_container(step.container)
            self.log.append(step.describe())
            return self.record(step.describe(), None, "")
        netns, unset = self.netns_env(step)
        plugin = self.plugins[step.by or self.default]
        outcome = plugin.run(
            step.verb,
            self.config(scenario, step),
            container_id=step.container,
            netns=netns,
            ifname=step.ifname,
            cni_args=step.cni_args,
            unset=unset,
        )
        if step.verb == "ADD" and outcome.code == 0:
            self.results[(step.container, step.ifname)] = json.loads(outcome.stdout)
        self.log.append(f"{step.describe()}: exit {outcome.code} {error_text(outcome.stdout)}")
        return self.record(step.describe(), outcome.code, outcome.stdout)

    def record(self, what: str, code: int | None, stdout: str) -> Record:
        host = capture.host_state(self.host)
        containers = {tag: capture.container_state(ns) for tag, ns in self.containers.items()}
        self.labels.learn(host, containers)
        view = stdout_view(code, stdout)
        if isinstance(view, dict) and "json" in view:
            result_macs(view["json"], host, containers, self.containers)
        for state in [host, *containers.values()]:
            own_macs(state, self.labels.keep)
        return {
            "step": what,
            "exit": code,
            "stdout": view,
            "host": host,
            "containers": containers,
            "store": capture.store(self.data_dir),
        }

    def run(self, scenario: Scenario) -> Trace:
        self.labels.keep |= keep_macs(scenario.keep_macs)
        for name, text in scenario.files.items():
            (self.tmp / name).write_text(text)
        if scenario.setup is not None:
            scenario.setup(self.host)
        raw = [self.execute(scenario, step) for step in scenario.steps]
        trace: Trace = self.labels.apply(raw)
        return trace


def stdout_view(code: int | None, stdout: str) -> Any:
    """A result or VERSION object as printed (key order kept); an error as its code only (the
    message is free text); how it was formatted (Go: 4-space indent, no final newline)."""
    if code is None or not stdout.strip():
        return stdout
    try:
        value = json.loads(stdout)
    except ValueError:
        return {"unparsable": stdout}
    if code != 0 and isinstance(value, dict):
        return {"error": value.get("code"), "has-msg": bool(value.get("msg"))}
    layout = "indented" if "\n " in stdout else "compact"
    return {"json": value, "format": f"{layout}, final newline: {stdout.endswith(chr(10))}"}


def error_text(stdout: str) -> str:
    """`code N: msg` of an error object, for the step log."""
    try:
        value = json.loads(stdout)
    except ValueError:
        return ""
    if not isinstance(value, dict) or "code" not in value:
        return ""
    return f"code {value['code']}: {value.get('msg', '')}"


def own_macs(state: Any, keep: set[str]) -> None:
    """A link's own MAC is random: shown as "<own>" (a requested literal MAC stays)."""
    if not isinstance(state, dict):
        return
    for link in state["links"]:
        if link["mac"] != ZERO_MAC and canonical_mac(link["mac"]) not in keep:
            link["mac"] = "<own>"


def result_macs(
    result: Any,
    host: dict[str, Any],
    containers: dict[str, Any],
    namespaces: dict[str, Namespace],
) -> None:
    """Each result interface's MAC against the kernel's for that interface, read right after
    the call: "<kernel's>" when they agree (which MAC the kernel picked is random)."""
    if not isinstance(result, dict):
        return
    by_path = {ns.path: tag for tag, ns in namespaces.items()}
    for iface in result.get("interfaces", []):
        if not isinstance(iface, dict) or "mac" not in iface:
            continue
        state = (
            containers.get(by_path.get(iface.get("sandbox", ""), ""))
            if "sandbox" in iface
            else host
        )
        link = (
            next((lk for lk in state["links"] if lk["name"] == iface.get("name")), None)
            if isinstance(state, dict)
            else None
        )
        if link is not None and canonical_mac(link["mac"]) == canonical_mac(iface["mac"]):
            iface["mac"] = "<kernel's>"


def make_lane(
    name: str,
    default: str,
    namespaces: NamespaceFactory,
    tmp: Path,
    bin_dir: Path,
    *,
    only: str = "",
) -> Lane:
    """A fresh host namespace (lo up) and data dir. `default` is the plugin an unpinned call
    runs; with `only`, pinned calls run that plugin too (the baseline of a mixed case). Ours
    is the launcher installed in `bin_dir`."""
    host = namespaces.host(f"{NS_TAG}h{name[:4]}")
    data_dir = tmp / name / "networks"
    data_dir.parent.mkdir(parents=True)
    plugins = {
        "ref": Plugin(REFERENCE_BRIDGE, host, str(REFERENCE_DIR)),
        "ours": installed_plugin(bin_dir, host, REFERENCE_DIR),
    }
    if only:
        plugins = dict.fromkeys(plugins, plugins[only])
    return Lane(name, plugins, default, host, namespaces, data_dir)


def render(trace: Trace) -> list[str]:
    lines: list[str] = []
    for index, record in enumerate(trace):
        lines.append(f"=== step {index}: {record['step']}")
        lines.extend(json.dumps(record, indent=1, sort_keys=False).splitlines())
    return lines


def diff(reference: Trace, ours: Trace, names: tuple[str, str] = ("reference", "ours")) -> str:
    """'' when equal; otherwise a unified diff of the two normalised traces."""
    left, right = render(reference), render(ours)
    if left == right:
        return ""
    return "\n".join(difflib.unified_diff(left, right, names[0], names[1], n=6, lineterm=""))
