"""Running the installed plugin the way a runtime does: a subprocess with CNI_* variables, a
minimal environment and the config on stdin, inside the test's host namespace."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.integration.netns import Namespace

MINIMAL_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass
class Outcome:
    code: int
    stdout: str
    stderr: str

    @property
    def json(self) -> dict[str, Any]:
        value = json.loads(self.stdout)
        assert isinstance(value, dict)
        return value

    def ok(self) -> Outcome:
        assert self.code == 0, f"plugin failed ({self.code}): {self.stdout}\n{self.stderr}"
        return self

    def error(self, code: int) -> dict[str, Any]:
        assert self.code == 1, f"expected a failure, got {self.code}: {self.stdout}"
        body = self.json
        assert body["code"] == code, body
        assert "Traceback" not in self.stdout
        return body


@dataclass
class Plugin:
    executable: Path
    host: Namespace
    cni_path: str

    def run(
        self,
        command: str,
        config: dict[str, Any] | bytes,
        *,
        container_id: str = "",
        netns: str = "",
        ifname: str = "eth0",
        cni_args: str = "",
        extra_env: dict[str, str] | None = None,
    ) -> Outcome:
        env = {
            "PATH": MINIMAL_PATH,
            "CNI_COMMAND": command,
            "CNI_CONTAINERID": container_id,
            "CNI_NETNS": netns,
            "CNI_IFNAME": ifname,
            "CNI_ARGS": cni_args,
            "CNI_PATH": self.cni_path,
            **(extra_env or {}),
        }
        stdin = config if isinstance(config, bytes) else json.dumps(config).encode()
        proc = subprocess.run(
            ["ip", "netns", "exec", self.host.name, str(self.executable)],
            input=stdin,
            capture_output=True,
            env=env,
            check=False,
            timeout=60,
        )
        return Outcome(proc.returncode, proc.stdout.decode(), proc.stderr.decode())
