"""Generated bad input through front.handle (no kernel, no root): configs built from the config
model with a wrong JSON type at any key, numbers out of range, address ranges checked against
an `ipaddress` oracle, odd strings in every string field, arbitrary environments and arbitrary
stdin. Every answer is either "valid" or one typed CNI error object (never 999, never a
traceback), and nothing invalid reaches the verbs.

The dispatch stands in for the verbs: it runs what the front and the verbs check before they
touch anything (config.parse, host-local's runtime range sets and requested addresses, the GC
list) and records the requests that would go on.
"""

from __future__ import annotations

import copy
import ipaddress
import json
from collections.abc import Mapping
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cni_bridge_py import config, front, record
from cni_bridge_py.answer import Answer
from cni_bridge_py.ipam.config import HostLocalConf
from cni_bridge_py.request import Handler, Notes, Request
from cni_bridge_py.verbs.dispatch import prepare
from cni_bridge_py.version import SUPPORTED_VERSIONS
from tests.reliability.figures import Figures
from tests.reliability.profile import current

PROFILE = current()
SETTINGS = settings(
    max_examples=PROFILE.examples,
    deadline=None,
    derandomize=PROFILE.name == "ci",
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
TYPED_CODES = {1, 2, 3, 4, 5, 6, 7, 8, 11}
VALID = "valid"

# --- the config model: every key a config can carry, with its JSON kind -----------------------
# (dotted path, kind). "[0]" is the first element of a list of objects.
TOP: dict[str, str] = {
    "cniVersion": "str",
    "name": "str",
    "type": "str",
    "bridge": "str",
    "isGateway": "bool",
    "isDefaultGateway": "bool",
    "forceAddress": "bool",
    "ipMasq": "bool",
    "ipMasqBackend": "str",
    "mtu": "int",
    "hairpinMode": "bool",
    "promiscMode": "bool",
    "vlan": "int",
    "vlanTrunk": "list",
    "vlanTrunk[0].id": "int",
    "vlanTrunk[1].minID": "int",
    "vlanTrunk[1].maxID": "int",
    "preserveDefaultVlan": "bool",
    "macspoofchk": "bool",
    "enabledad": "bool",
    "disableContainerInterface": "bool",
    "portIsolation": "bool",
    "logFile": "str",
    "logLevel": "str",
    "dns": "object",
    "dns.nameservers": "list",
    "dns.domain": "str",
    "dns.search": "list",
    "dns.options": "list",
    "ipam": "object",
    "ipam.type": "str",
    "ipam.ranges": "list",
    "ipam.ranges[0][0].subnet": "str",
    "ipam.ranges[0][0].rangeStart": "str",
    "ipam.ranges[0][0].rangeEnd": "str",
    "ipam.ranges[0][0].gateway": "str",
    "ipam.routes": "list",
    "ipam.routes[0].dst": "str",
    "ipam.routes[0].gw": "str",
    "ipam.dataDir": "str",
    "ipam.resolvConf": "str",
    "runtimeConfig": "object",
    "runtimeConfig.mac": "str",
    "runtimeConfig.ips": "list",
    "runtimeConfig.ips[0]": "str",
    "runtimeConfig.ipRanges": "list",
    "runtimeConfig.ipRanges[0][0].subnet": "str",
    "args": "object",
    "args.cni": "object",
    "args.cni.mac": "str",
    "args.cni.ips": "list",
    "args.cni.ips[0]": "str",
    "prevResult": "object",
}
# The legacy one-range form of host-local's keys (read only when "subnet" is given).
LEGACY: dict[str, str] = {
    "ipam.subnet": "str",
    "ipam.rangeStart": "str",
    "ipam.rangeEnd": "str",
    "ipam.gateway": "str",
}
# Which JSON keys feed each NetConf / HostLocalConf field: a new field needs a model entry.
FIELD_KEYS = {
    "cni_version": "cniVersion",
    "name": "name",
    "type": "type",
    "bridge": "bridge",
    "is_gateway": "isGateway",
    "is_default_gateway": "isDefaultGateway",
    "force_address": "forceAddress",
    "ip_masq": "ipMasq",
    "mtu": "mtu",
    "hairpin_mode": "hairpinMode",
    "promisc_mode": "promiscMode",
    "dns": "dns",
    "ipam": "ipam",
    "prev_result": "prevResult",
    "runtime_mac": "runtimeConfig.mac",
    "vlan": "vlan",
    "vlan_trunk": "vlanTrunk",
    "preserve_default_vlan": "preserveDefaultVlan",
    "mac_spoof_check": "macspoofchk",
    "enable_dad": "enabledad",
    "disable_container_interface": "disableContainerInterface",
    "port_isolation": "portIsolation",
    "ip_masq_backend": "ipMasqBackend",
    "log_file": "logFile",
    "log_level": "logLevel",
    # Read by GC only, which these ADD-driven properties never send: test_ipam_gc_status.py.
    "valid_attachments": "",
    # A cluster network has no ranges of its own (its node's lease): the bases here have
    # ranges, so tests/unit/test_cluster.py checks every key of the "cluster" section.
    "cluster": "",
}
HOST_LOCAL_KEYS = {
    "range_sets": "ipam.ranges",
    "routes": "ipam.routes",
    "data_dir": "ipam.dataDir",
    "resolv_conf": "ipam.resolvConf",
    "requested": "runtimeConfig.ips",
}

FULL: dict[str, Any] = {
    "cniVersion": "1.0.0",
    "name": "propnet",
    "type": "cni-bridge-py",
    "bridge": "br-prop",
    "isGateway": True,
    "isDefaultGateway": False,
    "forceAddress": False,
    "ipMasq": True,
    "ipMasqBackend": "iptables",
    "mtu": 1500,
    "hairpinMode": False,
    "promiscMode": False,
    "vlan": 0,
    "vlanTrunk": [{"id": 5}, {"minID": 10, "maxID": 20}],
    "preserveDefaultVlan": True,
    "macspoofchk": False,
    "enabledad": False,
    "disableContainerInterface": False,
    "portIsolation": False,
    "dns": {
        "nameservers": ["10.1.0.1"],
        "domain": "example.org",
        "search": ["example.org"],
        "options": ["ndots:2"],
    },
    "ipam": {
        "type": "host-local",
        "ranges": [
            [
                {
                    "subnet": "10.1.0.0/24",
                    "rangeStart": "10.1.0.10",
                    "rangeEnd": "10.1.0.200",
                    "gateway": "10.1.0.1",
                }
            ]
        ],
        "routes": [{"dst": "0.0.0.0/0", "gw": "10.1.0.1"}],
        "dataDir": "/var/lib/cni/networks",
        "resolvConf": "/etc/resolv.conf",
    },
    "runtimeConfig": {
        "mac": "02:00:00:00:00:01",
        "ips": ["10.1.0.20"],
        "ipRanges": [[{"subnet": "10.2.0.0/24"}]],
    },
    "args": {"cni": {"mac": "02:00:00:00:00:02", "ips": ["10.2.0.30"]}},
    "prevResult": {"cniVersion": "1.0.0", "ips": [{"address": "10.1.0.20/24"}]},
}
LEGACY_BASE: dict[str, Any] = {
    **{k: v for k, v in FULL.items() if k not in ("runtimeConfig", "args")},
    "ipam": {
        "type": "host-local",
        "subnet": "10.1.0.0/24",
        "rangeStart": "10.1.0.10",
        "rangeEnd": "10.1.0.200",
        "gateway": "10.1.0.1",
    },
}
ENV = {
    "CNI_COMMAND": "ADD",
    "CNI_CONTAINERID": "c1",
    "CNI_NETNS": "/var/run/netns/c1",
    "CNI_IFNAME": "eth0",
    "CNI_PATH": "/opt/cni/bin",
}


def validating(reached: list[Request]) -> Handler:
    """The product's dispatch up to its first change: `prepare`, then the verb would run."""

    def dispatch(request: Request, notes: Notes) -> str:
        prepare(request)
        reached.append(request)
        return VALID

    return dispatch


def answer(env: Mapping[str, str], stdin: bytes) -> tuple[Answer, list[Request]]:
    reached: list[Request] = []
    return front.handle(env, stdin, validating(reached)), reached


def error_of(response: Answer) -> dict[str, Any] | None:
    """None for "valid"; otherwise the error object, after checking it is well formed."""
    assert "Traceback" not in response.stdout + response.stderr, response.stderr
    if response.exit_code == 0:
        assert response.stdout in (VALID, "") or response.stdout.startswith('{"cniVersion"')
        return None
    assert response.exit_code == 1, response
    body = json.loads(response.stdout)  # exactly one JSON value
    assert isinstance(body, dict), body
    assert {"cniVersion", "code", "msg"} <= body.keys() <= {"cniVersion", "code", "msg", "details"}
    assert body["cniVersion"] in SUPPORTED_VERSIONS, body
    assert body["code"] in TYPED_CODES, body  # never 999: every bad input is classified
    assert isinstance(body["msg"], str) and body["msg"], body
    assert isinstance(body.get("details", ""), str), body
    return body


def set_path(data: dict[str, Any], dotted: str, value: Any) -> dict[str, Any]:
    """A copy of `data` with the value at "a.b[0][1].c" replaced."""
    out = copy.deepcopy(data)
    steps: list[str | int] = []
    for part in dotted.split("."):
        name, *indexes = part.replace("]", "").split("[")
        steps.append(name)
        steps += [int(i) for i in indexes]
    target: Any = out
    for step in steps[:-1]:
        target = target[step]
    target[steps[-1]] = value
    return out


def leaf_name(dotted: str) -> str:
    return dotted.rsplit(".", 1)[-1].split("[", 1)[0]


KIND_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "bool": st.booleans(),
    "int": st.integers(min_value=-(2**70), max_value=2**70),
    "float": st.floats(allow_nan=False, allow_infinity=False),
    "str": st.text(max_size=20),
    "list": st.lists(st.integers() | st.text(max_size=5), max_size=3),
    "object": st.dictionaries(st.text(max_size=5), st.integers() | st.text(max_size=5), max_size=3),
}


