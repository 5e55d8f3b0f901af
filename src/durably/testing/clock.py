"""``VirtualClock``: a test's clock that moves from alarm to alarm, never by waiting.

The engines made on it (``EngineFactory``, the ``durably_engine`` fixture) are attached
to it. Moving it (``advance``, ``advance_to``, and ``Engine.result`` through ``skip``)
goes from one due time to the next: at each, the clock is set to that time, the engines'
workers are woken to fire what came due, and the clock waits until the engines have
settled (every execution finished, or waiting on the clock in a step's timeout) before
it looks for the next due time. So each alarm fires at its own time, in order, and the
alarms that handling one creates (a retry in the window) are fired too.

The engines are ``memory://`` ones: the clock reads their alarms and leases directly
(``MemoryBackend``) to know what will come due, and when; the next tick of an engine's
schedules comes due like an alarm, so each tick fires at its own time.
"""

from __future__ import annotations

import asyncio
import datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeAlias

from durably.adapters.memory import MemoryBackend
from durably.domain.durations import Duration, parse_duration
from durably.domain.queues import ClaimScope

if TYPE_CHECKING:
    from durably.engine import Engine

__all__ = ["VirtualClock", "Instant", "DEFAULT_START"]

Instant: TypeAlias = int | datetime.datetime | str
"""A point in time: epoch milliseconds, an aware ``datetime``, or ISO 8601 text with an
offset (``"2026-03-01T09:00:00Z"``)."""

DEFAULT_START = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
"""Where a ``VirtualClock`` starts unless told otherwise: a fixed time, so that the
times a test sees are the same at every run."""

QUIET_TURNS = 3
"""Event-loop turns with nothing running nor due before the engines count as settled."""

SPIN_TURNS = 200
"""Turns spent waiting for running executions before waiting 1 ms at a time instead."""


def epoch_ms(when: Instant) -> int:
    """``when`` in epoch milliseconds."""
    if isinstance(when, str):
        when = datetime.datetime.fromisoformat(when)
    if isinstance(when, datetime.datetime):
        if when.tzinfo is None:
            raise ValueError(f"a time needs an offset (an aware datetime), got {when!r}")
        return round(when.timestamp() * 1000)
    if isinstance(when, int) and not isinstance(when, bool):
        return when
    raise TypeError(f"a time is epoch ms, an aware datetime or ISO 8601 text, got {when!r}")


class _Deadline:
    """The timeout of one step attempt, counted in the clock's time."""

    def __init__(self, clock: VirtualClock, at: int) -> None:
        self.clock = clock
        self.at = at
        self.fired = False
        self._timeout = asyncio.timeout(None)

    async def __aenter__(self) -> asyncio.Timeout:
        entered = await self._timeout.__aenter__()
        self.clock._deadlines.append(self)
        if self.at <= self.clock.now():
            self.fire()
        return entered

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.clock._deadlines.remove(self)
        await self._timeout.__aexit__(exc_type, exc, tb)  # raises TimeoutError once expired

    def fire(self) -> None:
        """Expire the timeout now: the step's task is cancelled as by ``asyncio.timeout``."""
        self.fired = True
        self._timeout.reschedule(asyncio.get_running_loop().time())


