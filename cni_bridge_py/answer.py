"""What one plugin invocation prints and its exit code, wherever it was answered.

The front (one-shot), the agent and the front's agent client all speak this one type. It
imports nothing: the forwarding path of every plugin run loads it.
"""

from __future__ import annotations


class Answer:
    """stdout (the result or error JSON), stderr (diagnostics for the runtime's log) and
    the exit code. A plain class: dataclasses would cost the forwarding path ~8 ms."""

    __slots__ = ("exit_code", "stderr", "stdout")

    def __init__(self, stdout: str = "", stderr: str = "", exit_code: int = 0) -> None:
        self.stdout = stdout
        self.stderr = stderr
        self.exit_code = exit_code

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Answer):
            return NotImplemented
        return (self.stdout, self.stderr, self.exit_code) == (
            other.stdout,
            other.stderr,
            other.exit_code,
        )

    __hash__ = None  # type: ignore[assignment]  # mutable, compared by value

    def __repr__(self) -> str:
        return f"Answer(stdout={self.stdout!r}, stderr={self.stderr!r}, exit_code={self.exit_code})"
