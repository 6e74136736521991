"""Spec versions: the VERSION answer, what each config version allows."""

from __future__ import annotations

import json

import pytest

from cni_bridge_py import version as versions
from cni_bridge_py.errors import IncompatibleVersion
from tests.reference import CAPTURE

ALL = ("0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")


def test_version_json_is_byte_exact() -> None:
    assert versions.version_json() == (
        '{"cniVersion":"1.1.0","supportedVersions":'
        '["0.1.0","0.2.0","0.3.0","0.3.1","0.4.0","1.0.0","1.1.0"]}\n'
    )


def test_version_json_has_the_reference_layout() -> None:
    # The reference binary is older (it stops at 1.0.0); the layout is the same.
    ref = (CAPTURE / "version.stdout").read_text()
    ours = versions.version_json()
    assert ours.endswith("}\n") and ref.endswith("}\n")
    assert list(json.loads(ours)) == list(json.loads(ref))
    assert " " not in ours and " " not in ref


def test_supported_versions() -> None:
    assert versions.SUPPORTED_VERSIONS == ALL
    assert versions.CURRENT_VERSION == "1.1.0"
    assert versions.IMPLICIT_VERSION == "0.1.0"
    for v in ALL:
        versions.require_supported(v)


@pytest.mark.parametrize("bad", ["9.9.9", "1.0", "", "v1.0.0", "0.5.0"])
def test_unsupported_version_is_code_1_listing_versions(bad: str) -> None:
    with pytest.raises(IncompatibleVersion) as info:
        versions.require_supported(bad)
    assert info.value.code == 1
    assert info.value.msg == "incompatible CNI versions"
    assert info.value.details == (
        f'config is "{bad}", plugin supports '
        '["0.1.0" "0.2.0" "0.3.0" "0.3.1" "0.4.0" "1.0.0" "1.1.0"]'
    )


def test_parse_and_compare() -> None:
    assert versions.parse("0.3.1") == (0, 3, 1)
    assert versions.at_least("0.10.0", "0.4.0")
    assert versions.at_least("1.0.0", "1.0.0")
    assert not versions.at_least("0.3.1", "0.4.0")
    for bad in ("1.0", "a.b.c", "1.0.0.0", ""):
        with pytest.raises(ValueError):
            versions.parse(bad)


def refusal(verb: str, version: str) -> IncompatibleVersion | None:
    """What require_verb_allowed raises, or None when `verb` is allowed at `version`."""
    try:
        versions.require_verb_allowed(verb, version)
    except IncompatibleVersion as exc:
        return exc
    return None


@pytest.mark.parametrize(
    ("verb", "first"),
    [("ADD", "0.1.0"), ("DEL", "0.1.0"), ("CHECK", "0.4.0"), ("GC", "1.1.0"), ("STATUS", "1.1.0")],
)
def test_each_verb_is_allowed_from_its_first_version_on(verb: str, first: str) -> None:
    refused = {v: refusal(verb, v) for v in ALL}
    assert [v for v, exc in refused.items() if exc is None] == list(ALL[ALL.index(first) :])
    for v, exc in refused.items():
        if exc is not None:
            assert exc.code == 1
            assert exc.msg == f"config version does not allow {verb}"
            assert exc.details == f'config is "{v}"; {verb} needs cniVersion {first} or later'
