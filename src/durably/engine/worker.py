"""The worker: claims due instances, fires their alarms, wakes when there is work."""

from __future__ import annotations

import asyncio
import logging
import time

from returns.result import Failure

from durably.domain.errors import ExecutionStopped, OrchestratorError, StorageError
from durably.domain.lease import LeaseHold
from durably.engine.server import InstanceServer

__all__ = ["AlarmWorker"]

log = logging.getLogger("durably.engine")


class AlarmWorker:
    """Fires the alarms of one server's host: the loop behind ``run_worker``."""

    def __init__(self, server: InstanceServer, poll_interval_ms: int) -> None:
        self.server = server
        self.poll_interval_ms = poll_interval_ms
        self.closing = asyncio.Event()
        """Set when the engine closes: every worker loop stops."""

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

    async def claim(self, limit: int) -> list[tuple[str, LeaseHold]]:
        """Lease up to ``limit`` due instances; each with its lease hold."""
        server = self.server
        started = time.monotonic()
        claimed = await server.host.claim_due(
            server.owner, server.host.now(), server.lease_ms, limit
        )
        return [
            (c.instance_id, server.new_hold(taken_at=started, inbox_seq=c.inbox_seq))
            for c in claimed
        ]

    async def run_until_idle(self, concurrency: int) -> int:
        """Fire due alarms until none is due; returns how many were fired."""
        fired = 0
        while True:
            claimed = await self.claim(concurrency)
            if not claimed:
                return fired
            await asyncio.gather(*(self.fire(i, hold) for i, hold in claimed))
            fired += len(claimed)

    async def run(self, concurrency: int, stop: asyncio.Event) -> None:
        """Fire due alarms, up to ``concurrency`` at once, until ``stop`` is set."""
        running: dict[asyncio.Task[None], LeaseHold] = {}
        loop = asyncio.get_running_loop()
        stopping = loop.create_task(stop.wait())
        closing = loop.create_task(self.closing.wait())
        try:
            while not stop.is_set() and not self.closing.is_set():
                # A backend that can no longer be trusted stops the worker, loudly.
                await self.server.host.check()
                free = concurrency - len(running)
                try:
                    claimed = await self.claim(free) if free > 0 else []
                except StorageError:
                    # The database is locked or unreachable beyond the adapter's retries:
                    # the worker survives it and tries again after the next wait.
                    log.exception("could not claim due instances; retrying")
                    claimed = []
                for instance_id, hold in claimed:
                    task = loop.create_task(self.fire(instance_id, hold))
                    running[task] = hold
                    task.add_done_callback(lambda done: running.pop(done, None))
                if claimed and len(claimed) == free:
                    await asyncio.sleep(0)
                    continue
                wait_s = await self.next_wait_ms(bool(claimed)) / 1000
                changed = loop.create_task(self.server.changed.wait(wait_s))
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

    async def next_wait_ms(self, claimed_some: bool) -> int:
        """How long to wait before the next claim."""
        if claimed_some:
            return 0
        host = self.server.host
        try:
            due = await host.next_due()
        except StorageError:
            log.exception("could not read the next alarm")
            return self.poll_interval_ms
        if due is None:
            return self.poll_interval_ms
        # An alarm due but not claimable (its lease is held elsewhere) must not spin the loop.
        return min(self.poll_interval_ms, max(20, due - host.now()))
