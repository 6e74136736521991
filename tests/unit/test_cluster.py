"""The cluster's pure core: the "cluster" section, key layout and records, subnet choice,
the plugin's use of the local lease file, masquerade addresses, and route/FDB planning."""

from __future__ import annotations

import ipaddress
import json
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from cni_bridge_py import config
from cni_bridge_py.cluster import lease_file, plan, records, subnets
from cni_bridge_py.cluster.leased import masq_addresses, with_lease
from cni_bridge_py.cluster.main import ConfigProblem, load
from cni_bridge_py.errors import InvalidConfig, PluginUnavailable, TryAgainLater

net = ipaddress.IPv4Network
ip = ipaddress.IPv4Address


def netconf(tmp_path: Path, **cluster: Any) -> dict[str, Any]:
    return {
        "cniVersion": "1.0.0",
        "name": "podnet",
        "type": "cni-bridge-py",
        "ipMasq": True,
        "ipam": {"type": "host-local", "dataDir": str(tmp_path / "data")},
        "cluster": {
            "etcdEndpoints": ["http://10.0.0.1:2379", "http://10.0.0.2:2379"],
            "clusterRange": "10.244.0.0/16",
            "subnetFile": str(tmp_path / "subnet.json"),
            **cluster,
        },
    }


def parse(data: dict[str, Any], command: str = "ADD") -> config.NetConf:
    return config.parse(data, "1.0.0", {}, command)


def test_the_cluster_section_and_its_defaults(tmp_path: Path) -> None:
    conf = parse(netconf(tmp_path))
    cluster = conf.cluster
    assert cluster is not None
    assert cluster.endpoints == ("http://10.0.0.1:2379", "http://10.0.0.2:2379")
    assert cluster.cluster_range == net("10.244.0.0/16")
    assert (cluster.subnet_len, cluster.backend, cluster.lease_ttl) == (24, "host-gw", 30)
    assert cluster.network_prefix == "/cni-bridge-py/podnet/"
    assert cluster.node_name == "" and cluster.node_address is None
    default = parse({**netconf(tmp_path), "cluster": {**netconf(tmp_path)["cluster"]}})
    assert default.cluster is not None


def test_the_default_subnet_file_is_under_run(tmp_path: Path) -> None:
    data = netconf(tmp_path)
    del data["cluster"]["subnetFile"]
    cluster = parse(data).cluster
    assert cluster is not None
    assert cluster.subnet_file == "/run/cni-bridge-py/podnet.subnet.json"


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"etcdEndpoints": []}, "cluster.etcdEndpoints"),
        ({"etcdEndpoints": ["10.0.0.1:2379"]}, "cluster.etcdEndpoints"),
        ({"clusterRange": "10.244.0.1/16"}, "cluster.clusterRange"),
        ({"clusterRange": "fd00::/64"}, "cluster.clusterRange"),
        ({"subnetLen": 16}, "cluster.subnetLen"),
        ({"subnetLen": 31}, "cluster.subnetLen"),
        ({"backend": "udp"}, "cluster.backend"),
        ({"nodeAddress": "fd00::1"}, "cluster.nodeAddress"),
        ({"leaseTTL": 1}, "cluster.leaseTTL"),
        ({"leaseTTL": 4, "syncInterval": 3}, "cluster.syncInterval"),
        ({"syncInterval": True}, "cluster.syncInterval"),
        ({"vni": 0}, "cluster.vni"),
        ({"vxlanPort": 70000}, "cluster.vxlanPort"),
        ({"vxlanDevice": "a/b"}, "cluster.vxlanDevice"),
        ({"keyPrefix": "nope"}, "cluster.keyPrefix"),
    ],
)
def test_every_problem_of_the_section_is_a_config_error(
    tmp_path: Path, change: dict[str, Any], named: str
) -> None:
    data = netconf(tmp_path)
    data["cluster"].update(change)
    with pytest.raises(InvalidConfig) as caught:
        parse(data)
    assert f'"{named}"' in str(caught.value)


def test_a_cluster_network_names_no_ranges_of_its_own(tmp_path: Path) -> None:
    data = netconf(tmp_path)
    data["ipam"]["subnet"] = "10.244.1.0/24"
    with pytest.raises(InvalidConfig, match="lease"):
        parse(data)
    del data["ipam"]
    with pytest.raises(InvalidConfig, match="host-local"):
        parse(data)


