#!/usr/bin/env bash
# The seed topology, through the plugin: namespaces red and blue on bridge v-net-0
# (192.168.15.0/24, gateway 192.168.15.5 on the bridge), MASQUERADE for traffic leaving the
# subnet, then DEL and proof that nothing is left.
#
# The "host" of this demo is a throwaway namespace (demo-host), so the machine's own
# interfaces, routes, iptables rules and ip_forward are never changed. Everything the demo
# makes is removed on exit, also when a step fails. Traffic goes only to namespaces it made.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-$here/.venv/bin/python}
HOST=demo-host RED=red BLUE=blue OUTSIDE=outside
OUTSIDE_NET_HOST=10.200.0.1/24 OUTSIDE_ADDR=10.200.0.2
work=$(mktemp -d /tmp/cni-bridge-py-demo.XXXXXX)
made=()

say()  { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show() { printf '$ %s\n' "$*"; "$@"; }
in_host() { ip netns exec "$HOST" "$@"; }

cleanup() {
    local rc=$?
    for ns in "${made[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
    rm -rf "$work"
    [ $rc -eq 0 ] || echo "demo FAILED (exit $rc); everything it made was removed" >&2
    exit $rc
}
trap cleanup EXIT

for ns in "$HOST" "$RED" "$BLUE" "$OUTSIDE"; do
    if ip netns list | awk '{print $1}' | grep -qx "$ns"; then
        echo "namespace $ns already exists; the demo will not touch it. Remove it or rename it first." >&2
        exit 1
    fi
done

say "install the plugin into a private CNI bin dir, and the network config"
"$python" -m cni_bridge_py.install --bin-dir "$work/bin" >/dev/null
mkdir -p "$work/net.d"
# conf/mynet.conflist as shipped, with the IPAM store in the demo's own directory.
"$python" - "$here/conf/mynet.conflist" "$work/net.d/mynet.conflist" "$work/networks" <<'PY'
import json, sys
conf = json.load(open(sys.argv[1]))
conf["plugins"][0]["ipam"]["dataDir"] = sys.argv[3]
json.dump(conf, open(sys.argv[2], "w"), indent=2)
PY
cat "$work/net.d/mynet.conflist"
export NETCONFPATH=$work/net.d CNI_PATH=$work/bin CNI_CACHE_DIR=$work/cache
cnitool() { show ip netns exec "$HOST" "$work/bin/cni-bridge-py" cnitool "$@"; }

say "namespaces: $HOST (plays the host), $RED, $BLUE, and $OUTSIDE on another subnet"
for ns in "$HOST" "$RED" "$BLUE" "$OUTSIDE"; do ip netns add "$ns"; made+=("$ns"); done
in_host ip link set lo up
# outside hangs off the host on 10.200.0.0/24 and has NO route back to 192.168.15.0/24:
# it can only answer red and blue if their traffic was masqueraded to 10.200.0.1.
ip -n "$HOST" link add to-outside type veth peer name eth0 netns "$OUTSIDE"
ip -n "$HOST" addr add "$OUTSIDE_NET_HOST" dev to-outside
ip -n "$HOST" link set to-outside up
ip -n "$OUTSIDE" addr add "$OUTSIDE_ADDR/24" dev eth0
ip -n "$OUTSIDE" link set eth0 up
ip -n "$OUTSIDE" link set lo up
show ip -n "$OUTSIDE" route

say "ADD red and blue through the cnitool-compatible runner"
cnitool add mynet "/var/run/netns/$RED"
echo
cnitool add mynet "/var/run/netns/$BLUE"
echo

say "what the plugin set up"
show ip -n "$RED" -br addr
show ip -n "$RED" route
show ip -n "$BLUE" -br addr
show ip -n "$BLUE" route
show ip -n "$HOST" -br addr show v-net-0
show ip -n "$HOST" -br link show master v-net-0
show ip netns exec "$HOST" cat /proc/sys/net/ipv4/ip_forward

red_ip=$(ip -n "$RED" -4 -o addr show eth0 | awk '{print $4}' | cut -d/ -f1)
blue_ip=$(ip -n "$BLUE" -4 -o addr show eth0 | awk '{print $4}' | cut -d/ -f1)

say "traffic: red <-> blue, both -> gateway"
show ip netns exec "$RED" ping -c 2 -W 2 "$blue_ip"
show ip netns exec "$BLUE" ping -c 2 -W 2 "$red_ip"
show ip netns exec "$RED" ping -c 1 -W 2 192.168.15.5
show ip netns exec "$BLUE" ping -c 1 -W 2 192.168.15.5

say "MASQUERADE: the NAT rules, and red/blue reaching $OUTSIDE (which has no route back)"
show ip netns exec "$HOST" iptables -t nat -S
show ip netns exec "$RED" ping -c 2 -W 2 "$OUTSIDE_ADDR"
show ip netns exec "$BLUE" ping -c 1 -W 2 "$OUTSIDE_ADDR"

say "CHECK both attachments against the cached results"
cnitool check mynet "/var/run/netns/$RED"
cnitool check mynet "/var/run/netns/$BLUE"
echo "checks passed"

say "DEL both, then show that nothing is left"
cnitool del mynet "/var/run/netns/$RED"
cnitool del mynet "/var/run/netns/$BLUE"
show ip -n "$RED" -br link
show ip -n "$HOST" -br link show master v-net-0
show ip netns exec "$HOST" iptables -t nat -S
show ls -A "$work/networks/mynet"
leftover=$( (ip -n "$HOST" -br link show master v-net-0; ip netns exec "$HOST" iptables -t nat -S | grep CNI- ;
            ls "$work/networks/mynet" | grep -v -e '^lock$' -e '^last_reserved_ip' ; ls "$work/cache/results" 2>/dev/null) || true)
if [ -n "$leftover" ]; then
    echo "LEFT BEHIND:"; echo "$leftover"; exit 1
fi
echo "nothing left: no veth, no NAT chain or rule, no reservation, no cached result"
say "demo passed (the namespaces are removed on exit)"
