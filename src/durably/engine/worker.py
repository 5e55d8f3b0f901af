"""The worker: claims due instances, fires their alarms, wakes when there is work."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Collection, Mapping

from returns.result import Failure

from durably.domain.errors import ExecutionStopped, OrchestratorError, StorageError
from durably.domain.lease import LeaseHold
from durably.domain.queues import ClaimScope, Queue
from durably.engine.schedules import ScheduleKeeper
from durably.engine.server import InstanceServer

__all__ = ["AlarmWorker"]

log = logging.getLogger("durably.engine")


class AlarmWorker:
    """Fires the alarms of one server's host: the loop behind ``run_worker``."""

    def __init__(
        self,
        server: InstanceServer,
        poll_interval_ms: int,
        queues: Mapping[str, Queue],
        workflows: Collection[str],
    ) -> None:
        self.server = server
        self.poll_interval_ms = poll_interval_ms
        self.queues = queues
        """The engine's queues (the default one included), with their limits."""
        self.workflows = frozenset(workflows)
        """The workflows this process has: an instance of another one is left alone."""
        self.skipped: set[str] = set()
        """The instances left to a worker that has their workflow (each logged once)."""
        self._looked_elsewhere = float("-inf")
        self.closing = asyncio.Event()
        """Set when the engine closes: every worker loop stops."""
        self.keeper: ScheduleKeeper | None = None
        """The engine's schedules: their due ticks are started before each claim."""

    async def fire_ticks(self) -> tuple[int, int | None]:
        """Start the due ticks of the engine's schedules (queued instances, claimed like
        any other); how many, and when the next tick comes due."""
        if self.keeper is None:
            return 0, None
        return await self.keeper.fire_due(self.server.host.now())

    def scope(self, served: Collection[str] | None, running: Counter[str]) -> ClaimScope:
        """What a claim of this worker may take: the queues it serves (every queue of the
        engine by default), their limits, and their room under ``worker_concurrency``
        given what this worker runs (``running``, per queue)."""
        names = list(self.queues) if served is None else list(served)
        for name in names:
            if name not in self.queues:
                known = ", ".join(self.queues)
                raise ValueError(f"unknown queue {name!r}; this engine's queues: {known}")
        queues = [self.queues[name] for name in names]
        return ClaimScope(
            served=frozenset(names),
            workflows=self.workflows,
            limits=tuple(q for q in queues if q.limited),
            room=tuple(
                (q.name, max(0, q.worker_concurrency - running[q.name]))
                for q in queues
                if q.worker_concurrency is not None
            ),
        )

    async def fire(self, instance_id: str, hold: LeaseHold) -> None:
        """Handle the alarm of an instance whose lease ``hold`` was just taken."""
        try:
            async with self.server.serve(instance_id, hold) as orchestrator:
                result = await orchestrator.handle_alarm()
                if isinstance(result, Failure):
                    error = result.failure()
                    if isinstance(error, OrchestratorError) and isinstance(
                        error.cause, ExecutionStopped
                    ):
                        log.info("%s", error.cause)
                    else:
                        log.error("alarm of %s failed: %s", instance_id, error)
                        # Still under the lease: only its holder writes the instance.
                        recorded = await orchestrator.record_alarm_failure(error)
                        if isinstance(recorded, Failure):
                            log.warning("%s: %s", instance_id, recorded.failure())
        except Exception:
            log.exception("alarm of %s failed", instance_id)

    async def take(self, instance_id: str) -> bool:
        """Lease one instance if it is free or expired and fire its alarm here; whether it
        was taken."""
        server = self.server
        started = time.monotonic()
        if not await server.host.acquire(
            instance_id, server.owner, server.host.now(), server.lease_ms
        ):
            return False
        await self.fire(instance_id, server.new_hold(taken_at=started))
        return True

    async def claim(
        self, limit: int, scope: ClaimScope | None = None
    ) -> list[tuple[str, LeaseHold, str]]:
        """Lease up to ``limit`` due instances; each with its lease hold and its queue."""
        server = self.server
        started = time.monotonic()
        claimed = await server.host.claim_due(
            server.owner,
            server.host.now(),
            server.lease_ms,
            limit,
            scope if scope is not None else self.scope(None, Counter()),
        )
        return [
            (c.instance_id, server.new_hold(taken_at=started, inbox_seq=c.inbox_seq), c.queue)
            for c in claimed
        ]

    async def run_until_idle(self, concurrency: int, queues: Collection[str] | None = None) -> int:
        """Fire due alarms until none is due; returns how many were fired."""
        fired = 0
        scope = self.scope(queues, Counter())
        while True:
            ticks, _ = await self.fire_ticks()
            claimed = await self.claim(concurrency, scope)
            if not claimed and not ticks:
                return fired
            await asyncio.gather(*(self.fire(i, hold) for i, hold, _ in claimed))
            fired += len(claimed)

    async def run(
        self, concurrency: int, stop: asyncio.Event, queues: Collection[str] | None = None
    ) -> None:
        """Fire due alarms of ``queues`` (every queue of the engine when ``None``), up to
        ``concurrency`` at once (and each queue's ``worker_concurrency``), until ``stop``."""
        self.scope(queues, Counter())  # an unknown queue is refused before anything runs
        running: dict[asyncio.Task[None], LeaseHold] = {}
        per_queue: Counter[str] = Counter()
        loop = asyncio.get_running_loop()
        stopping = loop.create_task(stop.wait())
        closing = loop.create_task(self.closing.wait())
        try:
            while not stop.is_set() and not self.closing.is_set():
                # A change in this process from now on wakes the wait below, even one
                # that lands while the store is being read.
                seen = self.server.changed.fired
                # A backend that can no longer be trusted stops the worker, loudly.
                host = self.server.host
                await host.check()
                free = concurrency - len(running)
                scope = self.scope(queues, per_queue)
                due: int | None = None
                claimed: list[tuple[str, LeaseHold, str]] = []
                try:
                    # Due ticks first: their instances are then due like any other.
                    _, tick_at = await self.fire_ticks()
                    # One statement when there is nothing to do: an idle worker is cheap.
                    due, unknown = await host.next_due(scope.served, scope.workflows)
                    if tick_at is not None:
                        due = tick_at if due is None else min(due, tick_at)
                    now = host.now()
                    if unknown is not None and unknown <= now:
                        await self._note_unknown(scope, now)
                    if free > 0 and due is not None and due <= now:
                        claimed = await self.claim(free, scope)
                except StorageError:
                    # The database is locked or unreachable beyond the adapter's retries:
                    # the worker survives it and tries again after the next wait.
                    log.exception("could not claim due instances; retrying")
                    due = None
                for instance_id, hold, queue in claimed:
                    task = loop.create_task(self.fire(instance_id, hold))
                    running[task] = hold
                    per_queue[queue] += 1

                    def done(task: asyncio.Task[None], queue: str = queue) -> None:
                        running.pop(task, None)
                        per_queue[queue] -= 1

                    task.add_done_callback(done)
                if claimed:
                    await asyncio.sleep(0)  # more may be due: look again at once
                    continue
                wait_s = self.wait_ms(due, host.now()) / 1000
                changed = loop.create_task(self.server.changed.wait(wait_s, seen))
                # Another process's new alarm wakes us where the backend can tell (NOTIFY).
                elsewhere = loop.create_task(self.server.host.wait_for_alarm(wait_s))
                await asyncio.wait(
                    {stopping, closing, changed, elsewhere},
                    timeout=wait_s,
                    return_when=asyncio.FIRST_COMPLETED,
                )
                changed.cancel()
                elsewhere.cancel()
        finally:
            stopping.cancel()
            closing.cancel()
            # Its executions stop at their next durability point and give back their
            # leases, so that another process goes on with them at once.
            for hold in running.values():
                hold.stopping = True
            if running:
                await asyncio.gather(*running, return_exceptions=True)

    async def _note_unknown(self, scope: ClaimScope, now: int) -> None:
        """Once a minute at most, when some are due: log (once each) the due instances of
        a workflow this process does not have. Claims leave them alone: not leased, not failed, not
        counted as recoveries, for a worker that has their workflow."""
        if time.monotonic() - self._looked_elsewhere < 60:
            return
        self._looked_elsewhere = time.monotonic()
        found = await self.server.host.due_elsewhere(now, scope.served, self.workflows, 100)
        for row in found:
            if row.id not in self.skipped:
                self.skipped.add(row.id)
                log.warning(
                    "instance %s is due but this process does not have workflow %r: "
                    "left for a worker that has it",
                    row.id,
                    row.workflow,
                )

    def wait_ms(self, due: int | None, now: int) -> int:
        """How long to wait for the next claim: until the next alarm, at most one poll
        interval; a poll interval when what is due could not be claimed (its queue is
        full, its lease is held): a slot freed in another process is seen at the next
        poll, one freed here wakes the worker at once (``changed``)."""
        if due is None or due <= now:
            return self.poll_interval_ms
        return min(self.poll_interval_ms, due - now)