def test_add_without_the_lease_file_is_try_again_later(tmp_path: Path) -> None:
    conf = parse(netconf(tmp_path))
    with pytest.raises(TryAgainLater, match="no subnet lease yet") as caught:
        with_lease(conf, "ADD")
    assert "cni-bridge-py node" in caught.value.details
    with pytest.raises(PluginUnavailable):
        with_lease(conf, "STATUS")
    # A release needs no range: DEL, CHECK and GC go on without one.
    for command in ("DEL", "CHECK", "GC"):
        assert with_lease(parse(netconf(tmp_path), command), command).cluster is not None


def test_add_allocates_from_the_leased_subnet(tmp_path: Path) -> None:
    conf = parse(netconf(tmp_path))
    lease_file.write(
        str(tmp_path / "subnet.json"),
        lease_file.LocalLease("podnet", net("10.244.7.0/24"), "n1", "host-gw"),
    )
    leased = with_lease(conf, "ADD")
    assert leased.ipam is not None and leased.ipam.host_local is not None
    (range_set,) = leased.ipam.host_local.range_sets
    (only,) = range_set.ranges
    assert only.subnet == net("10.244.7.0/24")
    assert only.gateway == ip("10.244.7.1")


def test_a_lease_outside_the_range_or_unreadable_is_refused(tmp_path: Path) -> None:
    conf = parse(netconf(tmp_path))
    path = tmp_path / "subnet.json"
    lease_file.write(str(path), lease_file.LocalLease("podnet", net("10.9.0.0/24"), "n", "vxlan"))
    with pytest.raises(InvalidConfig, match="outside the cluster range"):
        with_lease(conf, "ADD")
    path.write_text("{not json")
    with pytest.raises(TryAgainLater, match="cannot read"):
        with_lease(conf, "ADD")


def test_the_lease_file_round_trips_and_is_replaced_whole(tmp_path: Path) -> None:
    path = str(tmp_path / "run" / "podnet.subnet.json")
    assert lease_file.read(path) is None
    lease = lease_file.LocalLease("podnet", net("10.244.3.0/24"), "n1", "host-gw")
    lease_file.write(path, lease)
    assert lease_file.read(path) == lease
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["podnet.subnet.json"]


def test_masquerade_accepts_the_whole_cluster_range(tmp_path: Path) -> None:
    conf = parse(netconf(tmp_path))
    pod = ipaddress.ip_interface("10.244.7.5/24")
    other = ipaddress.ip_interface("192.168.1.5/24")
    assert masq_addresses(conf, [pod, other]) == (ipaddress.ip_interface("10.244.7.5/16"), other)
    plain = {**netconf(tmp_path), "ipam": {"type": "host-local", "subnet": "10.244.7.0/24"}}
    del plain["cluster"]
    assert masq_addresses(parse(plain), [pod]) == (pod,)


def test_keys_and_records() -> None:
    prefix = "/cni-bridge-py/podnet/"
    key = records.subnet_key(prefix, net("10.244.3.0/24"))
    assert key == "/cni-bridge-py/podnet/subnets/10.244.3.0-24"
    assert records.subnet_of_key(prefix, key) == net("10.244.3.0/24")
    assert records.subnet_of_key(prefix, "/other/x") is None
    record = records.NodeRecord("n1", net("10.244.3.0/24"), ip("10.0.0.1"), "vxlan", "aa:bb", 5.0)
    assert records.parse_record(record.to_json()) == record
    assert record.vtep_address == ip("10.244.3.0")
    with pytest.raises(records.BadRecord):
        records.parse_record(b'{"node": 1}')


def test_candidates_are_free_shuffled_and_the_previous_subnet_first() -> None:
    cluster = net("10.244.0.0/22")
    taken = {net("10.244.1.0/24")}
    got = subnets.candidates(cluster, 24, taken, rng=random.Random(1))
    assert sorted(got) == [net("10.244.0.0/24"), net("10.244.2.0/24"), net("10.244.3.0/24")]
    first = subnets.candidates(cluster, 24, taken, net("10.244.3.0/24"), random.Random(2))
    assert first[0] == net("10.244.3.0/24")
    # A previous subnet that another node holds now is not asked for.
    assert net("10.244.1.0/24") not in subnets.candidates(cluster, 24, taken, net("10.244.1.0/24"))
    assert subnets.fits(net("10.244.3.0/24"), cluster, 24)
    assert not subnets.fits(net("10.245.3.0/24"), cluster, 24)


