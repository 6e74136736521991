"""The `nft` executable as a transport: one process per command, where libnftables cannot be
loaded into this process."""

from __future__ import annotations

import subprocess

from cni_bridge_py.firewall.nft_transport import Outcome

# nft's messages come from strerror: the C locale keeps "No such file or directory" stable.
_ENV = {"LC_ALL": "C"}


class NftBinary:
    def __init__(self, executable: str) -> None:
        self.executable = executable

    def run(self, commands: str, *, json: bool = False, handles: bool = False) -> Outcome:
        flags = [*(["-j"] if json else []), *(["-a", "-y"] if handles else [])]
        # `nft -j -f -` prints nothing for a text command (nft 1.0.6): a text command that
        # wants JSON out goes on the command line; its words never need quoting here.
        text_in_json_out = json and not commands.lstrip().startswith("{")
        args = commands.split() if text_in_json_out else ["-f", "-"]
        proc = subprocess.run(
            [self.executable, *flags, *args],
            input=None if text_in_json_out else commands,
            capture_output=True,
            text=True,
            errors="surrogateescape",
            env=_ENV,
            check=False,
        )
        return Outcome(proc.returncode == 0, proc.stdout, proc.stderr)
