"""``Schedule`` (durable cron) and ``ScheduleKeeper``, which fires an engine's due ticks.

How a tick fires exactly once, whatever the number of workers (docs/decisions.md): a
worker that finds a tick due creates its instance, ``<schedule id>@<tick time>``, queued
like ``engine.queue`` does (a second creation of an id is a no-op: the id is the lock),
and only then moves the stored cursor past the tick by a compare-and-set on the row's
version. A worker that dies between the two leaves the tick due: the next one creates
nothing new and moves the cursor.
"""

from __future__ import annotations

import copy
import logging
import typing
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

import attrs

from durably.domain.durations import Duration
from durably.domain.errors import OrchestratorError, ScheduleNotFoundError, StorageError
from durably.domain.queues import DEFAULT_QUEUE
from durably.domain.schedules import (
    CATCH_UP_POLICIES,
    MAX_CATCH_UP,
    ScheduleInfo,
    StoredSchedule,
    Tick,
    Timing,
    opened,
    parse_timing,
    tick_id,
    tick_time,
)
from durably.ports import InstanceHost
from durably.services import WorkflowDefinition

__all__ = ["Schedule", "ScheduleKeeper", "Tick", "ScheduleInfo", "tick_typed", "StartTick"]

log = logging.getLogger("durably.engine")

StartTick = Callable[[str, str, Tick, str], Awaitable[None]]
"""Queue one tick's instance: ``(instance id, workflow name, tick, queue)``; a no-op when
the instance exists."""


