"""Purging finished instances on demand (``Engine.purge``, ``durably purge``)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from returns.result import Failure, Result, Success

from durably.domain import keys
from durably.domain.errors import DurablyError, StorageError
from durably.domain.status import TERMINAL_TAGS
from durably.ports import InstanceHost
from durably.services.types import InstanceSummary

if TYPE_CHECKING:
    from durably.engine.engine import Engine

__all__ = ["purge_candidates", "purge_finished"]


async def _candidates(host: InstanceHost, cutoff: int) -> list[InstanceSummary]:
    """Finished instances last updated at or before ``cutoff`` and not purged yet."""
    found: list[InstanceSummary] = []
    for status in sorted(TERMINAL_TAGS):
        for row in await host.list_instances(status, None, 1_000_000):
            if row.updated_at > cutoff or await host.read(row.id, keys.TOMBSTONE) is not None:
                continue
            found.append(
                InstanceSummary(row.id, row.workflow, row.status, row.created_at, row.updated_at)
            )
    found.sort(key=lambda summary: (-summary.updated_at, summary.id))
    return found


async def purge_candidates(
    host: InstanceHost, cutoff: int
) -> Result[list[InstanceSummary], StorageError]:
    """What a purge with ``cutoff`` would delete now (it reads only)."""
    try:
        return Success(await _candidates(host, cutoff))
    except StorageError as e:
        return Failure(e)


async def purge_finished(engine: Engine, cutoff: int) -> Result[int, StorageError]:
    """Purge every finished instance last updated at or before ``cutoff``; how many were."""
    try:
        return Success(await _purge_finished(engine, cutoff))
    except StorageError as e:  # converted here only
        return Failure(e)


async def _purge_finished(engine: Engine, cutoff: int) -> int:
    host, server = engine.host, engine.server
    purged = 0
    for row in await _candidates(host, cutoff):
        started = time.monotonic()
        if not await host.acquire(row.id, engine.owner, engine.now(), engine.lease.duration_ms):
            continue  # someone else works on it: leave it to the next purge
        hold = server.new_hold(taken_at=started)
        async with server.serve(row.id, hold):
            try:
                purged += await server.services(row.id, hold).purge_manager.purge()
            except StorageError:
                raise
            except DurablyError as e:  # a stored status this version cannot read
                raise StorageError("purge", row.id, e) from e
    return purged
