"""The reference capture the tests carry (tests/data/reference/README.md says what and how)."""

from __future__ import annotations

from pathlib import Path

CAPTURE = Path(__file__).parent / "data" / "reference" / "direct"
CAPTURE_SCRIPT = Path(__file__).parents[1] / "scripts" / "capture-reference.sh"
