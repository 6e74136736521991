"""STATUS (spec 1.1) for host-local: could an ADD succeed right now?"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from cni_bridge_py.errors import CniError, PluginUnavailable
from cni_bridge_py.ipam.ranges import RangeSet
from cni_bridge_py.ipam.store import Store


def status(
    open_store: Callable[[str, str], Store],
    data_dir: str,
    network: str,
    range_sets: Sequence[RangeSet],
) -> None:
    """PluginUnavailable (code 50) naming the reason when ADD could not succeed: the data dir
    cannot take a reservation, or a range set has no free address (ADD needs one from each)."""
    try:
        store = open_store(data_dir, network)
        store.check_writable()
    except CniError as exc:
        raise PluginUnavailable(
            f"host-local cannot record reservations: {exc.msg}",
            f'{exc.details}; fix "ipam.dataDir" or the filesystem under it'
            if exc.details
            else 'fix "ipam.dataDir" or the filesystem under it',
        ) from exc
    # No lock: STATUS is advisory and must not wait behind a slow ADD.
    taken = {addr for addr, _ in store.owners()}
    for index, range_set in enumerate(range_sets):
        if all(addr in taken for addr, _ in range_set.candidates(None)):
            raise PluginUnavailable(
                f"no IP addresses available in range set {index}: {range_set}",
                "delete unused attachments (or run GC), or widen the range",
            )