def wrong_for(kind: str) -> st.SearchStrategy[Any]:
    """Any JSON value of another kind (a float counts as wrong for "int": JSON integers only)."""
    others = [s for k, s in KIND_VALUES.items() if k != kind]
    return st.one_of(others)


def model_cases() -> st.SearchStrategy[tuple[dict[str, Any], str, str]]:
    return st.one_of(
        st.sampled_from(sorted(TOP.items())).map(lambda kv: (FULL, *kv)),
        st.sampled_from(sorted(LEGACY.items())).map(lambda kv: (LEGACY_BASE, *kv)),
    )


def test_the_model_covers_every_config_field() -> None:
    """A field added to NetConf or HostLocalConf must be added to the model above."""
    fields = set(record.fields(config.NetConf))
    assert fields == set(FIELD_KEYS), fields ^ set(FIELD_KEYS)
    assert set(record.fields(HostLocalConf)) == set(HOST_LOCAL_KEYS)
    model = set(TOP) | set(LEGACY)
    modelled = {key for key in FIELD_KEYS.values() if key}
    assert modelled | set(HOST_LOCAL_KEYS.values()) <= model


@pytest.mark.parametrize("base", [FULL, LEGACY_BASE], ids=["ranges", "legacy"])
@pytest.mark.parametrize("command", ["ADD", "DEL", "CHECK"])
def test_the_model_bases_are_valid(base: dict[str, Any], command: str) -> None:
    response, reached = answer({**ENV, "CNI_COMMAND": command}, json.dumps(base).encode())
    assert error_of(response) is None, response.stdout
    assert len(reached) == 1


