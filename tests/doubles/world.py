"""A whole fake host for the verbs: the kernel's namespaces, both masquerade backends, the
spoof checker, IPAM stores and one call log; `ports()` hands the verbs a ready `Ports`."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator

from cni_bridge_py.firewall.backend import MasqBackend, SpoofChecker
from cni_bridge_py.ipam.config import DEFAULT_DATA_DIR, IpamConf
from cni_bridge_py.ipam.engine import ipam_for
from cni_bridge_py.ipam.interface import Ipam
from cni_bridge_py.ports import Background, Immediate, Ports
from cni_bridge_py.request import Notes, Request
from tests.doubles.calls import Calls
from tests.doubles.firewall import FakeMasq, FakeSpoofChecker
from tests.doubles.ipam import RecordingIpam
from tests.doubles.kernel import FakeLinks, Kernel
from tests.doubles.store import MemoryStore


class World:
    def __init__(
        self, *, masq: tuple[str, ...] = ("iptables", "nftables"), nft: bool = True
    ) -> None:
        """`masq`: the backends whose tools this host has; `nft`: whether macspoofchk can run."""
        self.calls = Calls()
        self.kernel = Kernel(self.calls)
        self.host = self.kernel.host
        self.masq = {name: FakeMasq(name, self.calls) for name in masq}
        self.spoof: FakeSpoofChecker | None = FakeSpoofChecker(self.calls) if nft else None
        self.stores: dict[tuple[str, str], MemoryStore] = {}
        # The diagnostics of the latest ports() handed out.
        self.notes = Notes()
        self._counter = itertools.count(1)
        # Suffixes random_suffix answers first (to force host veth name clashes).
        self.suffixes: list[str] = []
        # Where the verbs leave slow work (the agent's; the one-shot plugin does it at once).
        self.background: Background = Immediate()

    def netns(self, path: str) -> FakeLinks:
        return self.kernel.add_netns(path)

    def store(self, network: str, data_dir: str = DEFAULT_DATA_DIR) -> MemoryStore:
        return self.stores.setdefault((data_dir, network), MemoryStore())

    def reservations(self, network: str) -> dict[str, tuple[str, str]]:
        return {str(a): owner for a, owner in self.store(network).held.items()}

    def ports(self) -> Ports:
        """The ports of one request, with fresh notes."""
        self.notes = notes = Notes()

        def ipam(conf: IpamConf | None, request: Request) -> Ipam:
            engine = ipam_for(conf, request, self._open_store, notes)
            return RecordingIpam(engine, self.calls)

        return Ports(
            host=self.host,
            open_host=self._open_host,
            open_netns=self.kernel.open_netns,
            sysctl=self.kernel.sysctl,
            ipam=ipam,
            masq=self._masq,
            masq_all=lambda: list(self.masq.values()),
            netns_exists=self.kernel.netns_exists,
            check_netns=self.kernel.check_netns,
            netns_sysctl=self.kernel.netns_sysctl,
            random_suffix=self._random_suffix,
            notes=notes,
            spoof=self._spoof,
            background=self.background,
        )

    @contextlib.contextmanager
    def _open_host(self) -> Iterator[FakeLinks]:
        yield self.host

    def _open_store(self, data_dir: str, network: str) -> MemoryStore:
        return self.store(network, data_dir)

    def _masq(self, preference: str) -> MasqBackend | None:
        """firewall.backend.default_backend's choice among the tools this host has."""
        if preference:
            return self.masq.get(preference)
        return self.masq.get("iptables") or self.masq.get("nftables")

    def _spoof(self) -> SpoofChecker | None:
        return self.spoof

    def _random_suffix(self) -> str:
        if self.suffixes:
            return self.suffixes.pop(0)
        return f"{next(self._counter):08x}"
