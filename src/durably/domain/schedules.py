"""Schedules (coordination.md section 4): when a schedule ticks, what its ticks are called,
and what the schedules table holds.

A tick is a point in time (epoch ms, UTC). Each tick starts one instance whose id is
``<schedule id>@<tick time in ISO 8601 UTC>``: the id is the lock, so that a tick fired by
several workers, or fired again after a crash, still makes one instance. The stored row
of a schedule (``StoredSchedule``) holds a cursor, ``next_at``, the first regular tick not
fired yet, and ``pending``, explicit ticks to fire (those a catch-up chose, and triggers):
a worker creates a tick's instance first and only then moves the cursor past it (or drops
it from ``pending``), by a compare-and-set on ``version``.

Cron expressions and time zones are parsed by ``cronsim`` over ``zoneinfo``; daylight
saving changes are handled as cronsim defines (Debian cron's rules, docs/schedules.md).
"""

from __future__ import annotations

import datetime
import zoneinfo
from collections.abc import Iterator
from typing import Final, Literal

import attrs
from cronsim import CronSim, CronSimError

from durably.domain.durations import Duration, parse_duration

__all__ = [
    "Tick",
    "Timing",
    "CatchUp",
    "CATCH_UP_POLICIES",
    "MAX_CATCH_UP",
    "StoredSchedule",
    "ScheduleInfo",
    "parse_timing",
    "tick_id",
    "tick_time",
    "ticks_within",
    "opened",
]

CatchUp = Literal["latest", "all", "none"]
CATCH_UP_POLICIES: Final = ("latest", "all", "none")
MAX_CATCH_UP: Final = 1000
"""At most this many missed ticks are started by ``catch_up="all"`` (the latest ones)."""

_DST_MARGIN_MS = 3 * 3_600_000
"""How far before a tick found backwards the forward walk starts (more than any daylight
saving shift), so that every tick is the one the forward walk names."""


@attrs.frozen
class Tick:
    """The input of a scheduled workflow: which schedule, and the tick's time (aware, UTC)."""

    schedule_id: str
    scheduled_at: datetime.datetime


def tick_time(at_ms: int) -> datetime.datetime:
    """A tick's time as an aware UTC datetime."""
    return datetime.datetime.fromtimestamp(at_ms / 1000, datetime.UTC)


def tick_id(schedule_id: str, at_ms: int) -> str:
    """The id of the instance a tick starts: ``<schedule id>@<ISO 8601 UTC>``.

    >>> tick_id("nightly-report", 1767582000000)
    'nightly-report@2026-01-05T03:00:00Z'
    >>> tick_id("now", 1767582000123)
    'now@2026-01-05T03:00:00.123Z'
    """
    when = tick_time(at_ms)
    text = when.strftime("%Y-%m-%dT%H:%M:%S")
    if at_ms % 1000:
        text += f".{at_ms % 1000:03d}"
    return f"{schedule_id}@{text}Z"