class VirtualClock:
    """A clock that moves only when the test moves it, alarm by alarm (``now()`` in epoch ms).

    Args:
        start: the time it starts at (``DEFAULT_START`` when omitted).
    """

    def __init__(self, start: Instant = DEFAULT_START) -> None:
        self._time = epoch_ms(start)
        self._engines: list[Engine] = []
        self._deadlines: list[_Deadline] = []

    def __repr__(self) -> str:
        when = datetime.datetime.fromtimestamp(self._time / 1000, datetime.UTC)
        return f"VirtualClock({when.isoformat()})"

    # -- reading and setting --------------------------------------------------------------

    def now(self) -> int:
        """The clock's time, in epoch milliseconds."""
        return self._time

    def start_at(self, when: Instant) -> None:
        """Set the time the test starts at; only before an engine is made on the clock."""
        if self._engines:
            raise RuntimeError(
                "start_at() sets the start of a test: call it before making an engine "
                "(to move time once engines run, use advance() or advance_to())"
            )
        self._time = epoch_ms(when)

    # -- the engines on the clock ---------------------------------------------------------

    def attach(self, engine: Engine) -> None:
        """Move ``engine`` with this clock (an open ``memory://`` engine made with it, whose
        worker runs: ``EngineFactory`` does all of this)."""
        host = engine.host
        if not isinstance(host, MemoryBackend) or host.clock is not self:
            raise ValueError("only a memory:// engine made with this clock can be attached")
        if engine not in self._engines:
            self._engines.append(engine)

    def detach(self, engine: Engine) -> None:
        """Stop moving ``engine`` (it closes)."""
        if engine in self._engines:
            self._engines.remove(engine)

    def _check(self, engine: object) -> None:
        if engine is not None and engine not in self._engines:
            raise RuntimeError(
                "this engine runs on a VirtualClock that does not move it: make it with the "
                "durably_engine fixture (or durably.testing.EngineFactory), which attaches "
                "it and runs its worker"
            )

    @staticmethod
    def _backend(engine: Engine) -> MemoryBackend:
        host = engine.host
        assert isinstance(host, MemoryBackend)
        return host

    # -- what is running, what is due -----------------------------------------------------

    def _busy(self) -> int:
        """Executions in progress that do not wait on the clock."""
        busy = 0
        for engine in self._engines:
            rows = self._backend(engine).rows.values()
            # A claimed instance holds its lease before its execution is served.
            leased = sum(1 for row in rows if row.lease_owner == engine.owner)
            busy += max(engine.server.active, leased)
        return busy - sum(1 for d in self._deadlines if not d.fired)

    def _due_times(self) -> list[int]:
        """When each instance with an alarm can next be claimed (by an engine that serves
        its queue and has its workflow, when its queue's limits let it start)."""
        times: list[int] = []
        for engine in self._engines:
            backend = self._backend(engine)
            scope = engine.claim_scope
            for instance_id, at in backend.alarms.items():
                row = backend.rows.get(instance_id)
                if row is not None and not _claimable(scope, backend, row):
                    continue
                if row is not None and (start := _start_time(scope, backend, row)) is not None:
                    times.append(max(at, start))
                elif row is None or row.lease_owner is None:
                    times.append(at)
                elif row.lease_owner != engine.owner:
                    # A lease nobody renews (its process crashed) must expire first.
                    times.append(max(at, row.lease_expires_at or at))
                # else: running here, and its lease is renewed as the clock moves
            times += _tick_times(engine, backend)
        return times

    def _due_now(self) -> bool:
        return any(at <= self._time for at in self._due_times())

    def _next_time(self) -> int | None:
        """The next time something comes due: an alarm, or a running step's timeout."""
        times = self._due_times() + [d.at for d in self._deadlines if not d.fired]
        return min(times, default=None)

    def _wake(self) -> None:
        for engine in self._engines:
            engine.server.changed.fire()  # the worker looks for due alarms at once

    async def _move_to(self, at: int) -> None:
        """Set the clock to ``at`` (never back) and wake the engines."""
        at = max(at, self._time)
        for engine in self._engines:
            # A live process renews its leases while time passes: only a crashed one's expire.
            await engine.host.renew(engine.owner, at, engine.lease.duration_ms)
        self._time = at
        for deadline in list(self._deadlines):
            if not deadline.fired and deadline.at <= at:
                deadline.fire()
        self._wake()

    # -- moving ---------------------------------------------------------------------------

    async def settle(self, engine: Any = None) -> None:
        """Return once the engines have done what they can at the current time: nothing due
        is left unfired, and every execution has ended or waits on the clock (a step's
        timeout). It waits for real work (a step that really runs) as long as it takes."""
        self._check(engine)
        quiet = turns = 0
        while quiet < QUIET_TURNS:
            due = self._due_now()
            if due or self._busy() > 0:
                quiet = 0
                if due:
                    self._wake()
                turns += 1
                await asyncio.sleep(0 if turns < SPIN_TURNS else 0.001)
            else:
                quiet += 1
                await asyncio.sleep(0)

    async def skip(self, engine: Any = None) -> bool:
        """Move to the next time something is due and handle it (``Engine.result`` calls
        this); ``False`` when nothing is ahead."""
        self._check(engine)
        await self.settle()
        at = self._next_time()
        if at is None:
            return False
        await self._move_to(at)
        await self.settle()
        return True

    async def advance(self, duration: Duration) -> None:
        """Move forward by ``duration`` (``"1h"``, ms, a ``timedelta``), alarm by alarm.

        Each alarm due in the window fires at its own due time, in order, including the
        ones that handling an earlier one sets (a retry inside the window); it returns
        once all of them are handled, with the clock at the end of the window.
        """
        await self._run_until(self._time + parse_duration(duration, field="advance"))

    async def advance_to(self, when: Instant) -> None:
        """Move forward to ``when`` as ``advance`` does."""
        at = epoch_ms(when)
        if at < self._time:
            raise ValueError(f"the clock does not go back (it is at {self._time}, asked {at})")
        await self._run_until(at)

    async def _run_until(self, target: int) -> None:
        while True:
            await self.settle()
            at = self._next_time()
            if at is None or at > target:
                break
            await self._move_to(at)
        await self._move_to(target)
        await self.settle()

    def timeout(self, ms: int) -> _Deadline:
        """An ``asyncio.timeout`` that expires when this clock passes ``now() + ms`` (a step's
        timeout under this clock)."""
        return _Deadline(self, self._time + ms)

    def expire_timeouts(self) -> None:
        """Expire every running step's timeout (before the engines close: nothing is left
        waiting for a time that will not come)."""
        for deadline in list(self._deadlines):
            if not deadline.fired:
                deadline.fire()


