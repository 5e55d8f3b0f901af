"""``Engine``: hosts many instances over one backend, fires their alarms, answers queries."""

from __future__ import annotations

import asyncio
import builtins
import datetime
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping
from contextlib import suppress
from pathlib import Path
from typing import Any, TypeVar, overload

import attrs
from returns.result import Failure, Result, Success

from durably.containers import build_root, read_profile
from durably.domain import keys
from durably.domain.durations import Duration, parse_duration
from durably.domain.errors import (
    DurablyError,
    OrchestratorError,
    StorageError,
)
from durably.domain.events import uuid7
from durably.domain.inbox import CANCEL, Outgoing
from durably.domain.owner import owner_token
from durably.domain.queues import DEFAULT_QUEUE, ClaimScope, Placement, Queue
from durably.domain.results import ok
from durably.domain.schedules import ScheduleInfo, Tick
from durably.domain.serialization import dumps
from durably.domain.status import Running, is_terminal
from durably.engine.children import ChildLauncher
from durably.engine.config import EngineOptions, Lease, Purge
from durably.engine.operator import cancel_candidates, cancel_matching, fork_instance
from durably.engine.purge import purge_candidates, purge_finished
from durably.engine.queries import EngineQueries
from durably.engine.schedules import (
    Schedule,
    ScheduleKeeper,
    check_schedules,
    start_failed,
    tick_typed,
)
from durably.engine.server import InstanceServer
from durably.engine.worker import AlarmWorker
from durably.ports import InstanceHost
from durably.services import RecoveryConfig, WorkflowDefinition
from durably.services.types import (
    CancelResult,
    InstanceSummary,
    SendResult,
    StartResult,
    WorkflowCall,
)

__all__ = ["Engine"]

log = logging.getLogger("durably.engine")

CLOSE_GRACE_S = 5.0
"""How long ``close`` waits for executions to reach their next durability point."""

I = TypeVar("I")  # noqa: E741 - the conventional name of an input type variable
O = TypeVar("O")  # noqa: E741 - the conventional name of an output type variable

Workflows = Iterable[WorkflowDefinition[Any, Any]] | Mapping[str, WorkflowDefinition[Any, Any]]


def _start_time(
    now: int, delay: Duration | None, start_at: int | datetime.datetime | None
) -> int | None:
    """When a queued instance may start (``None``: now)."""
    if delay is not None and start_at is not None:
        raise ValueError("give delay or start_at, not both")
    if delay is not None:
        return now + parse_duration(delay, field="delay")
    if isinstance(start_at, datetime.datetime):
        if start_at.tzinfo is None:
            raise ValueError("start_at needs an aware datetime (with a tzinfo), got a naive one")
        return round(start_at.timestamp() * 1000)
    if start_at is not None and (isinstance(start_at, bool) or not isinstance(start_at, int)):
        raise TypeError(f"start_at takes epoch ms or an aware datetime, got {start_at!r}")
    return start_at


def _queues(given: Iterable[Queue]) -> dict[str, Queue]:
    """The queues by name, the default one (without limits unless given) first."""
    queues: dict[str, Queue] = {DEFAULT_QUEUE: Queue(DEFAULT_QUEUE)}
    seen: set[str] = set()
    for queue in given:
        if not isinstance(queue, Queue):
            raise TypeError(f"queues takes durably.Queue objects, got {queue!r}")
        if queue.name in seen:
            raise ValueError(f"two queues are named {queue.name!r}")
        seen.add(queue.name)
        queues[queue.name] = queue
    return queues


