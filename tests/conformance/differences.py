"""Where our plugin and the reference differ, by name.

INTENDED differences are improvements, each documented in docs/differences.md. KNOWN_BUGS are
divergences nobody chose: they are reported, pinned here so the rest of the comparison still
runs, and must be deleted from this file when fixed (the suite then says so).

Each entry's `reconcile(step, ref, ours)` looks at one step's normalised records: where the
difference shows, it asserts its exact shape (not just "something differs"), then makes the two
records agree on that point so the remaining diff is empty. A difference a scenario declares,
or that `expected` says must show, fails the scenario when it does not show at all. Entries
that cannot be seen in a side-by-side trace (ours succeeds where the reference cannot even be
asked) are asserted by name in test_ours_only.py with `asserting(name)`.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from tests.conformance.harness import NETWORK, Call, Record, Scenario, Step, Trace
from tests.conformance.normalize import ZERO_MAC

Reconcile = Callable[[Step, Record, Record], bool]
# (scenario, reference trace, our trace, our lane's default plugin) -> the entry must show
Expected = Callable[[Scenario, Trace, Trace, str], bool]

REFERENCE_VERSIONS = ["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0"]
OUR_VERSIONS = [*REFERENCE_VERSIONS, "1.1.0"]
REF_999 = {"error": 999, "has-msg": True}


@dataclass(frozen=True)
class Difference:
    name: str
    bug: bool  # False: intended (docs/differences.md); True: a known plugin bug
    summary: str
    reconcile: Reconcile
    automatic: bool  # tried on every scenario, not only where declared
    expected: Expected


INTENDED: dict[str, Difference] = {}
KNOWN_BUGS: dict[str, Difference] = {}


def never(_scenario: Scenario, _ref: Trace, _ours: Trace, _default: str) -> bool:
    return False


def nothing(_step: Step, _ref: Record, _ours: Record) -> bool:
    """For entries asserted outside side-by-side traces (test_ours_only.py)."""
    return False


def difference(
    name: str,
    summary: str,
    *,
    bug: bool = False,
    automatic: bool = False,
    expected: Expected = never,
) -> Callable[[Reconcile], Reconcile]:
    def register(reconcile: Reconcile) -> Reconcile:
        registry = KNOWN_BUGS if bug else INTENDED
        assert name not in registry, name
        registry[name] = Difference(name, bug, summary, reconcile, automatic, expected)
        return reconcile

    return register


def everything() -> dict[str, Difference]:
    return {**INTENDED, **KNOWN_BUGS}


def asserting(name: str) -> str:
    """The name of a registered difference, for a test that asserts it on its own."""
    assert name in everything(), f"no registered difference {name!r}"
    return name


# --- helpers on normalised records -----------------------------------------------------------


def by_ours(step: Step, default: str) -> bool:
    return isinstance(step, Call) and (step.by or default) == "ours"


def adds_on_both(scenario: Scenario, ref: Trace, ours: Trace, default: str) -> list[Call]:
    """ADDs our plugin made that succeeded on both lanes (so there is state to compare)."""
    return [
        step
        for step, theirs, mine in zip(scenario.steps, ref, ours, strict=True)
        if isinstance(step, Call) and step.verb == "ADD" and by_ours(step, default)
        if theirs["exit"] == 0 and mine["exit"] == 0
    ]


def added_on_both(scenario: Scenario, ref: Trace, ours: Trace, default: str) -> bool:
    return bool(adds_on_both(scenario, ref, ours, default))


def link(state: Any, name: str) -> dict[str, Any] | None:
    if not isinstance(state, dict):
        return None
    return next((lk for lk in state["links"] if lk["name"] == name), None)


def drop_link(state: dict[str, Any], name: str) -> None:
    """Forget a link and what only it carries (its sysctls and per-device routes)."""
    state["links"] = [lk for lk in state["links"] if lk["name"] != name]
    state["sysctl"] = {k: v for k, v in state["sysctl"].items() if f"/{name}/" not in k}
    for table in ("routes4", "routes6"):
        state[table] = [r for r in state[table] if r.get("dev") != name]


def ports_of(state: dict[str, Any], bridge: str) -> list[dict[str, Any]]:
    return [lk for lk in state["links"] if lk["master"] == bridge]


def chain_name(container_id: str) -> str:
    return "CNI-" + hashlib.sha512((NETWORK + container_id).encode()).hexdigest()[:24]


def ours_ok_where_ref_999(step: Step, ref: Record, ours: Record, verb: str) -> bool:
    """`verb` failed on the reference with 999 and succeeded (silently) on ours."""
    if not isinstance(step, Call) or step.verb != verb or ref["exit"] == ours["exit"]:
        return False
    assert (ref["exit"], ref["stdout"]) == (1, REF_999), ref["stdout"]
    assert (ours["exit"], ours["stdout"]) == (0, ""), ours["stdout"]
    ref.update(exit=0, stdout="")
    return True


# --- intended differences: automatic -----------------------------------------------------------


@difference(
    "loopback-up",
    "ADD brings the container's `lo` up; the reference leaves it down.",
    automatic=True,
    expected=added_on_both,
)
def loopback_up(_step: Step, ref: Record, ours: Record) -> bool:
    shown = False
    for tag, state in ours["containers"].items():
        theirs, mine = link(ref["containers"].get(tag), "lo"), link(state, "lo")
        if theirs is None or mine is None or theirs == mine:
            continue
        assert theirs["flags"] == ["LOOPBACK"] and theirs["addresses"] == [], theirs
        assert mine["flags"] == ["LOOPBACK", "LOWER_UP", "UP"], mine
        assert [a["local"] for a in mine["addresses"]] == ["127.0.0.1", "::1"], mine
        # A loopback reports no carrier: up, its operstate is UNKNOWN.
        assert (theirs["operstate"], mine["operstate"]) == ("DOWN", "UNKNOWN"), (theirs, mine)
        mine.update(
            flags=theirs["flags"], addresses=theirs["addresses"], operstate=theirs["operstate"]
        )
        shown = True
    return shown


def _declares_typed_code(scenario: Scenario, *_: Any) -> bool:
    return any(isinstance(s, Call) and s.ours_code is not None for s in scenario.steps)


@difference(
    "typed-error-codes",
    "Failures carry the spec's typed error codes where the reference answers 999.",
    automatic=True,
    expected=_declares_typed_code,
)
def typed_error_codes(step: Step, ref: Record, ours: Record) -> bool:
    if not isinstance(step, Call) or step.ours_code is None:
        return False
    assert (ref["exit"], ref["stdout"]) == (1, REF_999), ref["stdout"]
    want = {"error": step.ours_code, "has-msg": True}
    assert (ours["exit"], ours["stdout"]) == (1, want), ours["stdout"]
    ours["stdout"] = dict(REF_999)
    return True


def _calls_version(scenario: Scenario, *_: Any) -> bool:
    return any(isinstance(s, Call) and s.verb == "VERSION" for s in scenario.steps)


@difference(
    "version-1.1.0",
    "VERSION reports spec 1.1.0 (GC, STATUS) besides 0.1.0 to 1.0.0.",
    automatic=True,
    expected=_calls_version,
)
def version_1_1_0(step: Step, ref: Record, ours: Record) -> bool:
    if not isinstance(step, Call) or step.verb != "VERSION":
        return False
    theirs = {"cniVersion": "1.0.0", "supportedVersions": REFERENCE_VERSIONS}
    mine = {"cniVersion": "1.1.0", "supportedVersions": OUR_VERSIONS}
    assert ref["stdout"]["json"] == theirs, ref["stdout"]
    assert ours["stdout"]["json"] == mine, ours["stdout"]
    ours["stdout"]["json"] = theirs
    return True


def _common_store_file(_scenario: Scenario, ref: Trace, ours: Trace, _default: str) -> bool:
    return any(
        name in theirs["store"] and _is_store_file(name)
        for theirs, mine in zip(ref, ours, strict=True)
        for name in mine["store"]
    )


def _is_store_file(name: str) -> bool:
    return name != "." and not name.endswith(("/", "lock"))


@difference(
    "store-files-0600",
    "host-local's reservation and last_reserved_ip files are created 0600 (as current "
    "upstream); Debian's reference 1.1.1 creates them 0644.",
    automatic=True,
    expected=_common_store_file,
)
def store_files_0600(_step: Step, ref: Record, ours: Record) -> bool:
    shown = False
    for name, entry in ours["store"].items():
        theirs = ref["store"].get(name)
        if not _is_store_file(name) or theirs is None or theirs == entry:
            continue
        assert (theirs["mode"], entry["mode"]) == ("0o644", "0o600"), (name, theirs, entry)
        entry["mode"] = theirs["mode"]
        shown = True
    return shown


# --- intended differences: declared by the scenarios that show them ----------------------------


@difference(
    "del-without-netns-removes-nat",
    "DEL with an empty or vanished CNI_NETNS also removes the container's NAT chain and "
    "POSTROUTING jump; the reference leaks both (plugins#810).",
)
def del_without_netns_removes_nat(_step: Step, ref: Record, ours: Record) -> bool:
    shown = False
    for key in ("iptables-nat", "nft"):
        leaked = [line for line in ref["host"][key] if line not in ours["host"][key]]
        if not leaked:
            continue
        assert all(line in ref["host"][key] for line in ours["host"][key]), key
        chains = [c for c in map(chain_name, ref["containers"]) if any(c in x for x in leaked)]
        assert len(chains) == 1, (key, leaked)
        # Exactly one container's chain, its two rules and the POSTROUTING jump to it.
        assert all(chains[0] in line for line in leaked) and len(leaked) == 4, leaked
        ref["host"][key] = list(ours["host"][key])
        shown = True
    return shown


@difference(
    "failed-add-rolled-back",
    "A failed ADD removes the veth pair it made, so a retry or DEL finds nothing in the way; "
    "the reference leaves both ends behind when IPAM or a later step fails (plugins#29), and "
    "its DEL after such a failure itself fails (999: the leftover interface carries an "
    "address whose never-made NAT chain DEL then tries to remove). A bridge the failed ADD "
    "created goes too when no port joined it (the reference leaves it, with its link-local "
    "address and route), and a request refused before IPAM leaves no data dir or lock file.",
)
def failed_add_rolled_back(step: Step, ref: Record, ours: Record) -> bool:
    shown = _failed_del_after_failed_add(step, ref, ours)
    for tag, state in ref["containers"].items():
        mine = ours["containers"].get(tag)
        if not isinstance(state, dict) or not isinstance(mine, dict):
            continue
        extra = [lk for lk in state["links"] if link(mine, lk["name"]) is None]
        if not extra:
            continue
        (leaked,) = extra
        host_end = f"<veth:{tag}/{leaked['name']}>"
        port = link(ref["host"], host_end)
        assert leaked["kind"] == "veth" and port is not None and port["master"], (leaked, port)
        assert link(ours["host"], host_end) is None
        drop_link(state, leaked["name"])
        drop_link(ref["host"], host_end)
        _bridge_follows_ports(ref["host"], ours["host"], port["master"])
        shown = True
    bridge = _bridge_made_by_the_failed_add(ref["host"], ours["host"])
    return _store_made_by_the_failed_add(ref, ours) or bridge or shown


def _store_made_by_the_failed_add(ref: Record, ours: Record) -> bool:
    """Ours refuses a request it can refuse before touching the store: no data dir, no lock
    file, where the reference's IPAM made both before refusing."""
    made = ref["store"]
    if ours["store"] or not made:
        return False
    if not all(name.endswith("/") or name in (".", *_lock_files(made)) for name in made):
        return False
    ref["store"] = {}
    return True


