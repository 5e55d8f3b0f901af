"""The worker: claims due instances, fires their alarms, wakes when there is work."""

from __future__ import annotations

import asyncio
import logging
from contextlib import suppress
from typing import TYPE_CHECKING

from returns.result import Failure

from durably.domain.errors import StorageError

if TYPE_CHECKING:
    from durably.engine.engine import Engine

__all__ = ["AlarmWorker", "Signal"]

log = logging.getLogger("durably.engine")


class Signal:
    """Wakes every coroutine waiting at the moment it fires (each waiter has its own future)."""

    def __init__(self) -> None:
        self._waiters: set[asyncio.Future[None]] = set()

    def fire(self) -> None:
        """Wake every current waiter."""
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._waiters.clear()

    async def wait(self, timeout_s: float) -> None:
        """Return at the next ``fire`` or after ``timeout_s``."""
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.add(waiter)
        try:
            with suppress(TimeoutError):
                await asyncio.wait_for(waiter, timeout_s)
        finally:
            self._waiters.discard(waiter)


class AlarmWorker:
    """Fires the alarms of one engine's backend: the loop behind ``run_worker``."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    async def fire(self, instance_id: str) -> None:
        """Handle the alarm of a claimed instance."""
        try:
            async with self.engine._serving(instance_id) as orchestrator:
                result = await orchestrator.handle_alarm()
            if isinstance(result, Failure):
                log.error("alarm of %s failed: %s", instance_id, result.failure())
        except Exception:
            log.exception("alarm of %s failed", instance_id)

    async def claim(self, limit: int) -> list[str]:
        """Lease up to ``limit`` due instances."""
        engine = self.engine
        return await engine.host.claim_due(
            engine.owner, engine.now(), engine.lease.duration_ms, limit
        )

    async def run_until_idle(self, concurrency: int) -> int:
        """Fire due alarms until none is due; returns how many were fired."""
        fired = 0
        while True:
            ids = await self.claim(concurrency)
            if not ids:
                return fired
            await asyncio.gather(*(self.fire(i) for i in ids))
            fired += len(ids)

    async def run(self, concurrency: int, stop: asyncio.Event) -> None:
        """Fire due alarms, up to ``concurrency`` at once, until ``stop`` is set."""
        running: set[asyncio.Task[None]] = set()
        loop = asyncio.get_running_loop()
        stopping = loop.create_task(stop.wait())
        try:
            while not stop.is_set():
                free = concurrency - len(running)
                try:
                    claimed = await self.claim(free) if free > 0 else []
                except StorageError:
                    # The database is locked or unreachable beyond the adapter's retries:
                    # the worker survives it and tries again after the next wait.
                    log.exception("could not claim due instances; retrying")
                    claimed = []
                for instance_id in claimed:
                    task = loop.create_task(self.fire(instance_id))
                    running.add(task)
                    task.add_done_callback(running.discard)
                if claimed and len(claimed) == free:
                    await asyncio.sleep(0)
                    continue
                wait_s = await self.next_wait_ms(bool(claimed)) / 1000
                changed = loop.create_task(self.engine._changed.wait(wait_s))
                # Another process's new alarm wakes us where the backend can tell (NOTIFY).
                elsewhere = loop.create_task(self.engine.host.wait_for_alarm(wait_s))
                await asyncio.wait(
                    {stopping, changed, elsewhere},
                    timeout=wait_s,
                    return_when=asyncio.FIRST_COMPLETED,
                )
                changed.cancel()
                elsewhere.cancel()
        finally:
            stopping.cancel()
            if running:
                await asyncio.gather(*running, return_exceptions=True)

    async def next_wait_ms(self, claimed_some: bool) -> int:
        """How long to wait before the next claim."""
        engine = self.engine
        if claimed_some:
            return 0
        try:
            due = await engine.host.next_due()
        except StorageError:
            log.exception("could not read the next alarm")
            return engine.poll_interval_ms
        if due is None:
            return engine.poll_interval_ms
        # An alarm due but not claimable (its lease is held elsewhere) must not spin the loop.
        return min(engine.poll_interval_ms, max(20, due - engine.now()))