class Engine(EngineQueries):
    """Runs workflows durably over a backend (``memory://``, ``sqlite:///path.db``).

    Use it as ``async with Engine([...], backend=...) as engine``: entering opens the
    backend, migrates it and makes instances left by dead processes due again.
    """

    def __init__(
        self,
        workflows: Workflows,
        *,
        backend: str | None = None,
        recovery: RecoveryConfig | None = None,
        purge: Purge | None = None,
        tracker: Any = None,
        clock: Any = None,
        lease: Lease | None = None,
        synchronous: str | None = None,
        poll_interval: Duration | None = None,
        read_only: bool = False,
        profile: str | Path | None = None,
        queues: Iterable[Queue] | None = None,
        schedules: Iterable[Schedule] | None = None,
    ) -> None:
        """An engine over ``backend`` (``sqlite:///durably.db`` when neither it nor a
        profile names one). An option left ``None`` comes from ``profile`` when one is
        given (a path, or a shipped profile's name), else from its built-in default
        (``durably.containers.DEFAULTS``); ``Engine.options`` keeps what was given."""
        options = EngineOptions(
            profile=profile,
            backend=backend,
            synchronous=synchronous,
            lease=lease,
            poll_interval=poll_interval,
            recovery=recovery,
            purge=purge,
            tracker=tracker,
            clock=clock,
            read_only=read_only,
            queues=tuple(queues) if queues is not None else (),
            schedules=tuple(schedules) if schedules is not None else (),
        )
        self._build(workflows, options, read_profile(profile) if profile is not None else {})

    def _build(
        self, workflows: Workflows, options: EngineOptions, profile: Mapping[str, Any]
    ) -> None:
        self.options = options
        """The options this engine was built with (``None``: from the profile or default)."""
        self._workflows: Workflows = (
            dict(workflows) if isinstance(workflows, Mapping) else list(workflows)
        )
        self._profile = profile  # as read: a sibling (with_options) does not read it again
        hosted: Workflows = self._workflows
        if options.schedules:  # a scheduled workflow reads its input back as a Tick
            if isinstance(hosted, Mapping):
                typed = tick_typed(hosted.values(), options.schedules)
                hosted = dict(zip(hosted, typed, strict=True))
            else:
                hosted = tick_typed(hosted, options.schedules)
        self._container = build_root(
            hosted,
            options.settings(),
            profile=profile,
            tracker=options.tracker,
            clock=options.clock,
        )
        config = self._container.config
        self.backend_url: str = config.backend.url()
        self.read_only = options.read_only
        """Opened to inspect: the backend is neither created nor migrated (it must exist),
        and every operation that would write (start, cancel, purge, workers) is refused."""
        self.lease: Lease = self._container.lease()
        self.poll_interval_ms: int = self._container.poll_interval_ms()
        self._clock = options.clock  # a time-skipping clock changes how result() waits
        self._host: InstanceHost = self._container.backend()
        self.registry = self._container.registry()
        self.tracker = self._container.tracker()
        self._executions = self._container.executions()
        self.owner = owner_token()
        self._server = InstanceServer(
            self._host, self._container.instance, self.owner, self.lease.duration_ms
        )
        self.queues: dict[str, Queue] = _queues(options.queues)
        """The queues of this engine, the default one first."""
        self._server.children = ChildLauncher(self._server, self.registry, self.queues)
        self._changed = self._server.changed
        self._heartbeat: asyncio.Task[None] | None = None
        self._worker = AlarmWorker(
            self._server, self.poll_interval_ms, self.queues, self.registry.list()
        )
        definitions = {name: self.registry.definition(name) for name in self.registry.list()}
        self._keeper = ScheduleKeeper(
            self._host,
            check_schedules(options.schedules, definitions, self.queues),
            self._start_tick,
            self.lease.duration_ms,
        )
        self._worker.keeper = self._keeper
        self._opened = False

    # -- construction from a profile, and from another engine ------------------------------

    @classmethod
    def from_profile(cls, path: str | Path, workflows: Workflows, **overrides: Any) -> Engine:
        """An engine configured by a profile of ``containers/`` (YAML): a path, or the
        bare name of a profile shipped in the package (``"sqlite"``, ``"postgres"``,
        ``"memory"``). ``overrides`` are ``Engine``'s keyword arguments: each one given
        (not ``None``) replaces the profile's value (``backend=...``)."""
        return cls(workflows, profile=path, **overrides)

    def with_options(self, **changes: Any) -> Engine:
        """A new engine with this one's workflows and options, but for ``changes``
        (``Engine``'s keyword arguments: ``engine.with_options(backend=url)``).

        What this engine's options did not give comes, as for this one, from the
        profile or the defaults: ``profile=`` in ``changes`` replaces this engine's
        profile (its values then apply where no option is given). The new engine's
        events go to this engine's tracker unless ``changes`` gives a tracker or a
        profile. Objects (tracker, clock) are shared, not copied: open one of the two
        engines at a time.
        """
        options = attrs.evolve(self.options, **changes)
        profile = self._profile
        if "profile" in changes:
            profile = read_profile(options.profile) if options.profile is not None else {}
        elif options.tracker is None:
            options = attrs.evolve(options, tracker=self.tracker)
        sibling = type(self).__new__(type(self))
        sibling._build(self._workflows, options, profile)
        return sibling

    @property
    def worker_concurrency(self) -> int:
        """How many instances ``durably worker`` runs at once unless told otherwise: the
        profile's ``worker.concurrency`` (100 by default)."""
        concurrency: int = self._container.config.worker.concurrency()
        return concurrency

    # -- lifecycle ------------------------------------------------------------------------

    async def open(self) -> Engine:
        """Open and migrate the backend; make instances of dead local processes due now.

        A ``read_only`` engine only opens the backend, which must already exist (a
        missing or foreign database is an error, and nothing is created or migrated).
        """
        if self._opened:
            return self
        await self._container.init_resources()  # opens (and migrates) the backend
        if not self.read_only:
            await self._host.save_queues(list(self.queues.values()), self.now())
            await self._keeper.open(self.now())
            await self._host.expire_dead_local_owners(self.now())
            self._heartbeat = asyncio.get_running_loop().create_task(self._renew_leases())
        self._opened = True
        return self

    async def close(self) -> None:
        """Stop: executions stop at their next durability point (up to ``CLOSE_GRACE_S``),
        the leases of this engine are given back (its instances are due at once for
        another process), the tracker is flushed and the backend closed."""
        if not self._opened:
            return
        self._opened = False
        self._worker.closing.set()
        self._server.stop_executions()
        if not await self._server.wait_idle(CLOSE_GRACE_S):
            log.warning("executions still running at close; their leases are given back anyway")
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            with suppress(asyncio.CancelledError):
                await self._heartbeat
        if not self.read_only:
            try:
                await self._keeper.touch(self.now())  # its schedules were open until now
            except StorageError:
                log.exception("could not record the schedules' heartbeat at close")
        try:
            if not self.read_only:  # a read-only engine never took a lease
                await self._host.release_all(self.owner, self.now())
        except StorageError:
            log.exception("could not give back the leases at close (they will expire)")
        try:
            await self.tracker.close()
        except Exception:  # a tracker never fails the engine
            log.exception("tracker failed to close")
        await self._container.shutdown_resources()  # closes the backend

    async def __aenter__(self) -> Engine:
        return await self.open()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def now(self) -> int:
        """The engine's clock (epoch ms)."""
        return self._host.now()

    @property
    def host(self) -> InstanceHost:
        """The backend hosting the instances."""
        return self._host

    @property
    def claim_scope(self) -> ClaimScope:
        """What this engine's worker claims: its queues (with their limits) and the
        workflows it has."""
        return self._worker.scope(None, Counter())

    @property
    def server(self) -> InstanceServer:
        """What serves this engine's instances (its host, services, locks and leases)."""
        return self._server

    def _require_open(self) -> None:
        if not self._opened:
            raise RuntimeError(
                "the engine is not open: use `async with engine:` or `await engine.open()`"
            )

    def _require_writable(self, operation: str) -> None:
        self._require_open()
        if self.read_only:
            raise RuntimeError(
                f"this engine is read-only (read_only=True): {operation} would write to "
                "the backend; use an Engine opened without read_only"
            )

    async def _renew_leases(self) -> None:
        while True:
            await asyncio.sleep(self.lease.renew_every_ms / 1000)
            try:
                await self._keeper.touch(self.now())  # this engine has its schedules open
            except StorageError:
                log.exception("schedule heartbeat failed; it is retried at the next beat")
            if self._server.active:
                try:
                    await self._server.renew()
                except StorageError:
                    log.exception("lease renewal failed; it is retried at the next beat")

    # -- starting and stopping workflows --------------------------------------------------

    def _name_of(self, workflow: str | WorkflowDefinition[Any, Any]) -> str:
        if isinstance(workflow, WorkflowDefinition):
            return workflow.name
        if isinstance(workflow, str):
            return workflow
        raise TypeError(f"workflow must be a WorkflowDefinition or its name, got {workflow!r}")

    @staticmethod
    def _check_id(instance_id: str | None) -> str:
        if instance_id is None:
            # Time-ordered: a new instance's rows go at the end of the tables' b-trees
            # (fewer page splits, so fewer pages per commit than with random ids).
            return uuid7(time.time_ns() // 1_000_000)
        if not isinstance(instance_id, str) or not instance_id.strip():
            raise ValueError(f"an instance id must be a non-empty string, got {instance_id!r}")
        size = len(instance_id.encode("utf-8", errors="replace"))
        if size > keys.MAX_ID_BYTES or "\x00" in instance_id:
            raise ValueError(
                f"an instance id must be at most {keys.MAX_ID_BYTES} bytes of UTF-8 without a "
                f"NUL character, got {size} bytes: {instance_id[:40]!r}..."
            )
        return instance_id

    async def start(
        self,
        workflow: str | WorkflowDefinition[Any, Any],
        input: Any = None,
        *,
        id: str | None = None,
        execution_id: str | None = None,
    ) -> Result[StartResult, OrchestratorError]:
        """Start (or find) instance ``id`` and run it here until it completes or pauses."""
        call = WorkflowCall(self._name_of(workflow), input, execution_id)
        instance_id = self._check_id(id)
        self._require_writable("start")
        async with self._server.serve(instance_id) as orchestrator:
            result = await orchestrator.start(call)
        if isinstance(result, Success) and isinstance(result.unwrap().status, Running):
            # Another process runs it (a concurrent start won the creation): like the
            # winner, answer once it completes or pauses, so every caller gets one answer.
            return await self._answer_when_settled(instance_id, call)
        return result

    async def _answer_when_settled(
        self, instance_id: str, call: WorkflowCall
    ) -> Result[StartResult, OrchestratorError]:
        pause = 0.005
        while True:
            result = await self._server.reader(instance_id).start(call)
            if isinstance(result, Failure) or not isinstance(result.unwrap().status, Running):
                return result
            if not self._executions.running(instance_id):
                try:
                    if await self._worker.take(instance_id):
                        continue  # its owner was gone (the lease was free or expired): run here
                except StorageError as e:
                    return Failure(OrchestratorError("start", e))
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.25)

    @overload
    async def run(
        self,
        workflow: WorkflowDefinition[I, O],
        input: I = ...,
        *,
        id: str | None = None,
        execution_id: str | None = None,
        timeout: Any = None,
    ) -> Result[O, DurablyError]: ...

    @overload
    async def run(
        self,
        workflow: str,
        input: Any = None,
        *,
        id: str | None = None,
        execution_id: str | None = None,
        timeout: Any = None,
    ) -> Result[Any, DurablyError]: ...

    async def run(
        self,
        workflow: str | WorkflowDefinition[Any, Any],
        input: Any = None,
        *,
        id: str | None = None,
        execution_id: str | None = None,
        timeout: Any = None,
    ) -> Result[Any, DurablyError]:
        """Start ``workflow`` and drive it here until it ends: its output, or why not.

        Sleeps and retries are waited out in this process (a worker runs meanwhile, so
        other due instances of this backend are served too).
        """
        limit_ms = None if timeout is None else parse_duration(timeout, field="timeout")
        try:
            started = ok(await self.start(workflow, input, id=id, execution_id=execution_id))
            return Success(await self._drive(started, limit_ms))
        except DurablyError as e:  # converted here only: the start's, the outcome, the store's
            return Failure(e)

    async def _drive(self, started: StartResult, limit_ms: int | None) -> Any:
        """Run due alarms here until the started instance ends; its output (raises why not)."""
        if is_terminal(started.status):
            return await self._output(started.id, started.status)
        stop = asyncio.Event()
        worker = asyncio.get_running_loop().create_task(self.run_worker(stop=stop))
        try:
            return await self._wait_for_output(started.id, limit_ms)
        finally:
            stop.set()
            await worker  # a worker that failed (its store did) raises its error here

    async def queue(
        self,
        workflow: str | WorkflowDefinition[Any, Any],
        input: Any = None,
        *,
        id: str | None = None,
        execution_id: str | None = None,
        queue: str = DEFAULT_QUEUE,
        priority: int = 0,
        partition_key: str | None = None,
        dedupe_id: str | None = None,
        delay: Duration | None = None,
        start_at: int | datetime.datetime | None = None,
    ) -> Result[StartResult, OrchestratorError]:
        """Create instance ``id`` to be run by a worker, on ``queue``; returns at once.

        Lower ``priority`` starts first, first in first out within a priority; the queue's
        limits hold across every worker (``Queue``). Not started before ``delay`` (from
        now) or ``start_at`` (epoch ms, or an aware ``datetime``). A ``dedupe_id`` held by
        an instance of that queue that has not ended answers
        ``Failure(OrchestratorError("queue", DuplicateWorkflowError(...)))``.
        """
        placement = self._placement(queue, priority, partition_key, dedupe_id)
        at = _start_time(self.now(), delay, start_at)
        call = WorkflowCall(
            self._name_of(workflow), input, execution_id, placement=placement, start_at=at
        )
        instance_id = self._check_id(id)
        self._require_writable("queue")
        async with self._server.serve(instance_id) as orchestrator:
            return await orchestrator.queue(call)

    def _placement(
        self, queue: str, priority: int, partition_key: str | None, dedupe_id: str | None
    ) -> Placement | None:
        if queue not in self.queues:
            known = ", ".join(self.queues)
            raise ValueError(f"unknown queue {queue!r}; this engine's queues: {known}")
        if isinstance(priority, bool) or not isinstance(priority, int):
            raise TypeError(f"priority must be an int, got {priority!r}")
        for name, value in (("partition_key", partition_key), ("dedupe_id", dedupe_id)):
            if value is not None and (not isinstance(value, str) or not value):
                raise ValueError(f"{name} must be a non-empty string or None, got {value!r}")
        placement = Placement(queue, priority, partition_key, dedupe_id)
        return None if placement == Placement() else placement

    async def cancel(
        self, id: str, *, reason: str | None = None
    ) -> Result[CancelResult, OrchestratorError]:
        """Cancel instance ``id``; answers at once (it never waits for another worker).

        An instance that waits and that nobody else holds is cancelled now. Otherwise the
        cancel goes to its inbox: an execution in this process is interrupted at once;
        one in another process stops at its next step or sleep (at the latest after its
        next commit plus one poll interval), and an instance that another worker is just
        starting or resuming is cancelled by that worker. ``cancelled=True`` means the
        cancel is recorded; a run that is finishing its last step may still complete, and
        ``status`` tells the outcome (docs/decisions.md).
        """
        self._require_writable("cancel")
        if not self._executions.running(id):
            started = time.monotonic()
            try:
                taken = await self._host.acquire(id, self.owner, self.now(), self.lease.duration_ms)
            except StorageError as e:
                return Failure(OrchestratorError("cancel", e))
            if taken:
                hold = self._server.new_hold(taken_at=started)
                async with self._server.serve(id, hold) as orchestrator:
                    return await orchestrator.cancel(reason)
            try:
                outcome = await self._host.append(
                    Outgoing(id, CANCEL, payload=dumps({"reason": reason})), self.now()
                )
            except StorageError as e:
                return Failure(OrchestratorError("cancel", e))
            if outcome.status is None:
                return Success(CancelResult(False, "not_found", None))
            if outcome.seq is None:
                return Success(CancelResult(False, "already_terminal", outcome.status))
            return Success(CancelResult(True, None, outcome.status))
        # Running here: the cancel goes to the inbox and the execution is interrupted.
        return await self._server.reader(id).cancel(reason)

    # -- operator actions -----------------------------------------------------------------

    async def resume(
        self, id: str, *, reason: str | None = None
    ) -> Result[StartResult, OrchestratorError]:
        """Run a ``Failed`` or ``Cancelled`` instance again, from where it stopped: its
        completed steps are kept (not run again), the step that failed gets fresh
        attempts, and a worker runs it (it is queued, like ``queue``). The reopening
        (``Reopen``, with ``reason``) is kept in its history. Any other status is an
        ``InvalidTransitionError``; a purged instance an ``InstancePurgedError``."""
        self._require_writable("resume")
        started = time.monotonic()
        try:
            taken = await self._host.acquire(id, self.owner, self.now(), self.lease.duration_ms)
        except StorageError as e:
            return Failure(OrchestratorError("resume", e))
        hold = self._server.new_hold(taken_at=started) if taken else None
        async with self._server.serve(id, hold) as orchestrator:
            reopened = await orchestrator.reopen(reason)
        if isinstance(reopened, Success):
            self._server.changed.fire()  # this process's worker looks for due instances now
        return reopened

    async def fork(
        self, id: str, *, from_step: str, new_id: str | None = None
    ) -> Result[StartResult, OrchestratorError]:
        """A new instance (``new_id``, else ``<id>-fork-<8 hex>``) with the input of
        instance ``id`` and the points it had ended before step ``from_step``: queued, a
        worker runs it from that step (the steps before are not run again)."""
        self._require_writable("fork")
        if new_id is not None:
            new_id = self._check_id(new_id)
        return await fork_instance(self, id, from_step, new_id)

    async def cancel_many(
        self,
        *,
        workflow: str | None = None,
        status: str | None = None,
        before: Duration | None = None,
        reason: str | None = None,
    ) -> Result[builtins.list[InstanceSummary], OrchestratorError]:
        """Cancel every instance not ended yet of ``workflow`` and in ``status`` (if
        given), last updated more than ``before`` ago (if given); the instances whose
        cancel was recorded (as ``cancel`` does for each). ``cancel_candidates`` lists
        them without cancelling anything."""
        self._require_writable("cancel_many")
        cutoff = None if before is None else self.now() - parse_duration(before, field="before")
        try:
            found = await cancel_candidates(self, workflow, status, cutoff)
            return Success(await cancel_matching(self, found, reason))
        except OrchestratorError as e:
            return Failure(e)
        except DurablyError as e:
            return Failure(OrchestratorError("cancel_many", e))

    async def cancel_candidates(
        self,
        *,
        workflow: str | None = None,
        status: str | None = None,
        before: Duration | None = None,
    ) -> Result[builtins.list[InstanceSummary], StorageError]:
        """What ``cancel_many`` with these filters would cancel now (it reads only)."""
        self._require_open()
        cutoff = None if before is None else self.now() - parse_duration(before, field="before")
        try:
            return Success(await cancel_candidates(self, workflow, status, cutoff))
        except StorageError as e:
            return Failure(e)

    # -- events -------------------------------------------------------------------------

    async def send_event(
        self, id: str, name: str, payload: Any = None, *, event_id: str | None = None
    ) -> Result[SendResult, OrchestratorError]:
        """Deliver event ``name`` (with a JSON-serialisable ``payload``) to instance ``id``.

        One commit stores it in the instance's inbox and, when the instance is paused,
        makes it due: a wait for that event resumes at once (a worker of this process
        claims it now; one of another process within its poll interval, at once on
        PostgreSQL). Events are kept until a wait takes them, in delivery order per name.
        ``event_id`` dedupes: a second send with it delivers nothing and answers
        ``duplicate=True``. Not delivered: ``reason`` ``"not_found"`` or
        ``"already_terminal"``. A payload that cannot be stored is a ``Failure`` whose
        cause is ``SerializationError``; nothing is stored.
        """
        if not isinstance(name, str) or not name:
            raise ValueError(f"an event name must be a non-empty string, got {name!r}")
        if event_id is not None and (not isinstance(event_id, str) or not event_id):
            raise ValueError(f"event_id must be a non-empty string or None, got {event_id!r}")
        self._require_writable("send_event")
        sent = await self._server.reader(id).send_event(name, payload, event_id)
        if isinstance(sent, Success) and sent.unwrap().delivered:
            self._server.changed.fire()  # this process's worker looks for due instances now
        return sent

    async def purge(self, *, before: Any = 0) -> Result[int, StorageError]:
        """Purge now every finished instance last updated more than ``before`` ago (a
        duration; ``0``, the default, purges every finished instance); how many were.

        Each keeps its tombstone (final status), so a later ``start`` with its id still
        answers with that status instead of running the workflow again, and ``result``
        fails with ``InstancePurgedError`` (carrying that status). ``purge_candidates``
        lists what a purge would delete, deleting nothing.
        """
        self._require_writable("purge")
        cutoff = self.now() - parse_duration(before, field="before")
        return await purge_finished(self, cutoff)

    async def purge_candidates(
        self, *, before: Any = 0
    ) -> Result[builtins.list[InstanceSummary], StorageError]:
        """The finished, not yet purged instances that ``purge(before=...)`` would purge
        now (a dry run: nothing is deleted), most recently updated first."""
        self._require_open()
        cutoff = self.now() - parse_duration(before, field="before")
        return await purge_candidates(self.host, cutoff)

    # -- schedules (the ticks are fired by the worker: engine/schedules.py) ----------------

    @property
    def schedule_keeper(self) -> ScheduleKeeper:
        """What stores this engine's schedules and fires their ticks."""
        return self._keeper

    async def _start_tick(self, instance_id: str, workflow: str, tick: Tick, queue: str) -> None:
        """Queue one tick's instance (a no-op when it exists: the id is the lock)."""
        placement = None if queue == DEFAULT_QUEUE else Placement(queue)
        call = WorkflowCall(workflow, tick, None, placement=placement)
        async with self._server.serve(instance_id) as orchestrator:
            result = await orchestrator.queue(call)
        if isinstance(result, Failure):
            await start_failed(instance_id, result.failure())

    async def schedules(self) -> Result[builtins.list[ScheduleInfo], StorageError]:
        """Every stored schedule (by id): its timing, next and last run, whether it is
        paused, and whether it is orphaned (no open engine declares it)."""
        self._require_open()
        try:
            return Success(await self._keeper.list(self.now()))
        except StorageError as e:
            return Failure(e)

    async def _on_schedule(
        self, operation: str, action: Callable[[int], Awaitable[Any]]
    ) -> Result[Any, OrchestratorError]:
        self._require_writable(operation)
        try:
            return Success(await action(self.now()))
        except OrchestratorError as e:
            return Failure(e)
        except DurablyError as e:  # unknown id, storage
            return Failure(OrchestratorError(operation, e))

    async def pause_schedule(self, id: str) -> Result[ScheduleInfo, OrchestratorError]:
        """Pause schedule ``id`` (from any process): its ticks are skipped until resumed.
        An unknown id is a ``Failure`` whose cause is ``ScheduleNotFoundError``."""
        info: Result[ScheduleInfo, OrchestratorError] = await self._on_schedule(
            "pause_schedule", lambda now: self._keeper.pause(id, now)
        )
        return info

    async def resume_schedule(self, id: str) -> Result[ScheduleInfo, OrchestratorError]:
        """Resume schedule ``id``: it fires again from its first tick after now (the
        ticks that fell while it was paused are not caught up)."""
        info: Result[ScheduleInfo, OrchestratorError] = await self._on_schedule(
            "resume_schedule", lambda now: self._keeper.resume(id, now)
        )
        return info

    async def trigger_schedule(self, id: str) -> Result[str, OrchestratorError]:
        """Start one instance of schedule ``id`` now (tick time = now, paused or not); the
        instance's id. It is queued here when this engine declares the schedule, else by
        a worker that does, within its poll interval."""
        started: Result[str, OrchestratorError] = await self._on_schedule(
            "trigger_schedule", lambda now: self._keeper.trigger(id, now)
        )
        if isinstance(started, Success):
            self._server.changed.fire()
        return started

    # -- firing alarms (the loop lives in worker.py) --------------------------------------

    async def run_until_idle(
        self, *, concurrency: int = 100, queues: Iterable[str] | None = None
    ) -> int:
        """Fire due alarms (of ``queues``: every queue of the engine when ``None``) until
        none is due; returns how many were fired."""
        self._require_writable("run_until_idle")
        return await self._worker.run_until_idle(
            concurrency, None if queues is None else list(queues)
        )

    async def run_worker(
        self,
        *,
        concurrency: int = 100,
        stop: asyncio.Event | None = None,
        queues: Iterable[str] | None = None,
    ) -> None:
        """Fire due alarms, up to ``concurrency`` instances at once, until ``stop`` is set.

        ``queues``: the names of the queues to serve (every queue of the engine, the
        default one included, when ``None``); each queue's ``worker_concurrency`` caps
        how many of its instances run here at once."""
        self._require_writable("run_worker")
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency}")
        served = None if queues is None else list(queues)
        await self._worker.run(concurrency, stop if stop is not None else asyncio.Event(), served)
