# cni-bridge-py. `make demo` and `make test` work on a fresh Debian 12 machine as root:
# each installs the Debian packages and the venv it needs first.

# Debian's own python3 when it can make a venv (python3-venv): built with PGO and LTO, it
# starts ~2 ms sooner than a plain source build (pyenv's) and runs the plugin's Python ~20 %
# faster; a plugin starts once per container. Otherwise the python3 on PATH.
PYTHON      ?= $(shell /usr/bin/python3 -c 'import ensurepip' 2>/dev/null && echo /usr/bin/python3 || echo python3)
VENV        ?= .venv
CNI_BIN_DIR ?= /opt/cni/bin
CNI_CONF_DIR ?= /etc/cni/net.d
DESTDIR     ?=
SYSTEMD_UNIT_DIR ?= /etc/systemd/system
SYSTEMCTL   ?= systemctl
# The agent's socket is enabled only where systemd is PID 1 (sd_booted(3)), and never by a
# DESTDIR install (staged for a package: the package's own scripts enable it).
SYSTEMD_RUNNING ?= $(if $(DESTDIR),,$(shell test -d /run/systemd/system && echo yes))
ALIASES     ?=
BACKEND     ?= vxlan
PYTEST_ARGS ?=

# Debian packages the plugin drives (iproute2, iptables, nftables), the tests/demo use (ping)
# and the conformance suite compares against (the reference plugins in /usr/lib/cni).
DEB_PACKAGES := iproute2 iptables nftables iputils-ping containernetworking-plugins
DEB_TOOLS    := ip iptables nft ping /usr/lib/cni/bridge
# The venv on Debian's python3 (see PYTHON): its venv module.
DEB_PACKAGES += python3-venv
DEB_TOOLS    += /usr/lib/python3.11/ensurepip
# systemd-socket-activate starts the agent the way systemd's socket unit does, in the tests of
# socket activation (the package installs it without needing systemd to run).
DEB_PACKAGES += systemd
DEB_TOOLS    += systemd-socket-activate
# The runtimes that drive the plugin in tests/runtimes: upstream cnitool (built offline from
# Go 1.19, libcni's Debian source and cnitool.go from `apt-get source`), containerd + runc,
# podman, and busybox-static for the containers' root filesystem.
DEB_PACKAGES += golang-go golang-github-appc-cni-dev dpkg-dev containerd runc podman busybox-static
# tests/cluster and `make demo-cluster`: etcd members in namespaces, inspected with etcdctl.
DEB_PACKAGES += etcd-server etcd-client
DEB_TOOLS    += etcd etcdctl
# `cni-bridge-py inspect --graph` renders with Graphviz's dot (and its tests check the SVG).
DEB_PACKAGES += graphviz
DEB_TOOLS    += dot
DEB_TOOLS    += go dpkg-source /usr/share/gocode/src/github.com/containernetworking/cni/libcni \
                containerd ctr runc podman busybox

VENV_PY := $(VENV)/bin/python
STAMP   := $(VENV)/.installed

.PHONY: all deps venv install uninstall install-conf uninstall-conf demo test lint typecheck unit integration \
	runtimes cnitool clean

all: venv

## Debian packages; apt-get runs only when a tool is missing.
deps:
	@missing=""; for t in $(DEB_TOOLS); do command -v $$t >/dev/null 2>&1 || test -x $$t || missing="$$missing $$t"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages (missing:$$missing)"; \
		DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(DEB_PACKAGES); \
	fi

## The project's venv with its test extras (on Debian's python3: `make deps` installs its
## venv module where it is missing).
venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV_PY) -m pip install -q --upgrade pip
	# compat mode: a plain path entry, not an import hook that costs every run ~15 ms.
	$(VENV_PY) -m pip install -q --config-settings editable_mode=compat -e '.[test,cluster,inspect]'
	touch $(STAMP)

## The launchers (cni-bridge-py, cni-host-local-py) into $(DESTDIR)$(CNI_BIN_DIR);
## ALIASES="bridge host-local" adds the reference's names for a drop-in swap. Also the agent's
## systemd units into $(DESTDIR)$(SYSTEMD_UNIT_DIR), its socket enabled where systemd runs.
install: venv
	$(VENV_PY) -m cni_bridge_py.install --bin-dir $(DESTDIR)$(CNI_BIN_DIR) $(foreach a,$(ALIASES),--alias $(a))
	SYSTEMD_RUNNING="$(SYSTEMD_RUNNING)" SYSTEMCTL="$(SYSTEMCTL)" \
		sh scripts/agent-units.sh install "$(DESTDIR)$(SYSTEMD_UNIT_DIR)" "$(CNI_BIN_DIR)"

