"""``InstanceServer``: serves one instance at a time over a host, under this process's lease.

Everything of the engine that touches an instance goes through here (``Engine.start``,
the worker, ``cancel``, purge, the queries): the services of the instance built for
one call, one execution of an instance at a time in this process (a lock per instance),
and the lease: taken by a claim, an acquire or the creation commit, kept by the
heartbeat (``renew``), given back when the serving ends.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress

from durably.containers import InstanceServices
from durably.domain.errors import StorageError
from durably.domain.lease import LeaseHold
from durably.ports import ChildStarter, InstanceHost
from durably.services import WorkflowOrchestrator

__all__ = ["InstanceServer", "Signal"]

log = logging.getLogger("durably.engine")


class Signal:
    """Wakes every coroutine waiting at the moment it fires (each waiter has its own future).

    ``fired`` counts the fires: a coroutine that looks at the store and then waits takes
    ``fired`` before it looks and passes it to ``wait``, so that a fire in between (a
    commit that landed while it was reading) is not lost to a whole timeout.
    """

    def __init__(self) -> None:
        self._waiters: set[asyncio.Future[None]] = set()
        self.fired = 0

    def fire(self) -> None:
        """Wake every current waiter."""
        self.fired += 1
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._waiters.clear()

    async def wait(self, timeout_s: float, seen: int | None = None) -> None:
        """Return at the next ``fire`` or after ``timeout_s``; at once when it fired since
        ``fired`` was ``seen``."""
        if seen is not None and self.fired != seen:
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.add(waiter)
        try:
            with suppress(TimeoutError):
                await asyncio.wait_for(waiter, timeout_s)
        finally:
            self._waiters.discard(waiter)


class InstanceServer:
    """Serves the instances of ``host`` for lease owner ``owner``."""

    def __init__(
        self,
        host: InstanceHost,
        wire: Callable[..., InstanceServices],
        owner: str,
        lease_ms: int,
    ) -> None:
        self.host = host
        self._wire = wire
        """Builds one instance's services from its runtime (the root container's provider)."""
        self.owner = owner
        self.lease_ms = lease_ms
        self.changed = Signal()
        """Fires whenever a serving ends (an instance may have changed)."""
        self._locks: dict[str, tuple[asyncio.Lock, list[int]]] = {}
        """Per instance: its lock and how many coroutines hold or wait for it."""
        self._holds: dict[str, LeaseHold] = {}
        """The lease holds of the instances being served."""
        self.stopping = False
        self.children: ChildStarter | None = None
        """How the workflows served start children (set by the engine)."""

    @property
    def active(self) -> int:
        """How many instances are being served."""
        return len(self._holds)

    def new_hold(self, *, taken_at: float | None = None, inbox_seq: int | None = None) -> LeaseHold:
        """A lease hold of this owner: taken by an operation started at ``taken_at``
        (monotonic s), or not held yet (the creation commit will take it)."""
        hold = LeaseHold(self.owner, self.lease_ms, held=taken_at is not None, inbox_seq=inbox_seq)
        if taken_at is not None:
            hold.extended(taken_at)
        return hold

    def services(self, instance_id: str, hold: LeaseHold | None) -> InstanceServices:
        """The services of one instance (fenced by ``hold`` if given)."""
        return self._wire(runtime=self.host.runtime(instance_id, hold), children=self.children)

    def orchestrator(self, instance_id: str, hold: LeaseHold | None) -> WorkflowOrchestrator:
        """The orchestrator of one instance."""
        return self.services(instance_id, hold).orchestrator

    def reader(self, instance_id: str) -> WorkflowOrchestrator:
        """An orchestrator that holds no lease: for status queries and cancels from outside."""
        return self.orchestrator(instance_id, None)

    @asynccontextmanager
    async def serve(
        self, instance_id: str, hold: LeaseHold | None = None
    ) -> AsyncIterator[WorkflowOrchestrator]:
        """Serve one instance: one execution at a time here, the lease given back after."""
        if hold is None:
            hold = self.new_hold()
        entry = self._locks.get(instance_id)
        if entry is None:
            entry = self._locks[instance_id] = (asyncio.Lock(), [0])
        lock, users = entry
        users[0] += 1
        try:
            async with lock:
                hold.stopping = self.stopping
                self._holds[instance_id] = hold
                try:
                    yield self.orchestrator(instance_id, hold)
                finally:
                    del self._holds[instance_id]
                    if hold.held:
                        await self._release(instance_id, hold)
        finally:
            users[0] -= 1
            if users[0] == 0:  # nobody holds or waits: forget the lock
                del self._locks[instance_id]
            self.changed.fire()

    async def _release(self, instance_id: str, hold: LeaseHold) -> None:
        # An execution that stopped for the engine's closing leaves its instance Running:
        # due at once, so another worker goes on with it now rather than at the lease's end.
        wake_at = self.host.now() if hold.stopping else None
        try:
            await self.host.release(instance_id, self.owner, wake_at)
        except StorageError:
            log.exception("could not release the lease of %s (it will expire)", instance_id)

    async def renew(self) -> None:
        """Extend every lease of this owner (the heartbeat), and the holds of those renewed."""
        started = time.monotonic()
        renewed = await self.host.renew(self.owner, self.host.now(), self.lease_ms)
        for instance_id in renewed:
            hold = self._holds.get(instance_id)
            if hold is not None:
                hold.extended(started)

    def stop_executions(self) -> None:
        """Ask every execution to stop at its next durability point (the engine closes)."""
        self.stopping = True
        for hold in self._holds.values():
            hold.stopping = True

    async def wait_idle(self, timeout_s: float) -> bool:
        """Wait until nothing is being served (at most ``timeout_s``); whether it is."""
        deadline = time.monotonic() + timeout_s
        while self._holds:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            await self.changed.wait(min(left, 0.05))
        return True
