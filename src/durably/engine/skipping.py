"""``Engine.result`` under a time-skipping clock: skip to the next alarm instead of waiting.

Under a test's virtual clock (``ports.clock.TimeSkippingClock``) no wall-clock wait can
bring an alarm closer, so ``result`` lets the engines settle, looks at the instance, and
asks the clock to move to the next thing due, at most ``MAX_SKIPPED_ALARMS`` times.
"""

from __future__ import annotations

import asyncio
import time
from contextlib import suppress
from typing import TYPE_CHECKING, Any

from durably.domain.errors import InstanceNotFoundError, ResultTimeoutError
from durably.domain.status import is_terminal
from durably.ports.clock import MAX_SKIPPED_ALARMS, TimeSkippingClock

if TYPE_CHECKING:
    from durably.engine.queries import EngineQueries

__all__ = ["output_skipping_time"]


async def output_skipping_time(
    engine: EngineQueries, id: str, clock: TimeSkippingClock, limit_ms: int | None
) -> Any:
    """Wait for instance ``id`` to end, moving ``clock`` from alarm to alarm: its output;
    raises why there is none (as ``Engine.result`` answers it).

    ``limit_ms`` bounds the wall-clock time spent (as ``result``'s ``timeout`` does);
    the virtual time skipped is bounded by the number of alarms only.
    """
    deadline = None if limit_ms is None else time.monotonic() + limit_ms / 1000

    def left() -> float | None:
        return None if deadline is None else max(0.0, deadline - time.monotonic())

    started_at = clock.now()
    skipped = 0
    pause = 0.005
    while True:
        with suppress(TimeoutError):  # out of time: the status below says where it stands
            async with asyncio.timeout(left()):
                await clock.settle(engine)
        status = (await engine._report(id)).status
        if status is None:
            raise InstanceNotFoundError(id)
        if is_terminal(status):
            return await engine._output(id, status)
        if deadline is not None and time.monotonic() >= deadline:
            raise ResultTimeoutError(id, limit_ms or 0, status.tag)
        if skipped >= MAX_SKIPPED_ALARMS:
            raise ResultTimeoutError(id, clock.now() - started_at, status.tag, alarms=skipped)
        moved = False
        with suppress(TimeoutError):
            async with asyncio.timeout(left()):
                moved = await clock.skip(engine)
        if moved:
            skipped += 1
            pause = 0.005
            continue
        # Nothing is due on the clock: only something from outside can move the instance.
        wait = pause if deadline is None else min(pause, left() or 0.0)
        await engine._changed.wait(wait)
        pause = min(pause * 2, 0.25)