## Removes exactly what install wrote (never a file that is not ours).
uninstall: venv
	$(VENV_PY) -m cni_bridge_py.install --uninstall --bin-dir $(DESTDIR)$(CNI_BIN_DIR) $(foreach a,$(ALIASES),--alias $(a))
	SYSTEMD_RUNNING="$(SYSTEMD_RUNNING)" SYSTEMCTL="$(SYSTEMCTL)" \
		sh scripts/agent-units.sh uninstall "$(DESTDIR)$(SYSTEMD_UNIT_DIR)" "$(CNI_BIN_DIR)"

## make install-conf NET=conf/mynet.conflist
install-conf:
	@test -n "$(NET)" || { echo "usage: make install-conf NET=conf/<file>"; exit 2; }
	install -D -m 0644 $(NET) $(DESTDIR)$(CNI_CONF_DIR)/$(notdir $(NET))

## Removes $(DESTDIR)$(CNI_CONF_DIR)/<file> only if it is still the file NET installed.
uninstall-conf:
	@test -n "$(NET)" || { echo "usage: make uninstall-conf NET=conf/<file>"; exit 2; }
	@dest="$(DESTDIR)$(CNI_CONF_DIR)/$(notdir $(NET))"; \
	if [ ! -e "$$dest" ]; then :; \
	elif cmp -s "$(NET)" "$$dest"; then rm -f "$$dest" && echo "$$dest"; \
	else echo "$$dest differs from $(NET): not removed"; exit 1; fi

## The seed topology: red and blue through the plugin, gateway, masquerade, then DEL.
demo: deps venv
	bash scripts/demo.sh

## Three nodes of a cluster network with a 3-member etcd cluster, all in throwaway namespaces:
## subnet leases, pods pinging across nodes, masquerade to an outside network, `node --status`
## (BACKEND=host-gw for routes instead of VXLAN).
.PHONY: demo-cluster
demo-cluster: deps venv
	BACKEND="$(BACKEND)" bash scripts/demo-cluster.sh

lint: venv
	$(VENV)/bin/ruff check cni_bridge_py tests tools
	$(VENV)/bin/ruff format --check cni_bridge_py tests tools

typecheck: venv
	$(VENV)/bin/mypy

unit: venv
	$(VENV)/bin/pytest tests/unit -q $(PYTEST_ARGS)

integration: deps venv
	$(VENV)/bin/pytest tests/integration -q $(PYTEST_ARGS)

## Upstream cnitool, containerd's ctr and podman drive the installed plugin (root).
runtimes: deps venv
	$(VENV)/bin/pytest tests/runtimes -q $(PYTEST_ARGS)

## Upstream cnitool, built offline from Debian packages into build/cnitool/.
cnitool: deps
	bash scripts/build-cnitool.sh build/cnitool

## ruff, mypy, then every test (integration tests need root).
test: deps venv lint typecheck
	$(VENV)/bin/pytest -q $(PYTEST_ARGS)

## The benchmark of issue 10 (root): the reference plugins against ours one-shot and ours with
## its agent, interleaved in throwaway namespaces: plugin calls, then whole container starts
## (`podman run --rm`, `ctr run --rm --cni`) in private runtimes (podman, containerd and
## busybox-static come with `deps`), then pods through containerd's CRI (the CRI suite's
## timing test, tools/bench/cri.py; --no-cri skips it). Writes docs/benchmarks.md and
## docs/benchmarks.json with issue 10's targets (~7 min on 2 cores). It first waits up to 5 min for the 1-min load
## average to fall to 1; a run that starts above it is marked not quotable. The harness is
## tools/bench/, outside the installed package. GNU time (Debian `time`) measures each plugin
## process's peak RSS. BENCH_ARGS passes options, e.g. BENCH_ARGS="--runtime-runs 0".
BENCH_ARGS ?=
.PHONY: bench bench-smoke bench-deps
bench: deps venv bench-deps
	$(VENV_PY) -m tools.bench $(BENCH_ARGS)

## A few calls of each measurement and two runs of each container start, as the smoke test
## runs it (~30 s): no file written, no timing judged, no waiting for a quiet machine.
bench-smoke: deps venv bench-deps
	$(VENV_PY) -m tools.bench --quick $(BENCH_ARGS)

bench-deps:
	@test -x /usr/bin/time || { echo "installing Debian package time"; \
		DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends time; }

## The reliability suite of issue 6 (root) in its full profile: the bad-input corpus one-shot
## and through the agent, 3000 hypothesis examples per property, SIGKILL at every ADD and DEL
## step (one-shot and agent, iptables and nftables), 3 rounds of 64 concurrent ADDs then DELs
## (one-shot, agent, mixed), restarts and safety; then the figures in docs/reliability.md.
## `make test` runs the same suite in its CI profile.
.PHONY: reliability
reliability: deps venv
	RELIABILITY_PROFILE=full $(VENV)/bin/pytest tests/reliability -q $(PYTEST_ARGS)
	$(VENV_PY) -m tests.reliability.figures docs/reliability.md

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .ruff_cache .pytest_cache