def rec(node: str, subnet: str, address: str, backend: str = "host-gw", mac: str = "") -> Any:
    return records.NodeRecord(node, net(subnet), ip(address), backend, mac)


def test_host_gw_plans_a_route_per_other_node() -> None:
    peers = [rec("n1", "10.244.1.0/24", "10.0.0.1"), rec("n2", "10.244.2.0/24", "10.0.0.2")]
    want = plan.wanted(
        [*peers, rec("n3", "10.244.9.0/24", "10.0.0.9", "vxlan", "aa")], "n1", "host-gw"
    )
    assert want.routes == {plan.Route(net("10.244.2.0/24"), ip("10.0.0.2"))}
    assert want.skipped and "n3" in want.skipped[0]
    stale = plan.Route(net("10.244.5.0/24"), ip("10.0.0.5"))
    moved = plan.Route(net("10.244.2.0/24"), ip("10.0.0.7"))
    changes = plan.diff(want, [stale, moved], {}, {})
    assert changes.add_routes == (plan.Route(net("10.244.2.0/24"), ip("10.0.0.2")),)
    # The moved route is replaced in place, not deleted.
    assert changes.del_routes == (stale,)
    assert not plan.diff(want, list(want.routes), {}, {})


def test_vxlan_plans_routes_neighbours_and_fdb_entries() -> None:
    peers = [
        rec("n1", "10.244.1.0/24", "10.0.0.1", "vxlan", "02:00:00:00:00:01"),
        rec("n2", "10.244.2.0/24", "10.0.0.2", "vxlan", "02:00:00:00:00:02"),
        rec("n4", "10.244.4.0/24", "10.0.0.4", "vxlan"),
    ]
    want = plan.wanted(peers, "n1", "vxlan")
    assert want.routes == {plan.Route(net("10.244.2.0/24"), ip("10.244.2.0"))}
    assert want.neighbours == {ip("10.244.2.0"): "02:00:00:00:00:02"}
    assert want.fdb == {"02:00:00:00:00:02": ip("10.0.0.2")}
    assert "n4" in want.skipped[0]
    gone = {"02:00:00:00:00:09": ip("10.0.0.9")}
    changes = plan.diff(want, [], {ip("10.244.9.0"): "02:00:00:00:00:09"}, gone)
    assert changes.set_fdb == (("02:00:00:00:00:02", ip("10.0.0.2")),)
    assert changes.del_fdb == (("02:00:00:00:00:09", ip("10.0.0.9")),)
    assert changes.del_neighbours == (ip("10.244.9.0"),)


def test_the_service_reads_the_section_of_a_conflist(tmp_path: Path) -> None:
    entry = netconf(tmp_path)
    conflist = {"cniVersion": "1.0.0", "name": "podnet", "plugins": [entry, {"type": "portmap"}]}
    path = tmp_path / "podnet.conflist"
    path.write_text(json.dumps(conflist))
    assert load(str(path)).network == "podnet"
    path.write_text(json.dumps({"name": "x", "plugins": [{"type": "bridge"}]}))
    with pytest.raises(ConfigProblem, match="no plugin entry"):
        load(str(path))


def test_only_cluster_etcd_imports_the_etcd_client() -> None:
    from tests.unit.test_architecture import MODULES, imported

    importers = {
        m for m in MODULES if any(t.startswith(("etcd3gw", "requests")) for t in imported(m))
    }
    assert importers == {"cni_bridge_py.cluster.etcd"}


def test_the_plugins_path_never_loads_the_etcd_client() -> None:
    """A cluster ADD runs config, the lease file and the verbs: no etcd3gw, no requests."""
    code = (
        "import sys, cni_bridge_py.verbs.dispatch, cni_bridge_py.cluster.leased;"
        "print(sorted(m for m in sys.modules if m.startswith(('etcd3gw', 'requests'))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]"