def _lock_files(store: dict[str, Any]) -> list[str]:
    return [name for name in store if name.endswith("/lock") and store[name].get("bytes") == "b''"]


def _bridge_made_by_the_failed_add(ref: dict[str, Any], ours: dict[str, Any]) -> bool:
    """A port-less bridge the reference left where ours has none: ours removed the bridge its
    failed ADD had created. It goes from the reference's side with what the kernel and the
    ADD gave it (its link-local route, its sysctls)."""
    left = [
        lk["name"]
        for lk in ref["links"]
        if lk["kind"] == "bridge"
        and link(ours, lk["name"]) is None
        and not ports_of(ref, lk["name"])
    ]
    for bridge in left:
        drop_link(ref, bridge)
        ref["routes6"] = [r for r in ref["routes6"] if r.get("dev") != bridge]
        ref["sysctl"] = {k: v for k, v in ref["sysctl"].items() if f"/{bridge}/" not in k}
    return bool(left)


def _bridge_follows_ports(ref: dict[str, Any], ours: dict[str, Any], bridge: str) -> None:
    """A bridge's carrier (LOWER_UP), operstate and STP bridge id depend on its ports: a
    bridge that never had one has carrier, operstate UNKNOWN and the id
    8000.00:00:00:00:00:00 (the kernel computes it when a port comes); one whose only port
    has no carrier has none and is DOWN; one whose port forwards is UP. Without the leaked port
    the reference's bridge would look like ours."""
    theirs, mine = link(ref, bridge), link(ours, bridge)
    if theirs is None or mine is None or ports_of(ref, bridge) or ports_of(ours, bridge):
        return
    if set(theirs["flags"]) ^ set(mine["flags"]) == {"LOWER_UP"}:
        theirs["flags"] = list(mine["flags"])
    if theirs["operstate"] != mine["operstate"]:
        assert {theirs["operstate"], mine["operstate"]} <= {"UP", "DOWN", "UNKNOWN"}, (
            theirs,
            mine,
        )
        theirs["operstate"] = mine["operstate"]
    ids = (theirs["bridge"]["bridge_id"], mine["bridge"]["bridge_id"])
    if ids == ("8000.<own mac>", f"8000.{ZERO_MAC}"):
        theirs["bridge"]["bridge_id"] = mine["bridge"]["bridge_id"]


