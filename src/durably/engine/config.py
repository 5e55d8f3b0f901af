"""Engine settings: leases, purge, backend URLs and profiles."""

from __future__ import annotations

import urllib.parse
from importlib import resources
from pathlib import Path
from typing import Any

import attrs
import yaml

from durably.domain.durations import Duration, parse_duration
from durably.domain.redaction import mask_passwords, url_secrets
from durably.services.purge import PurgeConfig
from durably.services.recovery import RecoveryConfig

__all__ = [
    "Lease",
    "Purge",
    "BackendUrl",
    "parse_backend_url",
    "SHIPPED_PROFILES",
    "profile_path",
    "engine_options",
]

SHIPPED_PROFILES = ("memory", "sqlite", "postgres")
"""The profiles shipped in the package (``durably/profiles/``, copies of ``containers/``)."""


@attrs.frozen
class Lease:
    """How long a worker holds an instance without renewing (the crash-recovery delay)."""

    duration: Duration = "30s"
    renew_every: Duration = "10s"
    duration_ms: int = attrs.field(init=False)
    renew_every_ms: int = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        duration = parse_duration(self.duration, field="Lease.duration")
        renew = parse_duration(self.renew_every, field="Lease.renew_every")
        if duration <= 0 or renew <= 0:
            raise ValueError("Lease.duration and Lease.renew_every must be greater than 0")
        if renew >= duration:
            raise ValueError(
                f"Lease.renew_every ({renew} ms) must be shorter than "
                f"Lease.duration ({duration} ms)"
            )
        object.__setattr__(self, "duration_ms", duration)
        object.__setattr__(self, "renew_every_ms", renew)


@attrs.frozen
class Purge:
    """Purge finished instances ``delay`` after they finish (a tombstone remains).

    ``delay`` is checked when the ``Purge`` is built (``InvalidDurationError`` naming
    ``Purge.delay``), like every other definition, not when the first instance ends.
    """

    delay: Duration = "1 day"
    delay_ms: int = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "delay_ms", parse_duration(self.delay, field="Purge.delay"))

    def to_config(self) -> PurgeConfig:
        """The service-level configuration."""
        return PurgeConfig(enabled=True, delay_ms=self.delay_ms)


@attrs.frozen
class BackendUrl:
    """A parsed backend URL."""

    kind: str
    path: str | None = None
    options: dict[str, str] = attrs.field(factory=dict)

    def as_config(self) -> dict[str, Any]:
        """The ``backend`` section of a profile."""
        return {"kind": self.kind, "path": self.path, **self.options}


def parse_backend_url(url: str) -> BackendUrl:
    """``memory://``, ``sqlite:///path.db`` (``?synchronous=NORMAL``), ``postgresql://...``."""
    # Messages quote the URL without its password.
    shown = mask_passwords(url, url_secrets(url)) if isinstance(url, str) else url
    if not isinstance(url, str) or "://" not in url:
        raise ValueError(
            f"backend URL {shown!r} is not one of memory://, sqlite:///path.db, postgresql://..."
        )
    parts = urllib.parse.urlsplit(url)
    options = dict(urllib.parse.parse_qsl(parts.query))
    if parts.scheme == "memory":
        return BackendUrl("memory", None, options)
    if parts.scheme == "sqlite":
        # sqlite:///relative.db and sqlite:////absolute/path.db, as SQLAlchemy spells them.
        rest = url[len("sqlite://") :].split("?", 1)[0]
        path = rest[1:] if rest.startswith("/") else rest
        if not path:
            raise ValueError(f"backend URL {shown!r} names no database file (sqlite:///path.db)")
        return BackendUrl("sqlite", path, options)
    if parts.scheme in ("postgresql", "postgres"):
        # Our own option (schema) is taken out; the rest of the URL goes to libpq as it is.
        passed = [(k, v) for k, v in urllib.parse.parse_qsl(parts.query) if k != "schema"]
        query = urllib.parse.urlencode(passed)
        dsn = f"{parts.scheme}://{parts.netloc}{parts.path}" + (f"?{query}" if query else "")
        return BackendUrl("postgres", dsn, options)
    raise ValueError(
        f"unknown backend scheme {parts.scheme!r} in {shown!r} (use memory://, sqlite:///path.db "
        "or postgresql://...)"
    )


_PROFILE_KEYS: dict[str, set[str] | None] = {
    "backend": {"url", "synchronous"},
    "tracker": None,  # kind, plus the chosen tracker's own settings
    "lease": {"duration", "renew_every"},
    "recovery": {"stale_threshold_ms", "max_recovery_attempts", "recovery_delay_ms"},
    "purge": {"enabled", "delay"},
    "worker": {"concurrency", "poll_interval"},
}


def _check_profile(path: Path, profile: dict[str, Any]) -> None:
    """Refuse keys a profile does not know: a typo must not pass silently."""
    for section, value in profile.items():
        if section not in _PROFILE_KEYS:
            known = ", ".join(_PROFILE_KEYS)
            raise ValueError(f"profile {path}: unknown section {section!r} (known: {known})")
        if value is None:
            continue
        if not isinstance(value, dict):
            raise ValueError(f"profile {path}: section {section!r} must be a mapping")
        allowed = _PROFILE_KEYS[section]
        unknown = sorted(set(value) - allowed) if allowed is not None else []
        if unknown:
            raise ValueError(
                f"profile {path}: unknown key {section}.{unknown[0]} "
                f"(known: {', '.join(sorted(allowed or ()))})"
            )


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


def _load(path: Path) -> Any:
    """The YAML document of a profile; a syntax error names the file, line and column."""
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.MarkedYAMLError as e:
        # Not the error's own text: it quotes the offending line, which may hold a password.
        mark = e.problem_mark
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        raise ValueError(
            f"profile {path} is not valid YAML: {e.problem or e.context}{where}"
        ) from e
    except yaml.YAMLError as e:
        raise ValueError(f"profile {path} is not valid YAML: {type(e).__name__}") from e


def engine_options(path: Path) -> dict[str, Any]:
    """The ``Engine`` keyword options a profile of ``containers/`` (YAML) describes."""
    profile = _load(path) or {}
    if not isinstance(profile, dict):
        raise ValueError(f"profile {path} must be a YAML mapping")
    _check_profile(path, profile)
    options: dict[str, Any] = {}
    backend = profile.get("backend") or {}
    options["backend"] = backend.get("url", "sqlite:///durably.db")
    if "synchronous" in backend:
        options["synchronous"] = backend["synchronous"]
    lease = profile.get("lease")
    if lease:
        options["lease"] = Lease(
            duration=lease.get("duration", "30s"), renew_every=lease.get("renew_every", "10s")
        )
    purge = profile.get("purge")
    if purge and purge.get("enabled", False):
        options["purge"] = Purge(delay=purge.get("delay", "1 day"))
    recovery = profile.get("recovery")
    if recovery:
        options["recovery"] = RecoveryConfig(**recovery)
    worker = profile.get("worker") or {}
    if "poll_interval" in worker:
        options["poll_interval"] = worker["poll_interval"]
    tracker = dict(profile.get("tracker") or {})
    options["tracker_kind"] = tracker.pop("kind", "noop")
    options["tracker_settings"] = tracker  # e.g. endpoint, env, service_key for http
    return options
