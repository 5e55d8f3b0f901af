"""Engine settings: leases, purge, backend URLs, profiles, and the options of an engine."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs

from durably.containers import SHIPPED_PROFILES, profile_path
from durably.domain.backend_url import BackendUrl, parse_backend_url
from durably.domain.durations import Duration, parse_duration
from durably.domain.lease import Lease
from durably.domain.queues import Queue
from durably.engine.schedules import Schedule
from durably.services.purge import PurgeConfig
from durably.services.recovery import RecoveryConfig

__all__ = [
    "Lease",
    "Purge",
    "BackendUrl",
    "parse_backend_url",
    "SHIPPED_PROFILES",
    "profile_path",
    "EngineOptions",
]


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


def _synchronous(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is None:
        return
    if not isinstance(value, str) or value.upper() not in ("FULL", "NORMAL"):
        raise ValueError(f"synchronous must be FULL or NORMAL, got {value!r}")


@attrs.frozen(kw_only=True)
class EngineOptions:
    """The keyword arguments an ``Engine`` was built with (``Engine.options``).

    ``None`` means "not given": the value comes from the profile, else from the
    built-in default (``durably.containers.DEFAULTS``). ``Engine.with_options`` builds
    an engine from these with some replaced.
    """

    profile: str | Path | None = None
    """A profile's path, or the name of a shipped one; the options given replace its values."""
    backend: str | None = None
    synchronous: str | None = attrs.field(default=None, validator=_synchronous)
    lease: Lease | None = None
    poll_interval: Duration | None = None
    recovery: RecoveryConfig | None = None
    purge: Purge | None = None
    tracker: Any = None
    """An object that receives the events, in place of the profile's ``tracker.kind``."""
    clock: Any = None
    read_only: bool = False
    queues: tuple[Queue, ...] = ()
    """The queues of ``engine.queue`` besides the default one, with their limits."""
    schedules: tuple[Schedule, ...] = ()
    """The schedules whose ticks this engine's worker starts (``Schedule``)."""

    def settings(self) -> dict[str, dict[str, Any]]:
        """The options given, as settings of the root container's ``config`` (the shape of
        a profile): what the engine's container loads over the profile."""
        given: dict[str, dict[str, Any]] = {
            "backend": {"url": self.backend, "synchronous": self.synchronous},
            "worker": {"poll_interval": self.poll_interval},
        }
        if self.lease is not None:
            lease = self.lease
            given["lease"] = {"duration": lease.duration, "renew_every": lease.renew_every}
        if self.recovery is not None:
            given["recovery"] = attrs.asdict(self.recovery)
        if self.purge is not None:
            given["purge"] = {"enabled": True, "delay": self.purge.delay}
        settings = {
            section: {key: value for key, value in values.items() if value is not None}
            for section, values in given.items()
        }
        settings["backend"]["read_only"] = self.read_only
        return settings
