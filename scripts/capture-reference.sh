#!/usr/bin/env bash
# Captures what the reference plugins (Debian 12's containernetworking-plugins: /usr/lib/cni/bridge,
# which delegates to /usr/lib/cni/host-local) print and leave behind on the network `mynet`
# (bridge refbr0, isGateway, ipMasq, host-local on 10.188.0.0/24), run directly as the CNI spec
# says: the golden data in tests/data/reference/direct (README.md there).
#
#   sudo scripts/capture-reference.sh OUT_DIR
#
# Steps: VERSION; ADD red; ADD blue; CHECK red; DEL red; DEL red again; DEL blue; ADD green,
# delete green's netns, DEL green. Root. Everything runs in a private mount namespace with its own
# /run and /var/lib (so the netns files and host-local's default dataDir are ours alone) and in
# throwaway network namespaces: the machine's files, links and rules are never touched.
set -euo pipefail

REFERENCE_DIR=${REFERENCE_DIR:-/usr/lib/cni}
NETWORK=mynet
CONF='{"cniVersion":"1.0.0","name":"mynet","type":"bridge","bridge":"refbr0","isGateway":true,"ipMasq":true,"ipam":{"type":"host-local","ranges":[[{"subnet":"10.188.0.0/24"}]],"routes":[{"dst":"0.0.0.0/0"}]}}'
HOST=capture-host

die() { echo "capture-reference: $*" >&2; exit 1; }

if [ "${1:-}" != --inside ]; then
    [ $# -eq 1 ] || die "usage: $0 OUT_DIR"
    [ "$(id -u)" -eq 0 ] || die "needs root (network and mount namespaces)"
    [ -x "$REFERENCE_DIR/bridge" ] && [ -x "$REFERENCE_DIR/host-local" ] ||
        die "no reference plugins in $REFERENCE_DIR: apt-get install containernetworking-plugins"
    out=$(realpath -m "$1")
    case "$out/" in
        /run/* | /var/run/* | /var/lib/*) die "OUT_DIR must not be under /run or /var/lib (hidden here)" ;;
    esac
    mkdir -p "$out"
    exec unshare --mount --propagation private -- bash "$0" --inside "$out"
fi

out=$2
mount -t tmpfs -o mode=0755 capture-run /run
mount -t tmpfs -o mode=0755 capture-var-lib /var/lib
work=$(mktemp -d /run/capture.XXXXXX)
trap 'for ns in "$HOST" cnih-red cnih-blue cnih-green; do ip netns del "$ns" 2>/dev/null || true; done' EXIT

ip netns add "$HOST"
ip netns exec "$HOST" ip link set lo up
for c in red blue green; do ip netns add "cnih-$c"; done

# call STEP COMMAND CONTAINER STDIN_FILE: the reference bridge as a runtime runs it, inside the
# host namespace, with a minimal environment; stdout to $work/STEP.stdout. Any failure stops.
call() {
    local step=$1 command=$2 container=$3 stdin=$4 netns=""
    [ -z "$container" ] || netns=/var/run/netns/$container
    if ! ip netns exec "$HOST" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
        CNI_COMMAND="$command" CNI_CONTAINERID="$container" CNI_NETNS="$netns" \
        CNI_IFNAME=eth0 CNI_PATH="$REFERENCE_DIR" "$REFERENCE_DIR/bridge" \
        <"$stdin" >"$work/$step.stdout" 2>"$work/$step.stderr"; then
        die "$step failed: $(cat "$work/$step.stdout" "$work/$step.stderr")"
    fi
}

# state NAME: host-local's files for the network, one per line: ./<name><TAB><repr of the bytes>.
state() {
    mkdir -p "$out/$1"
    python3 -c '
import pathlib, sys
directory = pathlib.Path(sys.argv[1])
for path in sorted(directory.iterdir(), key=lambda p: p.name):
    sys.stdout.write(f"./{path.name}\t{path.read_bytes()!r}\n")
' "/var/lib/cni/networks/$NETWORK" >"$out/$1/var-lib-cni-networks.txt"
}

printf '%s' "$CONF" >"$work/conf.json"
printf '%s' '{"cniVersion":"1.0.0"}' >"$work/version.json"

call version VERSION "" "$work/version.json"
cp "$work/version.stdout" "$out/version.stdout"

call add-red ADD cnih-red "$work/conf.json"
cp "$work/add-red.stdout" "$out/add-red.stdout"
state state-1-after-add-red
ip netns exec "$HOST" iptables -t nat -S >"$out/state-1-after-add-red/iptables-nat.txt"

call add-blue ADD cnih-blue "$work/conf.json"
state state-2-after-add-blue

# CHECK's input: the config with the ADD result as prevResult, as libcni sends it.
python3 -c '
import json, sys
conf, result = (json.load(open(p)) for p in sys.argv[1:3])
print(json.dumps({**conf, "prevResult": result}, separators=(",", ":")))
' "$work/conf.json" "$work/add-red.stdout" >"$out/check-red.stdin.json"
call check-red CHECK cnih-red "$out/check-red.stdin.json"

call del-red DEL cnih-red "$work/conf.json"
call del-red-again DEL cnih-red "$work/conf.json"
state state-3-after-del-red

call del-blue DEL cnih-blue "$work/conf.json"
state state-4-after-del-blue

call add-green ADD cnih-green "$work/conf.json"
ip netns del cnih-green
call del-green-netns-gone DEL cnih-green "$work/conf.json"
state state-7-after-del-green-netns-gone
