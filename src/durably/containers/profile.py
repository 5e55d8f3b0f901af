"""Profiles: the YAML files that configure the root container, read and checked in one place.

A profile is loaded into the root container's ``config`` (``Durably.config``) over the
built-in ``DEFAULTS``, and every provider reads its settings from there: the profile is
translated once. ``SCHEMA`` is what a profile may hold: each key with the check of its
value. Every error is a ``ProfileError`` naming the file and the key
(``deploy.yaml: lease.duration: ...``); none quotes a line of the file, which may hold a
password.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from importlib import resources
from pathlib import Path
from typing import Any, Final

import attrs
import yaml

from durably.domain.backend_url import parse_backend_url
from durably.domain.durations import parse_duration
from durably.domain.errors import ProfileError
from durably.domain.lease import Lease
from durably.services.recovery import RecoveryConfig

__all__ = [
    "DEFAULTS",
    "SCHEMA",
    "TRACKER_SETTINGS",
    "SHIPPED_PROFILES",
    "profile_path",
    "read_profile",
    "check_profile",
]

SHIPPED_PROFILES = ("memory", "sqlite", "postgres")
"""The profiles shipped in the package (``durably/profiles/``, copies of ``containers/``)."""

DEFAULTS: Final[Mapping[str, Mapping[str, Any]]] = {
    "backend": {"url": "sqlite:///durably.db", "synchronous": None, "read_only": False},
    "tracker": {"kind": "noop"},
    "lease": {"duration": Lease().duration, "renew_every": Lease().renew_every},
    "recovery": attrs.asdict(RecoveryConfig()),
    "purge": {"enabled": False, "delay": "1 day"},
    "worker": {"concurrency": 100, "poll_interval": "1s"},
}
"""The settings of an engine that neither a profile nor a keyword argument gives.
(``backend.read_only`` is ``Engine(read_only=...)``'s: a profile cannot set it.)"""

TRACKER_SETTINGS: Final[Mapping[str, frozenset[str]]] = {
    "noop": frozenset(),
    "logging": frozenset(),
    "memory": frozenset(),
    "otel": frozenset(),
    "http": frozenset(
        {
            "endpoint",
            "env",
            "service_key",
            "headers",
            "batch_size",
            "flush_interval",
            "close_timeout",
        }
    ),
}
"""The trackers a profile may choose (``tracker.kind``), with the settings each takes."""

Check = Callable[[Any], object]


def _type_name(value: object) -> str:
    # Values are not quoted: a wrong value may be a password typed in the wrong place.
    return type(value).__name__


def _text(value: object) -> None:
    if not isinstance(value, str):
        raise ValueError(f"must be a string, not {_type_name(value)}")


def _flag(value: object) -> None:
    if not isinstance(value, bool):
        raise ValueError(f"must be true or false, not {_type_name(value)}")


def _count(least: int) -> Check:
    def check(value: object) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise ValueError(f"must be a whole number of at least {least}, got {value!r}")

    return check


def _duration(value: object) -> None:
    parse_duration(value)  # type: ignore[arg-type]  # the checker's own message says why


def _positive_duration(value: object) -> None:
    if parse_duration(value) <= 0:  # type: ignore[arg-type]  # checked by parse_duration
        raise ValueError(f"must be longer than 0, got {value!r}")


def _synchronous(value: object) -> None:
    if not isinstance(value, str) or value.upper() not in ("FULL", "NORMAL"):
        raise ValueError(f"must be FULL or NORMAL, got {value!r}")


def _tracker_kind(value: object) -> None:
    if not isinstance(value, str) or value not in TRACKER_SETTINGS:
        raise ValueError(f"unknown tracker {value!r} (one of {', '.join(TRACKER_SETTINGS)})")


def _headers(value: object) -> None:
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise ValueError("must be a mapping of header names to strings")


SCHEMA: Final[Mapping[str, Mapping[str, Check]]] = {
    "backend": {"url": parse_backend_url, "synchronous": _synchronous},
    "tracker": {
        "kind": _tracker_kind,
        "endpoint": _text,
        "env": _text,
        "service_key": _text,
        "headers": _headers,
        "batch_size": _count(1),
        "flush_interval": _duration,
        "close_timeout": _duration,
    },
    "lease": {"duration": _positive_duration, "renew_every": _positive_duration},
    "recovery": {name: _count(0) for name in DEFAULTS["recovery"]},
    "purge": {"enabled": _flag, "delay": _duration},
    "worker": {"concurrency": _count(1), "poll_interval": _duration},
}
"""Every key a profile may hold, by section, with the check of its value."""


def profile_path(profile: str | Path) -> Path:
    """The file of a profile: a bare name (``sqlite``) names a profile shipped in the
    package, anything else (``containers/sqlite.yaml``, ``./mine.yaml``) is a path.

    >>> profile_path("deploy/sqlite.yaml")
    PosixPath('deploy/sqlite.yaml')
    >>> profile_path("sqlite").name
    'sqlite.yaml'
    """
    if isinstance(profile, Path) or "/" in profile or profile.endswith((".yaml", ".yml")):
        return Path(profile)
    if profile in SHIPPED_PROFILES:
        return Path(str(resources.files("durably").joinpath("profiles", f"{profile}.yaml")))
    if Path(profile).is_file():  # a file of the working directory without a suffix
        return Path(profile)
    raise ValueError(
        f"no profile named {profile!r}: durably ships {', '.join(SHIPPED_PROFILES)}; "
        f"name your own profile by its path (./{profile}.yaml)"
    )


def read_profile(profile: str | Path) -> dict[str, Any]:
    """The settings of a profile (a path or a shipped profile's name), checked: what
    ``Durably.config`` loads over ``DEFAULTS``. ``ProfileError`` names the file."""
    path = profile_path(profile)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ProfileError(str(path), f"cannot be read: {e.strerror or e}") from e
    try:
        document = yaml.safe_load(text)
    except yaml.MarkedYAMLError as e:
        # Not the error's own text: it quotes the offending line, which may hold a password.
        mark = e.problem_mark
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        raise ProfileError(str(path), f"not valid YAML: {e.problem or e.context}{where}") from e
    except yaml.YAMLError as e:
        raise ProfileError(str(path), f"not valid YAML: {type(e).__name__}") from e
    return check_profile(str(path), document)


def check_profile(path: str, document: object) -> dict[str, Any]:
    """Check a profile's document against ``SCHEMA``; its sections, empty ones left out.

    >>> check_profile("deploy.yaml", {"lease": {"duration": "1m"}, "purge": None})
    {'lease': {'duration': '1m'}}
    >>> try:
    ...     check_profile("deploy.yaml", {"lease": {"durration": "1m"}})
    ... except ProfileError as e:
    ...     print(e)
    deploy.yaml: lease.durration: unknown key (known: duration, renew_every)
    """
    if document is None:  # an empty file: every default
        return {}
    if not isinstance(document, dict):
        raise ProfileError(path, f"must be a mapping of sections, not {_type_name(document)}")
    settings: dict[str, Any] = {}
    for section, values in document.items():
        if section not in SCHEMA:
            known = ", ".join(SCHEMA)
            raise ProfileError(path, f"unknown section (known: {known})", str(section))
        if values is None:
            continue
        if not isinstance(values, dict):
            raise ProfileError(path, f"must be a mapping, not {_type_name(values)}", section)
        settings[section] = _check_section(path, section, values)
    return settings


def _check_section(path: str, section: str, values: dict[Any, Any]) -> dict[str, Any]:
    allowed = SCHEMA[section]
    if section == "tracker":
        kind = values.get("kind", DEFAULTS["tracker"]["kind"])
        _check_key(path, "tracker.kind", _tracker_kind, kind)
        allowed = {k: v for k, v in allowed.items() if k == "kind" or k in TRACKER_SETTINGS[kind]}
    for key, value in values.items():
        if key not in allowed:
            if key in SCHEMA[section]:  # a setting of another tracker
                problem = f"the {values.get('kind', 'noop')} tracker takes no such setting"
            else:
                problem = f"unknown key (known: {', '.join(sorted(allowed))})"
            raise ProfileError(path, problem, f"{section}.{key}")
        _check_key(path, f"{section}.{key}", allowed[key], value)
    if section == "tracker" and values.get("kind") == "http" and "endpoint" not in values:
        raise ProfileError(path, "the http tracker needs the collector's URL", "tracker.endpoint")
    if section == "lease":
        lease = {**DEFAULTS["lease"], **values}
        duration, renew = (parse_duration(lease[k]) for k in ("duration", "renew_every"))
        if renew >= duration:
            raise ProfileError(
                path,
                f"{renew} ms must be shorter than lease.duration ({duration} ms)",
                "lease.renew_every",
            )
    return dict(values)


def _check_key(path: str, key: str, check: Check, value: object) -> None:
    try:
        check(value)
    except (ValueError, TypeError) as e:
        raise ProfileError(path, " ".join(str(e).split()), key) from e