def _tick_times(engine: Engine, backend: MemoryBackend) -> list[int]:
    """When the schedules of ``engine`` next tick: a tick comes due as an alarm does."""
    times: list[int] = []
    for schedule_id in engine.schedule_keeper.ids:
        row = backend.schedules.get(schedule_id)
        if row is None:
            continue
        if row.pending:
            times.append(min(row.pending))
        if not row.paused:
            times.append(row.next_at)
    return times


def _claimable(scope: ClaimScope, backend: MemoryBackend, row: Any) -> bool:
    """Whether a claim of ``scope`` may ever take ``row`` as things stand (its queue and
    workflow served; for a start in a limited queue, a free slot of its queue and
    partition)."""
    if row.queue not in scope.served:
        return False
    if scope.workflows is not None and row.workflow not in scope.workflows:
        return False
    queue = next((q for q in scope.limits if q.name == row.queue), None)
    if queue is None or row.status != "Queued" or row.slot:
        return True
    holders = [r for r in backend.rows.values() if r.queue == row.queue and r.slot]
    if queue.concurrency is not None and len(holders) >= queue.concurrency:
        return False  # a slot frees when an instance that holds one ends: its own alarm
    if queue.partition_concurrency is not None:
        same = sum(1 for r in holders if r.partition_key == row.partition_key)
        return same < queue.partition_concurrency
    return True


def _start_time(scope: ClaimScope, backend: MemoryBackend, row: Any) -> int | None:
    """For a start in a rate-limited queue whose window is full: when a start frees."""
    queue = next((q for q in scope.limits if q.name == row.queue), None)
    window = None if queue is None else queue.rate_limit
    if window is None or row.status != "Queued" or row.slot:
        return None
    count, period = window
    starts = sorted(
        r.slot_at for r in backend.rows.values() if r.queue == row.queue and r.slot_at is not None
    )
    if len(starts) < count:
        return None
    return int(starts[-count]) + period
