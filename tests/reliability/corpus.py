"""The fixed corpus of bad requests: each one, run through the installed executable, must get
exactly one CNI error object with the expected code (or, for an idempotent DEL, a silent
success) and change nothing at all.

The corpus runs on an established network: bridge BRIDGE exists with one resident container
(ID "resident", address RESIDENT_IP) in its own namespace, a plain link NOT_A_BRIDGE sits in
the host namespace, and a fresh namespace "victim" is where an ADD would go. Placeholders in
stdin and the environment are filled in by the test: @DATA@ (the IPAM data dir), @TMP@ (a
directory holding a regular file `file`, a directory `dir` and a symlink `link` to the file),
@BIN@ (CNI_PATH) and "@RESIDENT_PREV@" (the resident's ADD result with a wrong MAC).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

NETWORK = "corpusnet"
BRIDGE = "cbrcorpus"
NOT_A_BRIDGE = "notabridge0"
FRESH_BRIDGE = "cbrfresh"  # never created in the corpus's host: a rejected ADD must not
SUBNET = "10.123.0.0/24"
RESIDENT_ID = "resident"
RESIDENT_IP = "10.123.0.2"
VICTIM_ID = "victim1"
MEGABYTES = 4 * 1024 * 1024

# Where CNI_NETNS points: a valid empty namespace, the resident's, or something that is not
# a usable network namespace. "self" and "host" both name the plugin's own namespace.
NETNS_KINDS = (
    "victim",
    "resident",
    "file",
    "dir",
    "symlink",
    "missing",
    "relative",
    "self",
    "host",
    "devnull",
    "mnt-ns",
    "uts-ns",
)

BASE: dict[str, Any] = {
    "cniVersion": "1.0.0",
    "name": NETWORK,
    "type": "cni-bridge-py",
    "bridge": BRIDGE,
    "isGateway": True,
    "ipMasq": True,
    "ipam": {"type": "host-local", "subnet": SUBNET, "dataDir": "@DATA@"},
}
PREV_RESULT: dict[str, Any] = {
    "cniVersion": "1.0.0",
    "interfaces": [{"name": BRIDGE}, {"name": "eth0", "sandbox": "/var/run/netns/x"}],
    "ips": [{"address": "10.123.0.9/24", "interface": 1, "gateway": "10.123.0.1"}],
}


@dataclass(frozen=True)
class Case:
    name: str
    command: str
    stdin: bytes
    # The expected CNI error code; None: an idempotent DEL that must succeed silently.
    code: int | None
    netns: str = "victim"
    env: Mapping[str, str] = field(default_factory=dict)
    unset: tuple[str, ...] = ()
    container_id: str = VICTIM_ID
    ifname: str = "eth0"


def config(version: str = "1.0.0", drop: tuple[str, ...] = (), **paths: Any) -> dict[str, Any]:
    """BASE with `cniVersion`, keys dropped, and values set by dotted path
    (ipam__subnet="..." sets ipam.subnet; a value of None removes the key)."""
    data = copy.deepcopy(BASE)
    data["cniVersion"] = version
    for key in drop:
        data.pop(key, None)
    for dotted, value in paths.items():
        *parents, last = dotted.split("__")
        target = data
        for parent in parents:
            target = target.setdefault(parent, {})
        if value is None:
            target.pop(last, None)
        else:
            target[last] = value
    return data


def raw(data: Any) -> bytes:
    return json.dumps(data).encode()


def c(**paths: Any) -> bytes:
    return raw(config(**paths))


# --- stdin that is not a config object (code 6) ---------------------------------------------


def _decoding() -> Iterator[Case]:
    base = raw(BASE)
    bad: dict[str, bytes] = {
        "empty": b"",
        "whitespace": b" \n\t ",
        "truncated": b'{"cniVersion":"1.0.0","name":',
        "single-quotes": b"{'cniVersion': '1.0.0', 'name': 'x'}",
        "trailing-garbage": base + b" x",
        "two-objects": base + base,
        "not-utf8": b"\xff\xfe\xfd\xfc",
        "nul": b"\x00",
        "raw-control-char": b'{"cniVersion":"1.0.0","name":"a\x01b"}',
        "nan": base[:-1] + b',"mtu":NaN}',
        "infinity": base[:-1] + b',"vlan":Infinity}',
        "lone-surrogate-value": base[:-1] + b',"bridge":"\\ud800"}',
        "lone-surrogate-key": base[:-1] + b',"\\udfff":1}',
        "integer-of-5000-digits": base[:-1] + b',"mtu":1' + b"0" * 5000 + b"}",
        "deep-arrays": b"[" * 200_000,
        "deep-objects": b'{"a":' * 100_000,
        "null": b"null",
        "true": b"true",
        "number": b"-1.5",
        "string": b'"corpusnet"',
        "array": b"[]",
        "array-of-config": b"[" + base + b"]",
        "huge-whitespace-then-garbage": b" " * MEGABYTES + b"x",
        "huge-array": b"[" + b"0," * (MEGABYTES // 2) + b"0]",
        "huge-binary": bytes(range(256)) * (MEGABYTES // 256),
        "huge-unterminated-string": b'{"name":"' + b"a" * MEGABYTES,
    }
    for name, stdin in bad.items():
        yield Case(f"stdin-{name}", "ADD", stdin, 6)
    for command in ("DEL", "CHECK", "GC", "STATUS"):
        yield Case(f"stdin-empty-{command}", command, b"", 6)
        yield Case(f"stdin-garbage-{command}", command, b"{]", 6)


def _names() -> Iterator[Case]:
    names: dict[str, Any] = {
        "missing": None,
        "empty": "",
        "null": "__null__",
        "number": 5,
        "bool": True,
        "list": [NETWORK],
        "object": {"n": NETWORK},
        "slash": "a/b",
        "dotdot-slash": "../etc",
        "dotdot": "..",
        "dot": ".",
        "absolute": "/etc/passwd",
        "leading-dash": "-net",
        "leading-dot": ".net",
        "leading-underscore": "_net",
        "space": "my net",
        "newline": "net\n",
        "nul": "net\u0000x",
        "non-ascii": "n\u00e9t",
    }
    for label, value in names.items():
        data = config()
        if value is None:
            del data["name"]
        else:
            data["name"] = None if value == "__null__" else value
        yield Case(f"name-{label}", "ADD", raw(data), 7)
    # Valid by the spec's pattern, but no directory can be named so: the store says why.
    yield Case("name-huge", "ADD", raw(config(name="n" * MEGABYTES)), 5)
    yield Case("name-missing-DEL", "DEL", raw(config(drop=("name",))), 7)
    yield Case("name-slash-GC", "GC", raw(config("1.1.0", name="a/../b")), 7)


def _versions() -> Iterator[Case]:
    for label, version in {
        "9.9.9": "9.9.9",
        "1.0": "1.0",
        "v1.0.0": "v1.0.0",
        "0.3.2": "0.3.2",
        "2.0.0": "2.0.0",
        "trailing-space": "1.0.0 ",
        "latest": "latest",
        "0.0.0": "0.0.0",
    }.items():
        yield Case(f"version-unknown-{label}", "ADD", raw(config(version)), 1)
    for label, value in {"number": 1, "float": 1.0, "bool": True, "list": [], "null": None}.items():
        data = config()
        data["cniVersion"] = value
        yield Case(f"version-type-{label}", "ADD", raw(data), 7)
    missing = config(drop=("cniVersion",), prevResult=PREV_RESULT)
    for command in ("CHECK", "GC", "STATUS"):
        yield Case(f"version-missing-{command}", command, raw(missing), 1)
    yield Case("version-unknown-DEL", "DEL", raw(config("7.0.0")), 1)
    gated = {
        "CHECK-0.3.1": ("CHECK", "0.3.1"),
        "CHECK-0.2.0": ("CHECK", "0.2.0"),
        "GC-1.0.0": ("GC", "1.0.0"),
        "GC-0.1.0": ("GC", "0.1.0"),
        "STATUS-0.4.0": ("STATUS", "0.4.0"),
    }
    for label, (command, version) in gated.items():
        yield Case(
            f"version-gate-{label}", command, raw(config(version, prevResult=PREV_RESULT)), 1
        )
    two_v4 = [[{"subnet": SUBNET}], [{"subnet": "10.124.0.0/24"}]]
    two_sets = c(version="0.2.0", ipam__subnet=None, ipam__ranges=two_v4)
    yield Case("version-0.2.0-two-ipv4-sets", "ADD", two_sets, 1)


# --- a wrong JSON type for every key (code 7) -------------------------------------------------

TOP_BOOLS = (
    "isGateway",
    "isDefaultGateway",
    "forceAddress",
    "ipMasq",
    "hairpinMode",
    "promiscMode",
    "preserveDefaultVlan",
    "macspoofchk",
    "enabledad",
    "disableContainerInterface",
    "portIsolation",
)


def _types() -> Iterator[Case]:
    wrong: dict[str, tuple[Any, ...]] = {
        **{key: ("true", 1) for key in TOP_BOOLS},
        "mtu": ("1500", 1500.5, True),
        "vlan": ("10", 10.0, False),
        "bridge": (5, ["br"]),
        "ipMasqBackend": (1, {"x": 1}),
        "type": (5, ["cni-bridge-py"]),
        "vlanTrunk": ({"id": 5}, "5"),
        "dns": ("8.8.8.8", [1]),
        "ipam": ("host-local", [1]),
        "runtimeConfig": ("x", [1]),
        "args": ("x", [1]),
        "prevResult": ("x", [1]),
        "ipam__type": (5, True),
        "ipam__subnet": (5, ["10.123.0.0/24"]),
        "ipam__rangeStart": (5, True),
        "ipam__rangeEnd": (5, True),
        "ipam__gateway": (5, True),
        "ipam__dataDir": (5, ["/tmp"]),
        "ipam__resolvConf": (5, True),
        "ipam__ranges": ("x", [["x"]], [{"subnet": SUBNET}]),
        "ipam__routes": ("x", [5], [{"dst": 5}], [{"dst": "0.0.0.0/0", "gw": 5}]),
        "dns__nameservers": ("8.8.8.8", [1]),
        "dns__domain": (5,),
        "dns__search": ("x",),
        "dns__options": (5,),
        "runtimeConfig__mac": (5,),
        "runtimeConfig__ips": ("10.123.0.9", [5]),
        "runtimeConfig__ipRanges": ("x", [["x"]], [{"subnet": "10.99.0.0/24"}]),
        "args__cni": ("x",),
        "args__cni__mac": (5,),
        "args__cni__ips": ("10.123.0.9", [5]),
    }
    for dotted, values in wrong.items():
        for value in values:
            label = f"{dotted.replace('__', '.')}={json.dumps(value)}"
            yield Case(f"type-{label}", "ADD", raw(config(**{dotted: value})), 7)
    range_keys = ("subnet", "rangeStart", "rangeEnd", "gateway")
    for key in range_keys:
        member: dict[str, Any] = {"subnet": SUBNET, key: 5}
        yield Case(f"type-ipam.ranges[0][0].{key}=5", "ADD", c(ipam__ranges=[[member]]), 7)
    for trunk in ([{"id": "5"}], [{"minID": "1", "maxID": 2}], [5]):
        yield Case(f"type-vlanTrunk={json.dumps(trunk)}", "ADD", c(vlanTrunk=trunk), 7)
    for key, value in {
        "cni.dev/valid-attachments": "x",
        "cni.dev/attachments": "x",
    }.items():
        yield Case(f"type-GC-{key}=x", "GC", raw({**config("1.1.0"), key: value}), 7)
    for label, entries in {
        "string-entry": ["x"],
        "number-id": [{"containerID": 5, "ifname": "eth0"}],
        "no-ifname": [{"containerID": "a"}],
        "empty-id": [{"containerID": "", "ifname": "eth0"}],
        "number-ifname": [{"containerID": "a", "ifname": 5}],
    }.items():
        body = {**config("1.1.0"), "cni.dev/valid-attachments": entries}
        yield Case(f"type-GC-valid-attachments-{label}", "GC", raw(body), 7)
    for label, prev in {
        "ips-number": {"cniVersion": "1.0.0", "ips": 5},
        "interfaces-string": {"cniVersion": "1.0.0", "interfaces": "x"},
        "address-not-ip": {"cniVersion": "1.0.0", "ips": [{"address": "x"}]},
    }.items():
        yield Case(f"type-CHECK-prevResult-{label}", "CHECK", c(prevResult=prev), 7)


# --- values out of range or inconsistent (code 7, or 4 for requested addresses) ---------------


def _values() -> Iterator[Case]:
    for mtu in (67, 65536, -1, 2**31, 2**64):
        yield Case(f"value-mtu={mtu}", "ADD", c(mtu=mtu), 7)
    for vlan in (-1, 4095, 99999):
        yield Case(f"value-vlan={vlan}", "ADD", c(vlan=vlan), 7)
    trunks: tuple[list[dict[str, int]], ...] = (
        [{"id": 0}],
        [{"id": 4095}],
        [{"minID": 10, "maxID": 5}],
        [{"minID": 0, "maxID": 5}],
        [{"minID": 1, "maxID": 4095}],
        [{}],
    )
    for trunk in trunks:
        yield Case(f"value-vlanTrunk={json.dumps(trunk)}", "ADD", c(vlanTrunk=trunk), 7)
    yield from _ranges()
    yield from _ipam_values()
    yield from _other_values()


def _ranges() -> Iterator[Case]:
    for subnet in (
        "10.123.0.0/33",
        "10.123.0.0/-1",
        "10.123.0.0/31",
        "10.123.0.0/32",
        "10.123.0.1/24",
        "10.123.0.0",
        "fd00::/129",
        "fd00::/127",
        "fd00::1/64",
        "300.1.1.0/24",
        "10.123.0.0/24/8",
        "",
        " 10.123.0.0/24",
    ):
        yield Case(f"value-subnet={subnet!r}", "ADD", c(ipam__subnet=subnet), 7)
    for key, value in {
        "rangeStart": "10.124.0.5",
        "rangeEnd": "10.122.0.5",
        "gateway": "10.1.1.1",
    }.items():
        yield Case(f"value-{key}-outside", "ADD", c(**{f"ipam__{key}": value}), 7)
    yield Case(
        "value-rangeStart-after-rangeEnd",
        "ADD",
        c(ipam__rangeStart="10.123.0.200", ipam__rangeEnd="10.123.0.100"),
        7,
    )
    yield Case("value-rangeStart-ipv6", "ADD", c(ipam__rangeStart="fd00::5"), 7)
    yield Case("value-rangeStart-not-ip", "ADD", c(ipam__rangeStart="x"), 7)
    a = {"subnet": SUBNET, "rangeStart": "10.123.0.10", "rangeEnd": "10.123.0.50"}
    b = {"subnet": SUBNET, "rangeStart": "10.123.0.40", "rangeEnd": "10.123.0.90"}
    overlaps = {
        "within-a-set": [[a, b]],
        "across-sets": [[a], [b]],
        "same-set-twice": [[a], [a]],
        "legacy-and-ranges": None,
    }
    for label, ranges in overlaps.items():
        if ranges is None:
            yield Case(f"value-overlap-{label}", "ADD", c(ipam__ranges=[[a]]), 7)
        else:
            yield Case(
                f"value-overlap-{label}", "ADD", c(ipam__subnet=None, ipam__ranges=ranges), 7
            )
    mixed = [[{"subnet": SUBNET}, {"subnet": "fd00:123::/64"}]]
    yield Case("value-mixed-families-in-a-set", "ADD", c(ipam__subnet=None, ipam__ranges=mixed), 7)
    yield Case("value-empty-range-set", "ADD", c(ipam__subnet=None, ipam__ranges=[[]]), 7)
    yield Case("value-no-ranges", "ADD", c(ipam__subnet=None, ipam__ranges=[]), 7)
    routes = {
        "dst-not-cidr": [{"dst": "x"}],
        "dst-prefix-33": [{"dst": "10.0.0.0/33"}],
        "gw-other-family": [{"dst": "0.0.0.0/0", "gw": "fd00::1"}],
        "gw-not-ip": [{"dst": "0.0.0.0/0", "gw": "x"}],
    }
    for label, route in routes.items():
        yield Case(f"value-route-{label}", "ADD", c(ipam__routes=route), 7)


def _other_values() -> Iterator[Case]:
    yield Case("value-ipMasqBackend-pf", "ADD", c(ipMasqBackend="pf"), 7)
    yield Case("value-runtimeConfig-mac", "ADD", c(runtimeConfig={"mac": "zz"}), 7)
    yield Case("value-args-cni-mac", "ADD", c(args={"cni": {"mac": "00:11:22:33:44"}}), 7)
    yield Case("value-hairpin-and-promisc", "ADD", c(hairpinMode=True, promiscMode=True), 7)
    yield Case("value-no-interface-but-ipam", "ADD", c(disableContainerInterface=True), 7)
    for label, bridge in {
        "16-chars": "b" * 16,
        "slash": "br/0",
        "space": "br 0",
        "colon": "br:0",
        "dotdot": "..",
        "nul": "br\u0000x",
        "17-bytes-non-ascii": "br\u00e9" * 5 + "b",
    }.items():
        yield Case(f"value-bridge-{label}", "ADD", c(bridge=bridge), 7)
    yield Case("value-bridge-is-not-a-bridge", "ADD", c(bridge=NOT_A_BRIDGE), 7)
    yield Case("value-bridge-is-lo", "ADD", c(bridge="lo"), 7)


def _ipam_values() -> Iterator[Case]:
    for label, ipam_type in {
        "empty": "",
        "absolute": "/bin/sh",
        "relative-path": "../host-local",
        "dotdot": "..",
        "nul": "host\u0000local",
        "not-installed": "no-such-ipam-plugin",
        "itself": "cni-bridge-py",
    }.items():
        yield Case(f"value-ipam-type-{label}", "ADD", c(ipam={"type": ipam_type}), 7)
    yield Case("value-ipam-without-type", "ADD", c(ipam={"subnet": SUBNET}), 7)
    for label, data_dir in {
        "relative": "networks",
        "dotdot": "@DATA@/../../etc",
        "nul": "@DATA@\u0000x",
    }.items():
        yield Case(f"value-dataDir-{label}", "ADD", c(ipam__dataDir=data_dir), 7)
    yield Case("value-dataDir-is-a-file", "ADD", c(ipam__dataDir="@TMP@/file"), 5)
    yield Case("value-resolvConf-nul", "ADD", c(ipam__resolvConf="/etc/re\u0000solv"), 7)
    yield Case("value-resolvConf-missing", "ADD", c(ipam__resolvConf="@TMP@/no-such-file"), 5)
    requested = {
        "outside": "IP=10.124.0.5",
        "gateway": "IP=10.123.0.1",
        "taken": f"IP={RESIDENT_IP}",
    }
    for label, args in requested.items():
        yield Case(f"value-requested-ip-{label}", "ADD", raw(BASE), 4, env={"CNI_ARGS": args})
    yield Case("value-args-cni-ips-outside", "ADD", c(args={"cni": {"ips": ["10.124.0.5"]}}), 4)
    yield Case("value-runtimeConfig-ips-not-ip", "ADD", c(runtimeConfig={"ips": ["x"]}), 7)
    ip_ranges = {"ipRanges": [[{"subnet": "10.123.0.0/25"}]]}
    yield Case("value-ipRanges-overlap", "ADD", c(runtimeConfig=ip_ranges), 7)


# --- the environment (code 4, or 7 for unparsable CNI_ARGS values) ----------------------------

REQUIRED = {
    "ADD": ("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH"),
    "CHECK": ("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH"),
    "DEL": ("CNI_CONTAINERID", "CNI_IFNAME", "CNI_PATH"),
    "GC": ("CNI_PATH",),
    "STATUS": ("CNI_PATH",),
}


def _stdin_for(command: str) -> bytes:
    if command in ("GC", "STATUS"):
        return raw(config("1.1.0"))
    if command == "CHECK":
        return c(prevResult=PREV_RESULT)
    return raw(BASE)


def _environment() -> Iterator[Case]:
    for command, names in REQUIRED.items():
        for name in names:
            stdin = _stdin_for(command)
            yield Case(f"env-unset-{name}-{command}", command, stdin, 4, unset=(name,))
            yield Case(f"env-empty-{name}-{command}", command, stdin, 4, env={name: ""})
    for label, command in {
        "lowercase": "add",
        "unknown": "FROB",
        "trailing-space": "ADD ",
        "leading-space": " ADD",
        "newline": "ADD\n",
        "DELETE": "DELETE",
        "VERSIONS": "VERSIONS",
        "mixed-case": "Add",
        "non-ascii": "\u00c4DD",
        "undecodable": "ADD\udcff",
    }.items():
        yield Case(f"env-command-{label}", command, raw(BASE), 4)
    args = {
        "no-equals": ("foo", 4),
        "empty-key": ("=x", 4),
        "only-equals": ("=", 4),
        "separators": (";;;=;", 4),
        "unknown-key": ("K8S_POD_NAME=x", 4),
        "ignore-unknown-0": ("IgnoreUnknown=0;X=1", 4),
        "ignore-unknown-false": ("IgnoreUnknown=false;X=1", 4),
        "ip-not-ip": ("IP=notanip", 7),
        "ip-five-octets": ("IP=10.123.0.5.6", 7),
        "ip-undecodable": ("IP=\udcff", 7),
        "mac-bad": ("MAC=zz", 7),
        "mac-bad-hex": ("MAC=00:11:22:33:44:5g", 7),
    }
    for label, (value, code) in args.items():
        yield Case(f"env-cni-args-{label}", "ADD", raw(BASE), code, env={"CNI_ARGS": value})
    ifnames = {
        "dot": ".",
        "dotdot": "..",
        "slash": "a/b",
        "only-slash": "/",
        "colon": "eth:0",
        "space": "eth 0",
        "leading-space": " eth0",
        "tab": "eth\t0",
        "newline": "eth0\n",
        "16-chars": "e" * 16,
        "16-bytes": "\u00e9" * 8,
        "path": "../../etc",
        "undecodable": "eth\udcff",
    }
    for label, value in ifnames.items():
        yield Case(f"env-ifname-{label}", "ADD", raw(BASE), 4, ifname=value)
    for label in ("dotdot", "slash", "16-chars", "undecodable"):
        yield Case(f"env-ifname-{label}-DEL", "DEL", raw(BASE), 4, ifname=ifnames[label])
    for label in ("dotdot", "space"):
        stdin = c(prevResult=PREV_RESULT)
        yield Case(f"env-ifname-{label}-CHECK", "CHECK", stdin, 4, ifname=ifnames[label])
    ids = {
        "dotdot": "..",
        "dotdot-slash": "../x",
        "absolute": "/etc/passwd",
        "slash": "a/b",
        "space": "a b",
        "leading-dash": "-x",
        "leading-dot": ".x",
        "leading-underscore": "_x",
        "newline": "x\n",
        "non-ascii": "\u00fc",
        "semicolon": "a;b",
        "tab": "a\tb",
        "undecodable": "a\udcff",
    }
    for label, value in ids.items():
        yield Case(f"env-container-id-{label}", "ADD", raw(BASE), 4, container_id=value)
    for label in ("dotdot", "absolute", "space"):
        yield Case(f"env-container-id-{label}-DEL", "DEL", raw(BASE), 4, container_id=ids[label])
    yield Case(
        "env-container-id-dotdot-CHECK",
        "CHECK",
        c(prevResult=PREV_RESULT),
        4,
        container_id="..",
    )


# --- CNI_NETNS that is not a usable network namespace (code 8; DEL: gone is fine) -----------


def _netns() -> Iterator[Case]:
    for kind in NETNS_KINDS[2:]:
        yield Case(f"netns-{kind}-ADD", "ADD", raw(BASE), 8, netns=kind)
    for kind in ("file", "dir", "missing", "self", "host", "mnt-ns"):
        yield Case(f"netns-{kind}-CHECK", "CHECK", c(prevResult=PREV_RESULT), 8, netns=kind)
    for kind in ("self", "host"):
        yield Case(f"netns-{kind}-DEL", "DEL", raw(BASE), 8, netns=kind)
    # DEL must succeed when the namespace is gone or unusable, and there is nothing to do.
    for kind in ("file", "dir", "missing", "devnull"):
        yield Case(f"netns-{kind}-DEL-idempotent", "DEL", raw(BASE), None, netns=kind)


# --- requests that are well formed but wrong about the world ---------------------------------


def _world() -> Iterator[Case]:
    yield Case("world-CHECK-unknown-container", "CHECK", c(prevResult=PREV_RESULT), 3)
    yield Case(
        "world-CHECK-resident-wrong-mac",
        "CHECK",
        raw(BASE)[:-1] + b',"prevResult":"@RESIDENT_PREV@"}',
        3,
        netns="resident",
        container_id=RESIDENT_ID,
    )
    yield Case("world-CHECK-without-prevResult", "CHECK", raw(BASE), 7)
    yield Case(
        "world-ADD-resident-again",
        "ADD",
        raw(BASE),
        4,
        netns="resident",
        container_id=RESIDENT_ID,
    )


def _fresh_host() -> Iterator[Case]:
    """Issue 13: what a new user tries first, on a bridge that does not exist yet. Refused
    before anything is made: no bridge appears (nor its link-local address), no store file."""
    fresh = {"bridge": FRESH_BRIDGE, "ipam__dataDir": "@TMP@/fresh-data"}
    yield Case("fresh-ADD-ifname-lo", "ADD", c(**fresh), 4, ifname="lo")
    yield Case("fresh-ADD-ipam-not-on-CNI_PATH", "ADD", c(**fresh, ipam__type="no-such-ipam"), 7)
    for label, args in {"outside": "IP=10.124.0.5", "gateway": "IP=10.123.0.1"}.items():
        yield Case(f"fresh-ADD-requested-ip-{label}", "ADD", c(**fresh), 4, env={"CNI_ARGS": args})


def cases() -> list[Case]:
    return [
        *_decoding(),
        *_names(),
        *_versions(),
        *_types(),
        *_values(),
        *_environment(),
        *_netns(),
        *_world(),
        *_fresh_host(),
    ]


CORPUS = cases()
