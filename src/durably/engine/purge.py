"""Purging finished instances on demand (``Engine.purge``, ``durably purge``)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from returns.result import Failure, Result, Success

from durably.domain import keys
from durably.domain.errors import StorageError

if TYPE_CHECKING:
    from durably.engine.engine import Engine

__all__ = ["purge_finished"]


async def purge_finished(engine: Engine, cutoff: int) -> Result[int, StorageError]:
    """Purge every finished instance last updated at or before ``cutoff``; how many were."""
    host = engine.host
    purged = 0
    for status in ("Completed", "Failed", "Cancelled"):
        try:
            rows = await host.list_instances(status, None, 1_000_000)
        except StorageError as e:
            return Failure(e)
        for row in rows:
            if row.updated_at > cutoff or await host.read(row.id, keys.TOMBSTONE) is not None:
                continue
            server = engine.server
            started = time.monotonic()
            if not await host.acquire(row.id, engine.owner, engine.now(), engine.lease.duration_ms):
                continue  # someone else works on it: leave it to the next purge
            hold = server.new_hold(taken_at=started)
            async with server.serve(row.id, hold):
                done = await server.services(row.id, hold).purge_manager.purge_now()
            if isinstance(done, Failure):
                error = done.failure()
                if not isinstance(error, StorageError):
                    error = StorageError("purge", row.id, error)
                return Failure(error)
            purged += int(done.unwrap())
    return Success(purged)