@SETTINGS
@given(case=model_cases(), data=st.data())
def test_a_wrong_type_at_any_key_is_code_7_naming_it(
    case: tuple[dict[str, Any], str, str], data: st.DataObject, figures: Figures
) -> None:
    base, dotted, kind = case
    value = data.draw(wrong_for(kind), label=dotted)
    figures.add("bad_input", property_examples=1)
    response, reached = answer(ENV, json.dumps(set_path(base, dotted, value)).encode())
    body = error_of(response)
    assert body is not None, f"{dotted}={value!r} was accepted"
    assert body["code"] == 7, body
    assert leaf_name(dotted) in body["msg"] + body.get("details", ""), body
    assert reached == []


@SETTINGS
@given(
    key=st.sampled_from(["mtu", "vlan", "vlanTrunk[0].id", "vlanTrunk[1].minID"]),
    value=st.integers(min_value=-(2**40), max_value=2**40) | st.sampled_from([67, 68, 65535]),
)
def test_numbers_out_of_range_are_code_7(key: str, value: int, figures: Figures) -> None:
    figures.add("bad_input", property_examples=1)
    allowed = {
        "mtu": value == 0 or 68 <= value <= 65535,
        "vlan": 0 <= value <= 4094,
        "vlanTrunk[0].id": 1 <= value <= 4094,
        "vlanTrunk[1].minID": 1 <= value <= 20,  # maxID is 20 in FULL
    }[key]
    response, reached = answer(ENV, json.dumps(set_path(FULL, key, value)).encode())
    body = error_of(response)
    if allowed:
        assert body is None, body
    else:
        assert body is not None and body["code"] == 7, (key, value, body)
        assert reached == []


