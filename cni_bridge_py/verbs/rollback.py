"""A stack of undo actions: ADD registers one per step; a failure runs them newest first."""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType

from cni_bridge_py.request import Notes


class Rollback:
    """Undo failures are noted for the runtime's log, not raised: the original error is what
    the runtime must see."""

    def __init__(self, notes: Notes) -> None:
        self._notes = notes
        self._undo: list[tuple[str, Callable[[], object]]] = []

    def push(self, what: str, undo: Callable[[], object]) -> None:
        self._undo.append((what, undo))

    def __enter__(self) -> Rollback:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if kind is None:
            return
        # Every undo runs even if one fails; the original error is what the runtime sees.
        while self._undo:
            what, undo = self._undo.pop()
            try:
                undo()
            except Exception:
                import traceback  # noqa: PLC0415 - only a failed undo needs it

                self._notes.add(f"rollback: undoing {what} failed:\n{traceback.format_exc()}")