@attrs.frozen
class Timing:
    """When a schedule ticks: a 5-field ``cron`` expression in ``timezone``, or ``every``
    ``every_ms`` milliseconds aligned to the Unix epoch."""

    cron: str | None = None
    every_ms: int | None = None
    timezone: str = "UTC"

    def _zone(self) -> datetime.tzinfo:
        return datetime.UTC if self.timezone == "UTC" else zoneinfo.ZoneInfo(self.timezone)

    def after(self, at_ms: int) -> int:
        """The first tick strictly after ``at_ms``."""
        if self.every_ms is not None:
            return (at_ms // self.every_ms + 1) * self.every_ms
        return next(self._walk(at_ms))

    def _walk(self, at_ms: int) -> Iterator[int]:
        """The ticks after ``at_ms``, in order (cron): cronsim's forward walk, minus any
        time it gives at or before the one before (a repeated wall time in autumn)."""
        assert self.cron is not None
        start = datetime.datetime.fromtimestamp(at_ms / 1000, self._zone())
        last = at_ms
        for found in CronSim(self.cron, start):
            ms = round(found.timestamp() * 1000)
            if ms > last:
                last = ms
                yield ms

    def _back(self, at_ms: int, count: int) -> int:
        """About ``count`` ticks before ``at_ms`` (cron, walked backwards): where a forward
        walk that ends at ``at_ms`` may start."""
        assert self.cron is not None
        start = datetime.datetime.fromtimestamp(at_ms / 1000, self._zone())
        earliest = at_ms
        walk = CronSim(self.cron, start, reverse=True)
        for _ in range(count):
            try:
                earliest = round(next(walk).timestamp() * 1000)
            except StopIteration:
                break
        return earliest - _DST_MARGIN_MS

    def describe(self) -> str:
        """``cron 0 3 * * *`` or ``every 1000 ms``, for listings."""
        if self.cron is not None:
            return self.cron
        return f"every {_duration_text(self.every_ms or 0)}"


def _duration_text(ms: int) -> str:
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


def ticks_within(timing: Timing, first: int, last: int, limit: int) -> list[int]:
    """The latest ``limit`` ticks ``t`` with ``first <= t <= last``, in order.

    >>> every_minute = Timing(every_ms=60_000)
    >>> ticks_within(every_minute, 0, 300_000, 2)
    [240000, 300000]
    """
    if limit <= 0 or last < first:
        return []
    if timing.every_ms is not None:
        step = timing.every_ms
        top = last // step * step
        bottom = max(-(-first // step) * step, top - (limit - 1) * step)
        return list(range(bottom, top + 1, step)) if bottom <= top else []
    start = max(first - 1, timing._back(last + 1, limit))
    found: list[int] = []
    for at in timing._walk(start):
        if at > last:
            break
        found.append(at)
    return found[-limit:]


def parse_timing(
    schedule_id: str, cron: str | None, every: Duration | None, timezone: str
) -> Timing:
    """The timing of schedule ``schedule_id``; a ``ValueError`` in one line naming the
    schedule when ``cron``, ``every`` or ``timezone`` cannot be used."""
    where = f"schedule {schedule_id!r}"
    if (cron is None) == (every is None):
        raise ValueError(f"{where}: give exactly one of cron= and every=")
    if not isinstance(timezone, str) or not timezone:
        raise ValueError(f"{where}: timezone must be an IANA name such as 'Europe/Paris'")
    try:
        if timezone != "UTC":
            zoneinfo.ZoneInfo(timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as e:
        raise ValueError(f"{where}: unknown time zone {timezone!r} ({type(e).__name__})") from None
    if every is not None:
        try:
            every_ms = parse_duration(every, field=f"{where} every")
        except ValueError as e:
            raise ValueError(" ".join(str(e).split())) from None
        if every_ms < 1000:
            raise ValueError(f"{where}: every= must be at least 1 second, got {every!r}")
        return Timing(every_ms=every_ms, timezone=timezone)
    if not isinstance(cron, str) or len(cron.split()) != 5:
        raise ValueError(
            f"{where}: bad cron expression {cron!r} (it takes 5 fields: "
            "minute hour day-of-month month day-of-week)"
        )
    expression = " ".join(cron.split())
    try:
        timing = Timing(cron=expression, timezone=timezone)
        timing.after(0)  # the library checks the fields as it walks
    except (CronSimError, StopIteration) as e:
        detail = str(e) or "it never matches"
        raise ValueError(f"{where}: bad cron expression {cron!r} ({detail})") from None
    return timing


@attrs.frozen
class StoredSchedule:
    """A row of the schedules table: the schedule as its engines last declared it, and
    where its ticks stand."""

    id: str
    workflow: str
    timing: Timing
    catch_up: str
    queue: str
    next_at: int
    """The first regular tick not fired yet (the cursor)."""
    pending: tuple[int, ...] = ()
    """Ticks to fire before the cursor's: chosen by a catch-up, or asked by a trigger."""
    last_at: int | None = None
    """The latest tick fired."""
    seen_at: int = 0
    """When an engine that declares the schedule was last known open (its heartbeat)."""
    paused: bool = False
    version: int = 0
    """Bumped by every change but the heartbeat: the compare-and-set of every writer."""
    created_at: int = 0


@attrs.frozen
class ScheduleInfo:
    """What ``engine.schedules()`` and ``durably schedules`` show of one schedule."""

    id: str
    workflow: str
    cron: str | None
    every_ms: int | None
    timezone: str
    catch_up: str
    queue: str
    next_run: datetime.datetime | None
    """The next tick it will fire (``None`` while paused)."""
    last_run: datetime.datetime | None
    """The latest tick it fired."""
    paused: bool
    orphaned: bool
    """No open engine declares it (dropped from the code, or every engine is down)."""
    pending: int = 0
    """Ticks waiting to be started (caught up, or triggered)."""

    @property
    def timing(self) -> str:
        """The cron expression, or ``every <duration>``."""
        return Timing(self.cron, self.every_ms, self.timezone).describe()


def opened(row: StoredSchedule, now: int, alive: bool, declared: StoredSchedule) -> StoredSchedule:
    """The row an engine that declares the schedule (``declared``: its definition, with
    a cursor at ``declared.next_at``) writes when it opens over ``row``.

    When no engine had it open (``alive`` is false), the ticks from the cursor up to the
    last time one was seen came due while an engine was open: they are all fired; the
    ticks after that were **missed**, and ``catch_up`` chooses which of them fire. A
    paused schedule fires nothing of either (ticks that fall while paused are skipped).
    A changed timing starts its cursor afresh after ``now``.
    """
    fresh = attrs.evolve(
        row,
        workflow=declared.workflow,
        timing=declared.timing,
        catch_up=declared.catch_up,
        queue=declared.queue,
        seen_at=now,
    )
    if declared.timing != row.timing:
        return attrs.evolve(fresh, next_at=declared.timing.after(now))
    if alive or row.paused or row.next_at > now:
        return fresh
    timing = row.timing
    late = ticks_within(timing, row.next_at, min(row.seen_at, now), MAX_CATCH_UP)
    start = max(row.next_at, row.seen_at + 1)
    missed: list[int] = []
    if declared.catch_up == "all":
        missed = ticks_within(timing, start, now, MAX_CATCH_UP)
    elif declared.catch_up == "latest":
        missed = ticks_within(timing, start, now, 1)
    pending = tuple(sorted({*row.pending, *late, *missed}))
    return attrs.evolve(fresh, pending=pending, next_at=timing.after(now))