def _address_near(network: ipaddress.IPv4Network) -> st.SearchStrategy[str]:
    """Mostly addresses around the subnet (inside, at its edges, just outside), some anywhere."""
    low, high = int(network.network_address), int(network.broadcast_address)
    near = st.integers(min_value=max(low - 2, 0), max_value=min(high + 2, 2**32 - 1))
    anywhere = st.integers(min_value=0, max_value=2**32 - 1)
    return (near | anywhere).map(lambda n: str(ipaddress.IPv4Address(n)))


def range_oracle(subnet: str, start: str | None, end: str | None, gateway: str | None) -> bool:
    """host-local's rules, from `ipaddress` alone: a network without host bits and with at
    least two host bits; start, end and gateway inside it; start <= end."""
    try:
        network = ipaddress.IPv4Network(subnet)
    except ValueError:
        return False
    if network.max_prefixlen - network.prefixlen < 2:
        return False
    first, last = network.network_address + 1, network.broadcast_address - 1
    lo = ipaddress.IPv4Address(start) if start else first
    hi = ipaddress.IPv4Address(end) if end else last
    gw = ipaddress.IPv4Address(gateway) if gateway else first
    return all(a in network for a in (lo, hi, gw)) and lo <= hi


@SETTINGS
@given(
    address=st.integers(min_value=0, max_value=2**32 - 1),
    prefix=st.integers(min_value=0, max_value=34),
    data=st.data(),
)
def test_address_ranges_agree_with_an_ipaddress_oracle(
    address: int, prefix: int, data: st.DataObject, figures: Figures
) -> None:
    figures.add("bad_input", property_examples=1)
    # Usually a proper network; sometimes one with host bits set.
    if data.draw(st.booleans(), label="aligned") and prefix <= 32:
        address &= ~((1 << (32 - prefix)) - 1) & 0xFFFFFFFF
    subnet = f"{ipaddress.IPv4Address(address)}/{prefix}"
    around = ipaddress.IPv4Network(f"{ipaddress.IPv4Address(address)}/{min(prefix, 32)}", False)
    optional = st.none() | _address_near(around)
    start, end, gateway = (data.draw(optional, label=k) for k in ("start", "end", "gateway"))
    member = {"subnet": subnet, "rangeStart": start, "rangeEnd": end, "gateway": gateway}
    ipam = {"type": "host-local", "ranges": [[{k: v for k, v in member.items() if v}]]}
    conf = {"cniVersion": "1.0.0", "name": "propnet", "ipam": ipam}
    response, reached = answer(ENV, json.dumps(conf).encode())
    body = error_of(response)
    if range_oracle(subnet, start, end, gateway):
        assert body is None, (member, body)
        assert len(reached) == 1
    else:
        assert body is not None and body["code"] == 7, (member, body)
        assert reached == []