@attrs.frozen
class Schedule:
    """Start ``workflow`` at every tick: ``cron`` (5 fields, in ``timezone``) or ``every``
    (a duration, ticks aligned to the Unix epoch), one instance per tick, with id
    ``<id>@<tick time in ISO 8601 UTC>`` and a ``Tick`` as its input.

    ``catch_up`` decides what the ticks missed while no engine had the schedule open
    start when one opens: ``"latest"`` (the most recent), ``"all"`` (at most 1 000) or
    ``"none"``; ``queue`` is the queue of the instances (the default one when ``None``).
    A bad cron expression, time zone or duration is a ``ValueError`` naming the schedule.
    """

    id: str
    workflow: WorkflowDefinition[Any, Any] | str
    cron: str | None = attrs.field(default=None, kw_only=True)
    every: Duration | None = attrs.field(default=None, kw_only=True)
    timezone: str = attrs.field(default="UTC", kw_only=True)
    catch_up: str = attrs.field(default="latest", kw_only=True)
    queue: str | None = attrs.field(default=None, kw_only=True)
    timing: Timing = attrs.field(init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id.strip() or len(self.id) > 200:
            raise ValueError(
                f"a schedule id must be a non-empty string (at most 200), got {self.id!r}"
            )
        where = f"schedule {self.id!r}"
        if not isinstance(self.workflow, WorkflowDefinition | str):
            raise TypeError(
                f"{where}: workflow must be a workflow (@durably.workflow) or its name, "
                f"got {self.workflow!r}"
            )
        if self.catch_up not in CATCH_UP_POLICIES:
            raise ValueError(
                f"{where}: catch_up must be one of {', '.join(CATCH_UP_POLICIES)}, "
                f"got {self.catch_up!r}"
            )
        object.__setattr__(
            self, "timing", parse_timing(self.id, self.cron, self.every, self.timezone)
        )

    @property
    def workflow_name(self) -> str:
        """The name of the workflow it starts."""
        return self.workflow if isinstance(self.workflow, str) else self.workflow.name

    @property
    def queue_name(self) -> str:
        """The queue of its instances."""
        return DEFAULT_QUEUE if self.queue is None else self.queue


def _takes_tick(declared: Any) -> bool:
    """Whether an input annotation accepts a ``Tick`` (``Any``: it is given one)."""
    if declared is Any or declared is object or declared is Tick:
        return True
    return Tick in typing.get_args(declared)


def check_schedules(
    given: Iterable[Schedule],
    workflows: Mapping[str, WorkflowDefinition[Any, Any]],
    queues: Iterable[str],
) -> dict[str, Schedule]:
    """The schedules by id, each checked against the engine's workflows and queues (a
    ``ValueError`` in one line naming the schedule)."""
    known_queues = set(queues)
    found: dict[str, Schedule] = {}
    for schedule in given:
        if not isinstance(schedule, Schedule):
            raise TypeError(f"schedules takes durably.Schedule objects, got {schedule!r}")
        where = f"schedule {schedule.id!r}"
        if schedule.id in found:
            raise ValueError(f"two schedules have the id {schedule.id!r}")
        definition = workflows.get(schedule.workflow_name)
        if definition is None:
            raise ValueError(
                f"{where}: workflow {schedule.workflow_name!r} is not one of the engine's "
                "workflows (add it to Engine([...]))"
            )
        if not definition.takes_input:
            raise ValueError(
                f"{where}: workflow {definition.name!r} takes no input; a scheduled "
                "workflow takes one argument, a durably.Tick"
            )
        if not _takes_tick(definition.input_type):
            shown = getattr(definition.input_type, "__name__", str(definition.input_type))
            raise ValueError(
                f"{where}: workflow {definition.name!r} takes a {shown}, not a "
                "durably.Tick (annotate its input `tick: durably.Tick`)"
            )
        if schedule.queue_name not in known_queues:
            raise ValueError(
                f"{where}: unknown queue {schedule.queue_name!r} (give it in Engine(queues=))"
            )
        found[schedule.id] = schedule
    return found


def tick_typed(definitions: Iterable[Any], schedules: Iterable[Schedule]) -> list[Any]:
    """``definitions`` where a scheduled workflow whose input is not annotated reads its
    input back as a ``Tick`` (a copy: the user's definition is left as it is)."""
    scheduled = {s.workflow_name for s in schedules if isinstance(s, Schedule)}
    typed: list[Any] = []
    for definition in definitions:
        if (
            isinstance(definition, WorkflowDefinition)
            and definition.name in scheduled
            and definition.input_type in (Any, object)
        ):
            definition = copy.copy(definition)
            object.__setattr__(definition, "input_type", Tick)
        typed.append(definition)
    return typed


def _declared(schedule: Schedule, now: int) -> StoredSchedule:
    """The row of a schedule first stored at ``now``: its first tick is after ``now``."""
    return StoredSchedule(
        id=schedule.id,
        workflow=schedule.workflow_name,
        timing=schedule.timing,
        catch_up=schedule.catch_up,
        queue=schedule.queue_name,
        next_at=schedule.timing.after(now),
        seen_at=now,
        created_at=now,
    )


class ScheduleKeeper:
    """The schedules of one engine over its host: stores them when the engine opens,
    fires their due ticks for its worker, and acts on any stored schedule for operators."""

    def __init__(
        self,
        host: InstanceHost,
        schedules: Mapping[str, Schedule],
        start: StartTick,
        alive_ms: int,
    ) -> None:
        self.host = host
        self.schedules = dict(schedules)
        """This engine's schedules, by id."""
        self._start = start
        self.alive_ms = alive_ms
        """A schedule seen by an engine this recently has an engine open (its heartbeat)."""

    @property
    def ids(self) -> frozenset[str]:
        """The ids of this engine's schedules."""
        return frozenset(self.schedules)

    async def _row(self, schedule_id: str) -> StoredSchedule | None:
        rows = await self.host.read_schedules()
        return next((r for r in rows if r.id == schedule_id), None)

    # -- the engine's own schedules --------------------------------------------------------

    async def open(self, now: int) -> None:
        """Store this engine's schedules (a new one ticks only after ``now``), and apply
        each one's catch-up when no engine had it open (``domain.schedules.opened``)."""
        for schedule in self.schedules.values():
            declared = _declared(schedule, now)
            while True:
                row = await self._row(schedule.id)
                if row is None:
                    if await self.host.write_schedule(declared, None):
                        break
                    continue  # another engine stored it meanwhile
                alive = now - row.seen_at <= self.alive_ms
                new = opened(row, now, alive, declared)
                new = attrs.evolve(new, version=row.version + 1)
                if await self.host.write_schedule(new, row.version, row.seen_at):
                    break

    async def touch(self, now: int) -> None:
        """The heartbeat: this engine has its schedules open at ``now``."""
        if self.schedules:
            await self.host.touch_schedules(self.ids, now)

    async def fire_due(self, now: int) -> tuple[int, int | None]:
        """Start the due ticks of this engine's schedules; how many, and when the next
        one comes due (``None``: none of them will)."""
        if not self.schedules:
            return 0, None
        fired = 0
        upcoming: int | None = None
        for row in await self.host.read_schedules():
            if row.id not in self.schedules:
                continue
            count, left = await self._fire(row, now)
            fired += count
            if left is None:
                continue
            at = min(left.pending) if left.pending else None if left.paused else left.next_at
            if at is not None:
                upcoming = at if upcoming is None else min(upcoming, at)
        return fired, upcoming

    async def _fire(self, row: StoredSchedule, now: int) -> tuple[int, StoredSchedule | None]:
        """Fire ``row``'s due ticks: first each tick's instance, then the row moves past
        them (compare-and-set; on a conflict, read again: creating is a no-op the second
        time). The ticks started, and the row as left."""
        schedule = self.schedules[row.id]
        fired = 0
        current: StoredSchedule | None = row
        while current is not None:
            regular: list[int] = []
            if not current.paused:
                at = current.next_at
                while at <= now and len(regular) < MAX_CATCH_UP:
                    regular.append(at)
                    at = current.timing.after(at)
            due = sorted({*current.pending, *regular})
            if not due:
                return fired, current
            for at in due:
                await self._start(
                    tick_id(current.id, at),
                    schedule.workflow_name,
                    Tick(current.id, tick_time(at)),
                    schedule.queue_name,
                )
            moved = attrs.evolve(
                current,
                pending=(),
                next_at=current.timing.after(regular[-1]) if regular else current.next_at,
                last_at=max(due[-1], current.last_at or due[-1]),
                version=current.version + 1,
            )
            if await self.host.write_schedule(moved, current.version):
                fired += len(due)
                current = moved
            else:
                current = await self._row(row.id)
        return fired, None

    # -- operators: any stored schedule ----------------------------------------------------

    def info(self, row: StoredSchedule, now: int) -> ScheduleInfo:
        """What listings show of ``row``."""
        upcoming = min(row.pending) if row.pending else None if row.paused else row.next_at
        return ScheduleInfo(
            id=row.id,
            workflow=row.workflow,
            cron=row.timing.cron,
            every_ms=row.timing.every_ms,
            timezone=row.timing.timezone,
            catch_up=row.catch_up,
            queue=row.queue,
            next_run=None if upcoming is None else tick_time(upcoming),
            last_run=None if row.last_at is None else tick_time(row.last_at),
            paused=row.paused,
            orphaned=row.id not in self.schedules and now - row.seen_at > self.alive_ms,
            pending=len(row.pending),
        )

    async def list(self, now: int) -> list[ScheduleInfo]:
        """Every stored schedule, by id."""
        return [self.info(row, now) for row in await self.host.read_schedules()]

    async def _change(
        self, schedule_id: str, change: Callable[[StoredSchedule], StoredSchedule]
    ) -> StoredSchedule:
        """Apply ``change`` to the stored schedule (compare-and-set, retried)."""
        while True:
            row = await self._row(schedule_id)
            if row is None:
                raise ScheduleNotFoundError(schedule_id)
            new = attrs.evolve(change(row), version=row.version + 1)
            if await self.host.write_schedule(new, row.version):
                return new

    async def pause(self, schedule_id: str, now: int) -> ScheduleInfo:
        """Pause: the ticks that fall while it is paused are skipped."""
        row = await self._change(schedule_id, lambda r: attrs.evolve(r, paused=True))
        return self.info(row, now)

    async def resume(self, schedule_id: str, now: int) -> ScheduleInfo:
        """Resume: the next tick is the first after ``now`` (a no-op if not paused)."""

        def resumed(row: StoredSchedule) -> StoredSchedule:
            if not row.paused:
                return row
            return attrs.evolve(row, paused=False, next_at=row.timing.after(now))

        return self.info(await self._change(schedule_id, resumed), now)

    async def trigger(self, schedule_id: str, now: int) -> str:
        """One instance now (tick time ``now``, to the second: two triggers within one
        second are one tick); its id. This engine starts it at once when it declares the
        schedule, else a worker that does within its poll."""
        now = now // 1000 * 1000
        row = await self._change(
            schedule_id, lambda r: attrs.evolve(r, pending=tuple(sorted({*r.pending, now})))
        )
        if row.id in self.schedules:
            await self._fire(row, now)
        return tick_id(schedule_id, now)


async def start_failed(instance_id: str, error: OrchestratorError) -> None:
    """A tick whose instance cannot be created: storage trouble is raised (the tick stays
    due and is tried again), anything else is logged and the tick counted as fired (an
    instance with that id exists as another workflow, say: it would never be created)."""
    if isinstance(error.cause, StorageError):
        raise error.cause
    log.error("schedule tick %s could not start: %s", instance_id, error)
