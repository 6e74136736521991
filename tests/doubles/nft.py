"""A scripted nftables transport (nft_transport.Transport): listings come from canned text or
JSON, every command is recorded, and writes fail while armed. What reaches it is exactly what
libnftables or `nft` would be given."""

from __future__ import annotations

from dataclasses import dataclass, field
from json import dumps
from typing import Any

from cni_bridge_py.firewall.nft_transport import Outcome

ENOENT = "Error: No such file or directory"


@dataclass
class ScriptedNft:
    # `list chain ...` (text, handles) -> what `nft -a -y list chain ...` printed.
    chains: dict[str, str] = field(default_factory=dict)
    # `list table ...` (JSON) -> the parsed `nft -j list table ...` document.
    tables: dict[str, dict[str, Any]] = field(default_factory=dict)
    commands: list[str] = field(default_factory=list)
    writes: list[str] = field(default_factory=list)
    fail_writes: int = 0
    kernel_has_nftables: bool = True

    def run(self, commands: str, *, json: bool = False, handles: bool = False) -> Outcome:
        self.commands.append(commands)
        if not self.kernel_has_nftables:
            return Outcome(False, "", "Error: Could not process rule: Operation not supported")
        if commands == "list tables":
            return Outcome(True, "", "")
        if commands.startswith("list "):
            return self._listing(commands, json, handles)
        if self.fail_writes:
            self.fail_writes -= 1
            return Outcome(False, "", "Error: Could not process rule: No such file or directory")
        self.writes.append(commands)
        return Outcome(True, "", "")

    def reads(self) -> list[str]:
        return [c for c in self.commands if c.startswith("list ")]

    def _listing(self, command: str, as_json: bool, handles: bool) -> Outcome:
        if as_json:
            found = self.tables.get(command)
            return Outcome(True, dumps(found), "") if found else Outcome(False, "", ENOENT)
        assert handles, "a text listing without handles names nothing to delete"
        text = self.chains.get(command)
        return Outcome(True, text, "") if text is not None else Outcome(False, "", ENOENT)
