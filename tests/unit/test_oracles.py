"""The root suites' expectations that are computed rather than captured agree with the
reference capture (tests/data/reference), so a wrong oracle cannot pass along with the plugin."""

from __future__ import annotations

from tests.reference import CAPTURE
from tests.support.plugin import nat_rules_for


def test_nat_rules_for_is_what_the_reference_made_for_red() -> None:
    shown = (CAPTURE / "state-1-after-add-red" / "iptables-nat.txt").read_text().splitlines()
    rules = [line for line in shown if not line.startswith("-P ")]  # the built-in policies
    # The chain name in those rules is chain_name's: sha512 of network + container ID.
    assert nat_rules_for("mynet", "cnih-red", "10.188.0.2", "10.188.0.0/24") == rules