def _failed_del_after_failed_add(step: Step, ref: Record, ours: Record) -> bool:
    if not ours_ok_where_ref_999(step, ref, ours, "DEL"):
        return False
    # The leaked port was the bridge's only one: an unpinned bridge then drops to MAC zero.
    for mine in ours["host"]["links"]:
        theirs = link(ref["host"], mine["name"])
        if mine["kind"] == "bridge" and theirs is not None and theirs["mac"] != mine["mac"]:
            assert (theirs["mac"], mine["mac"]) == ("00:00:00:00:00:00", "<own>"), theirs
            theirs["mac"] = mine["mac"]
    return True


@difference(
    "bridge-mac-always-pinned",
    "Every gateway ADD pins the bridge MAC, also when the gateway address was already on the "
    "bridge; the reference pins it only when it adds the address, so a bridge made beforehand "
    "keeps following its ports' MACs and drops to 00:00:00:00:00:00 when the last one leaves "
    "(cni#285).",
)
def bridge_mac_always_pinned(_step: Step, ref: Record, ours: Record) -> bool:
    shown = False
    for mine in ours["host"]["links"]:
        theirs = link(ref["host"], mine["name"])
        if mine["kind"] != "bridge" or theirs is None or theirs["mac"] == mine["mac"]:
            continue
        assert (theirs["mac"], mine["mac"]) == ("00:00:00:00:00:00", "<own>"), (theirs, mine)
        assert not ports_of(ref["host"], mine["name"]), theirs
        theirs["mac"] = mine["mac"]
        shown = True
    return shown


