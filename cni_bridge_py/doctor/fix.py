"""doctor --fix: GC, and nothing else. The bridge plugin's GC runs in process through the
plugin's own front and verb table (what the installed plugin runs for a runtime's GC), with
the valid attachments a runtime would give: libcni's cache of the network, plus every
healthy attachment (checks.gc_valid).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cni_bridge_py.front import handle
from cni_bridge_py.runner.cnitool import VALID_ATTACHMENTS_KEYS
from cni_bridge_py.runner.conf import go_json
from cni_bridge_py.verbs.dispatch import dispatch

# GC exists from spec 1.1.0 on: a network of an older cniVersion is collected as if it were
# 1.1.0 (its other fields mean the same), as a libcni >= 1.2 runtime would after an upgrade.
GC_VERSION = "1.1.0"
DEFAULT_CNI_PATH = "/opt/cni/bin"


def gc_config(plugin: Mapping[str, Any], valid: frozenset[tuple[str, str]]) -> bytes:
    """The GC request's stdin, as the runner builds it (cnitool._gc_plugins), with `valid`."""
    attachments = [{"containerID": cid, "ifname": ifname} for cid, ifname in sorted(valid) if cid]
    inject: dict[str, Any] = {"cniVersion": GC_VERSION}
    inject.update({key: attachments for key in VALID_ATTACHMENTS_KEYS})
    return go_json({**plugin, **inject})


def run_gc(
    plugin: Mapping[str, Any], valid: frozenset[tuple[str, str]], env: Mapping[str, str]
) -> tuple[bool, list[str]]:
    """(succeeded, lines): what GC removed (its notes), or its error."""
    gc_env = {
        **env,
        "CNI_COMMAND": "GC",
        "CNI_PATH": env.get("CNI_PATH") or DEFAULT_CNI_PATH,
        "CNI_CONTAINERID": "",
        "CNI_NETNS": "",
        "CNI_IFNAME": "",
    }
    answer = handle(gc_env, gc_config(plugin, valid), dispatch)
    lines = [line for line in answer.stderr.splitlines() if line.strip()]
    if answer.exit_code != 0:
        lines.append(answer.stdout.strip())
    return answer.exit_code == 0, lines
