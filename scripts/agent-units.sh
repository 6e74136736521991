#!/bin/sh
# The agent's systemd units (conf/cni-bridge-py-agent.socket and .service), for `make install`
# and `make uninstall`:  agent-units.sh install|uninstall UNIT_DIR BIN_DIR
#
# install writes both units into UNIT_DIR with ExecStart naming the launcher in BIN_DIR (its
# final path: without DESTDIR); uninstall removes them only while they are still exactly what
# install writes. With SYSTEMD_RUNNING=yes (the Makefile sets it where systemd is PID 1 and
# DESTDIR is empty) install also enables and starts the socket, and uninstall stops and
# disables both units; otherwise nothing systemd-related runs. SYSTEMCTL names systemctl.
set -eu

action=$1 unit_dir=$2 bin_dir=$3
conf=$(cd "$(dirname "$0")/../conf" && pwd)
units="cni-bridge-py-agent.socket cni-bridge-py-agent.service"
systemctl=${SYSTEMCTL:-systemctl}

render() {
    sed "s|^ExecStart=/opt/cni/bin/cni-bridge-py |ExecStart=$bin_dir/cni-bridge-py |" "$conf/$1"
}

case $action in
install)
    mkdir -p "$unit_dir"
    for unit in $units; do
        render "$unit" >"$unit_dir/.$unit.tmp"
        chmod 0644 "$unit_dir/.$unit.tmp"
        mv -f "$unit_dir/.$unit.tmp" "$unit_dir/$unit"  # never a half-written unit
        echo "$unit_dir/$unit"
    done
    if [ "${SYSTEMD_RUNNING:-}" = yes ]; then
        "$systemctl" daemon-reload
        "$systemctl" enable --now cni-bridge-py-agent.socket
        # A running agent still has the old code; a restart keeps the socket and its queue.
        "$systemctl" try-restart cni-bridge-py-agent.service
    fi
    ;;
uninstall)
    if [ "${SYSTEMD_RUNNING:-}" = yes ]; then
        "$systemctl" disable --now cni-bridge-py-agent.socket cni-bridge-py-agent.service || true
    fi
    status=0
    for unit in $units; do
        dest=$unit_dir/$unit
        if [ ! -e "$dest" ]; then
            continue
        elif render "$unit" | cmp -s - "$dest"; then
            rm -f "$dest" && echo "$dest"
        else
            echo "$dest differs from what make install writes: not removed" >&2
            status=1
        fi
    done
    if [ "${SYSTEMD_RUNNING:-}" = yes ]; then
        "$systemctl" daemon-reload
    fi
    exit $status
    ;;
*)
    echo "usage: $0 install|uninstall UNIT_DIR BIN_DIR" >&2
    exit 2
    ;;
esac