@difference(
    "check-verifies-what-add-made",
    "CHECK succeeds on what ADD made; the reference's CHECK fails (999) in L2 mode (it runs "
    "IPAM CHECK with an empty type: 'no plugin name provided') and for a route configured "
    "without `gw` (ADD installs it via the gateway, CHECK looks for it without one).",
)
def check_verifies_what_add_made(step: Step, ref: Record, ours: Record) -> bool:
    return ours_ok_where_ref_999(step, ref, ours, "CHECK")


@difference(
    "shared-nat-chain-kept",
    "DEL of one interface keeps the NAT chain its container shares with another interface on "
    "the same network; the reference flushes it (the other interface loses masquerade) and "
    "fails with 999 (CHAIN_DEL busy).",
)
def shared_nat_chain_kept(step: Step, ref: Record, ours: Record) -> bool:
    lost = [x for x in ours["host"]["iptables-nat"] if x not in ref["host"]["iptables-nat"]]
    if not lost:
        return False
    chains = [c for c in map(chain_name, ours["containers"]) if lost[0].startswith(f"-A {c} ")]
    assert len(chains) == 1 and len(lost) == 2, lost
    assert all(x.startswith(f"-A {chains[0]} ") for x in lost), lost
    lost_nft = [x for x in ours["host"]["nft"] if x not in ref["host"]["nft"]]
    assert len(lost_nft) == 2 and all(f"/chain {chains[0]}: " in x for x in lost_nft), lost_nft
    ref["host"]["iptables-nat"] = list(ours["host"]["iptables-nat"])
    ref["host"]["nft"] = list(ours["host"]["nft"])
    if isinstance(step, Call) and step.verb == "DEL" and ref["exit"] != ours["exit"]:
        ours_ok_where_ref_999(step, ref, ours, "DEL")  # the reference's DEL that flushed it
    return True


@difference(
    "netns-checked-first",
    "ADD checks CNI_NETNS before touching the host: a missing namespace creates nothing; the "
    "reference creates the bridge first, then fails.",
)
def netns_checked_first(step: Step, ref: Record, ours: Record) -> bool:
    if not isinstance(step, Call) or step.netns != "missing":
        return False
    made = [lk for lk in ref["host"]["links"] if link(ours["host"], lk["name"]) is None]
    assert [lk["kind"] for lk in made] == ["bridge"] and not ports_of(ref["host"], "cbr0"), made
    drop_link(ref["host"], made[0]["name"])
    return True


