"""``sleep`` and ``sleep_until``: durable waits that survive restarts."""

from __future__ import annotations

import datetime

from durably.domain.durations import Duration, parse_duration
from durably.services.context import durable, require_scope
from durably.services.sleeps import run_sleep

__all__ = ["sleep", "sleep_until"]


@durable
async def sleep(duration: Duration, *, name: str | None = None) -> None:
    """Pause the workflow for ``duration`` (from the first time this sleep is reached).

    ``duration`` is a string with a unit (``"30s"``, ``"10 min"``, ``"1 day"``), a
    ``datetime.timedelta``, or a number of **milliseconds**: ``sleep(5)`` sleeps 5 ms, not
    5 seconds (``parse_duration``). The sleep is keyed like a step (``sleep#1``, ... or
    ``name``), so a replay finds the same resume time.
    """
    ms = parse_duration(duration, field="duration")
    scope = require_scope("sleep")
    await run_sleep(scope, duration_ms=ms, until_ms=None, name=name)


@durable
async def sleep_until(when: int | datetime.datetime, *, name: str | None = None) -> None:
    """Pause the workflow until ``when`` (epoch ms, or an aware ``datetime``)."""
    if isinstance(when, datetime.datetime):
        if when.tzinfo is None:
            raise ValueError("sleep_until needs an aware datetime (with a tzinfo), got a naive one")
        until = round(when.timestamp() * 1000)
    elif isinstance(when, int) and not isinstance(when, bool):
        until = when
    else:
        raise TypeError(f"sleep_until takes epoch ms or an aware datetime, got {when!r}")
    scope = require_scope("sleep_until")
    await run_sleep(scope, duration_ms=None, until_ms=until, name=name)
