"""CNI spec versions: what we support, how they compare, which verbs each allows."""

# No `from __future__ import annotations` (a module load of its own) and errors only when one
# is raised: VERSION, the most frequent call, loads this module alone.

SUPPORTED_VERSIONS: tuple[str, ...] = (
    "0.1.0",
    "0.2.0",
    "0.3.0",
    "0.3.1",
    "0.4.0",
    "1.0.0",
    "1.1.0",
)
CURRENT_VERSION = "1.1.0"
# The spec: a config without cniVersion is 0.1.0.
IMPLICIT_VERSION = "0.1.0"

# The first config version that allows each verb (older configs get code 1).
VERB_MIN_VERSION: dict[str, str] = {
    "ADD": "0.1.0",
    "DEL": "0.1.0",
    "CHECK": "0.4.0",
    "GC": "1.1.0",
    "STATUS": "1.1.0",
}


def parse(version: str) -> tuple[int, int, int]:
    """'0.3.1' -> (0, 3, 1); ValueError for anything that is not three numbers."""
    parts = version.split(".")
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        raise ValueError(f"{version!r} is not a semantic version")
    major, minor, patch = (int(p) for p in parts)
    return major, minor, patch


def at_least(version: str, minimum: str) -> bool:
    return parse(version) >= parse(minimum)


def require_supported(version: str) -> None:
    if version not in SUPPORTED_VERSIONS:
        from cni_bridge_py.errors import IncompatibleVersion  # noqa: PLC0415 - see the top

        supported = " ".join(f'"{v}"' for v in SUPPORTED_VERSIONS)
        raise IncompatibleVersion(
            "incompatible CNI versions",
            f'config is "{version}", plugin supports [{supported}]',
        )


def require_verb_allowed(verb: str, version: str) -> None:
    minimum = VERB_MIN_VERSION[verb]
    if not at_least(version, minimum):
        from cni_bridge_py.errors import IncompatibleVersion  # noqa: PLC0415 - see the top

        raise IncompatibleVersion(
            f"config version does not allow {verb}",
            f'config is "{version}"; {verb} needs cniVersion {minimum} or later',
        )


def version_json() -> str:
    """The VERSION answer, byte for byte the shape the Go skeleton prints."""
    supported = ",".join(f'"{v}"' for v in SUPPORTED_VERSIONS)
    return f'{{"cniVersion":"{CURRENT_VERSION}","supportedVersions":[{supported}]}}\n'