@difference(
    "ipam-dns-kept",
    "The DNS an IPAM plugin returns (host-local resolvConf, static dns) is kept in the result "
    "when the config has no `dns` (as current upstream); Debian's 1.1.1 bridge replaces it "
    "with the empty config value.",
)
def ipam_dns_kept(step: Step, ref: Record, ours: Record) -> bool:
    if not isinstance(step, Call) or step.verb != "ADD" or ours["exit"] != 0:
        return False
    theirs, mine = ref["stdout"]["json"], ours["stdout"]["json"]
    if theirs.get("dns") == mine.get("dns"):
        return False
    assert theirs["dns"] == {} and mine["dns"].get("nameservers"), (theirs, mine)
    mine["dns"] = {}
    return True


@difference(
    "ipv6-gateway-nodad",
    "The bridge's IPv6 gateway address is added with IFA_F_NODAD (usable at once); the "
    "reference's stays tentative for the ~1-2 s of duplicate address detection.",
)
def ipv6_gateway_nodad(_step: Step, ref: Record, ours: Record) -> bool:
    shown = False
    for mine in ours["host"]["links"]:
        theirs = link(ref["host"], mine["name"])
        if mine["kind"] != "bridge" or theirs is None:
            continue
        for address in mine["addresses"]:
            if not address.pop("nodad", False):
                continue
            assert address["family"] == "inet6" and address["scope"] == "global", address
            assert address in theirs["addresses"], (address, theirs["addresses"])
            shown = True
    return shown


@difference(
    "keep-addr-on-down",
    "The container interface of an IPv6 attachment has keep_addr_on_down=1 (as current "
    "upstream): its IPv6 addresses survive the link going down; Debian's 1.1.1 leaves 0.",
)
def keep_addr_on_down(_step: Step, ref: Record, ours: Record) -> bool:
    shown = False
    for tag, state in ours["containers"].items():
        theirs = ref["containers"].get(tag)
        if not isinstance(state, dict) or not isinstance(theirs, dict):
            continue
        for key, value in state["sysctl"].items():
            if not key.endswith("/keep_addr_on_down") or theirs["sysctl"].get(key) == value:
                continue
            ifname = key.split("/")[2]
            mine = link(state, ifname)
            assert mine is not None and mine["kind"] == "veth", (key, mine)
            assert any(
                a["family"] == "inet6" and a["scope"] == "global" for a in mine["addresses"]
            ), mine
            assert (theirs["sysctl"][key], value) == ("0", "1"), key
            state["sysctl"][key] = theirs["sysctl"][key]
            shown = True
    return shown


# --- intended differences asserted on their own (test_ours_only.py) ----------------------------

difference(
    "ipam-without-type-rejected",
    "An `ipam` object with settings but no `type` is a config error (code 7); the reference "
    "silently runs in L2 mode, so a typo'd IPAM section yields containers without addresses.",
)(nothing)

difference(
    "ipv4-gateways-of-all-sets",
    "With isGateway and two IPv4 range sets, every ADD puts both sets' gateways on the bridge "
    "and succeeds; the reference refuses every ADD on such a network (999: 'already has an IP "
    "address different from' the second gateway).",
)(nothing)

difference(
    "cni-args-ip-known",
    "CNI_ARGS `IP=` is accepted without `IgnoreUnknown=1`: this plugin is also the IPAM, so IP "
    "is one of its own keys; the reference bridge rejects it as an unknown arg (999).",
)(nothing)


# --- known bugs (reported; delete the entry when fixed) -----------------------------------------

# None open. An entry: @difference(name, summary, bug=True, ...) on its reconcile function.


# --- applying them ------------------------------------------------------------------------------


def reconcile(
    scenario: Scenario, ref: Trace, ours: Trace, ours_default: str = "ours", *, mixed: bool = False
) -> list[str]:
    """Apply every declared or automatic difference step by step; fail if one that must show
    did not (for a mixed comparison, where both lanes run both plugins, only declared ones
    must). Returns the names that showed."""
    registry = everything()
    unknown = [name for name in scenario.differences if name not in registry]
    assert not unknown, f"{scenario.id}: no such difference {unknown}"
    active = [d for d in registry.values() if d.automatic or d.name in scenario.differences]
    shown: Counter[str] = Counter()
    for step, theirs, mine in zip(scenario.steps, ref, ours, strict=True):
        for entry in active:
            if entry.reconcile(step, theirs, mine):
                shown[entry.name] += 1
    for entry in active:
        must = entry.name in scenario.differences
        must = must or (not mixed and entry.expected(scenario, ref, ours, ours_default))
        if must and not shown[entry.name]:
            what = "known bug" if entry.bug else "intended difference"
            hint = " (fixed? delete it from KNOWN_BUGS)" if entry.bug else ""
            pytest.fail(f"{scenario.id}: {what} {entry.name!r} did not show{hint}")
    return sorted(shown)
