#!/usr/bin/env bash
# Three nodes of a cluster network (docs/cluster.md), each a network namespace with its own
# bridge, store, node service and pod, joined by an underlay bridge in another namespace; a
# 3-member etcd cluster, each member in its own namespace on the underlay. The node services
# lease a /24 each from etcd and route to each other (BACKEND=vxlan, the default as in
# conf/cluster.conflist, or BACKEND=host-gw); the pods ping each other across nodes, a pod
# reaches an "outside" namespace masqueraded, and `node --status` shows the cluster.
#
# Nothing outside the demo's own namespaces is touched; traffic goes only between them.
# Every process is stopped by its PID and every namespace removed on exit, also on failure.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-$here/.venv/bin/python}
backend=${BACKEND:-vxlan}
P=democl   # every namespace of the demo starts with this
UNDERLAY=10.213.0
work=$(mktemp -d /tmp/cni-bridge-py-demo-cluster.XXXXXX)
made=() pids=()

say()  { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show() { printf '$ %s\n' "$*"; "$@"; }

cleanup() {
    local rc=$?
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    for ns in "${made[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
    rm -rf "$work"
    [ $rc -eq 0 ] || echo "demo FAILED (exit $rc); everything it made was removed" >&2
    exit $rc
}
trap cleanup EXIT

if ip netns list | awk '{print $1}' | grep -q "^$P-"; then
    echo "namespaces $P-* already exist; the demo will not touch them." >&2
    exit 1
fi
newns() { ip netns add "$1"; made+=("$1"); ip -n "$1" link set lo up; }
port=0
attach() {  # attach NAMESPACE ADDRESS: a veth from the underlay bridge, "ul" inside
    port=$((port + 1))
    ip -n "$P-underlay" link add "p$port" type veth peer name ul netns "$1"
    ip -n "$P-underlay" link set "p$port" master ul0 up
    ip -n "$1" addr add "$2/24" dev ul
    ip -n "$1" link set ul up
}

say "the underlay: bridge ul0 in $P-underlay"
newns "$P-underlay"
ip -n "$P-underlay" link add ul0 type bridge
ip -n "$P-underlay" link set ul0 up

say "etcd: three members on the underlay ($UNDERLAY.101-103), temp data dirs"
initial="" endpoints=""
for i in 1 2 3; do
    initial+="${initial:+,}m$i=http://$UNDERLAY.10$i:2380"
    endpoints+="${endpoints:+,}\"http://$UNDERLAY.10$i:2379\""
done
for i in 1 2 3; do
    newns "$P-etcd$i"
    attach "$P-etcd$i" "$UNDERLAY.10$i"
    a="http://$UNDERLAY.10$i"
    ip netns exec "$P-etcd$i" etcd --name "m$i" --data-dir "$work/etcd$i" \
        --listen-client-urls "$a:2379" --advertise-client-urls "$a:2379" \
        --listen-peer-urls "$a:2380" --initial-advertise-peer-urls "$a:2380" \
        --initial-cluster "$initial" --initial-cluster-token "$P-$$" \
        --initial-cluster-state new >"$work/etcd$i.log" 2>&1 &
    pids+=($!)
done
etcdctl() { ip netns exec "$P-etcd1" etcdctl --endpoints="http://$UNDERLAY.101:2379" "$@"; }
for _ in $(seq 100); do etcdctl endpoint health >/dev/null 2>&1 && break; sleep 0.2; done
show etcdctl member list

say "install the plugin into a private CNI bin dir"
"$python" -m cni_bridge_py.install --bin-dir "$work/bin" >/dev/null
export CNI_PATH=$work/bin CNI_CACHE_DIR=$work/cache

say "three nodes: namespace, underlay address, conf/cluster.conflist with the demo's etcd"
for i in 1 2 3; do
    node="$P-node$i"
    newns "$node"
    attach "$node" "$UNDERLAY.1$i"
    mkdir -p "$work/node$i/net.d"
    "$python" - "$here/conf/cluster.conflist" "$work/node$i" "[$endpoints]" "node$i" \
        "$UNDERLAY.1$i" "$backend" <<'PY'
import json, sys
src, home, endpoints, name, address, backend = sys.argv[1:]
conf = json.load(open(src))
plugin = conf["plugins"][0]
plugin["ipam"]["dataDir"] = f"{home}/networks"
plugin["cluster"].update(
    etcdEndpoints=json.loads(endpoints), nodeName=name, nodeAddress=address,
    subnetFile=f"{home}/subnet.json", backend=backend, leaseTTL=10, syncInterval=1,
)
conf["plugins"] = [plugin]  # portmap is not part of the demo
json.dump(conf, open(f"{home}/net.d/cluster.conflist", "w"), indent=2)
PY
    ip netns exec "$node" "$work/bin/cni-bridge-py" node \
        --config "$work/node$i/net.d/cluster.conflist" >"$work/node$i/node.log" 2>&1 &
    pids+=($!)
done
sed -n '1,40p' "$work/node1/net.d/cluster.conflist"
for i in 1 2 3; do
    for _ in $(seq 100); do [ -s "$work/node$i/subnet.json" ] && break; sleep 0.1; done
    show cat "$work/node$i/subnet.json"
done
show etcdctl get --prefix --keys-only /cni-bridge-py/podnet/

say "a pod on each node, through the cnitool-compatible runner"
declare -A pod_ip
for i in 1 2 3; do
    newns "$P-pod$i"
    NETCONFPATH=$work/node$i/net.d show ip netns exec "$P-node$i" "$work/bin/cni-bridge-py" \
        cnitool add podnet "/var/run/netns/$P-pod$i" >/dev/null
    pod_ip[$i]=$(ip -n "$P-pod$i" -4 -o addr show eth0 | awk '{print $4}' | cut -d/ -f1)
    echo "pod$i on node$i: ${pod_ip[$i]}"
done
sleep 2  # one sync interval: every node has seen the others

say "what node1 holds for the others ($backend)"
show ip -n "$P-node1" route show proto 211
if [ "$backend" = vxlan ]; then
    show ip -n "$P-node1" -d -br link show cbp.vxlan
    show bridge -n "$P-node1" fdb show dev cbp.vxlan
    show ip -n "$P-node1" neigh show dev cbp.vxlan
fi

say "pods ping each other across nodes, by pod address"
for i in 1 2 3; do
    for j in 1 2 3; do
        [ "$i" = "$j" ] || show ip netns exec "$P-pod$i" ping -c 1 -W 2 "${pod_ip[$j]}"
    done
done

say "masquerade only outside the cluster range: node1's NAT rules, then an outside network"
show ip netns exec "$P-node1" iptables -t nat -S
newns "$P-outside"
ip -n "$P-node1" link add out0 type veth peer name eth0 netns "$P-outside"
ip -n "$P-node1" addr add 10.200.0.1/24 dev out0
ip -n "$P-node1" link set out0 up
ip -n "$P-outside" addr add 10.200.0.2/24 dev eth0
ip -n "$P-outside" link set eth0 up
show ip -n "$P-outside" route   # no route back to 10.244.0.0/16
show ip netns exec "$P-pod1" ping -c 1 -W 2 10.200.0.2

say "cni-bridge-py node --status (on node1)"
show ip netns exec "$P-node1" "$work/bin/cni-bridge-py" node --status \
    --config "$work/node1/net.d/cluster.conflist"

say "node1's service log"
cat "$work/node1/node.log"
say "demo passed (services, etcd and namespaces are removed on exit)"