# Any character, including lone surrogates, NUL and other controls.
ODD_TEXT = st.text(st.characters(exclude_categories=()), max_size=40) | st.sampled_from(
    ["", ".", "..", "/", "../../etc", "a" * 300, "\x00", "\ud800", "br\x00x", " ", "\n"]
)
STRING_KEYS = sorted(k for k, kind in {**TOP, **LEGACY}.items() if kind == "str")


@SETTINGS
@given(key=st.sampled_from(STRING_KEYS), text=ODD_TEXT, command=st.sampled_from(["ADD", "DEL"]))
def test_odd_strings_in_any_string_field_get_a_typed_answer(
    key: str, text: str, command: str, figures: Figures
) -> None:
    figures.add("bad_input", property_examples=1)
    base = LEGACY_BASE if key in LEGACY else FULL
    stdin = json.dumps(set_path(base, key, text)).encode()
    response, reached = answer({**ENV, "CNI_COMMAND": command}, stdin)
    if error_of(response) is None:
        assert len(reached) == 1
        # What got through is something a path or an interface name can hold.
        request = reached[0]
        json.dumps(request.config, ensure_ascii=False).encode()
        conf = prepare(request)
        names = [conf.bridge]
        if conf.ipam is not None:
            names.append(conf.ipam.type)
            if conf.ipam.host_local is not None:
                names += [conf.ipam.host_local.data_dir, conf.ipam.host_local.resolv_conf]
        assert not any("\x00" in name for name in names), names
    else:
        assert reached == []


# os.environ holds undecodable bytes as lone surrogates \udc80-\udcff; it never holds NUL.
ENV_TEXT = st.text(
    st.characters(codec="utf-8", exclude_characters="\x00")
    | st.characters(min_codepoint=0xDC80, max_codepoint=0xDCFF),
    max_size=30,
)


@SETTINGS
@given(
    command=st.sampled_from([*front.VERBS, "add", "FROB", ""]) | ENV_TEXT,
    values=st.fixed_dictionaries(
        {},
        optional={
            name: ENV_TEXT | st.sampled_from(["", "..", "/proc/self/ns/net", "a" * 16])
            for name in ("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_ARGS", "CNI_PATH")
        },
    ),
)
def test_any_environment_gets_a_typed_answer(
    command: str, values: dict[str, str], figures: Figures
) -> None:
    figures.add("bad_input", property_examples=1)
    env = {**ENV, **values, "CNI_COMMAND": command}
    conf = {**FULL, "cniVersion": "1.1.0"}
    response, reached = answer(env, json.dumps(conf).encode())
    body = error_of(response)
    if command in ("", "VERSION"):
        assert body is None and reached == []
    elif command not in front.VERBS:
        assert body is not None and body["code"] == 4, body
    if body is not None:
        assert reached == []
    if reached:
        request = reached[0]
        assert request.command in front.VERBS
        if request.command in ("ADD", "CHECK", "DEL"):
            # What reaches the verbs has names a file system and the kernel can take.
            assert "/" not in request.container_id and request.container_id != ".."
            assert request.ifname.encode() and len(request.ifname.encode()) <= 15


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=20,
)


@SETTINGS
@given(
    stdin=st.binary(max_size=200)
    | JSON_VALUES.map(lambda v: json.dumps(v).encode())
    | st.dictionaries(st.sampled_from(sorted(TOP)), JSON_VALUES).map(
        lambda d: json.dumps({"cniVersion": "1.0.0", "name": "propnet", **d}).encode()
    ),
    command=st.sampled_from(["ADD", "DEL", "CHECK", "GC", "STATUS"]),
)
def test_any_stdin_gets_a_typed_answer(stdin: bytes, command: str, figures: Figures) -> None:
    figures.add("bad_input", property_examples=1)
    response, reached = answer({**ENV, "CNI_COMMAND": command}, stdin)
    if error_of(response) is not None:
        assert reached == []
