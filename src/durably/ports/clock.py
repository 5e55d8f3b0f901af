"""The time-skipping clock: a test's clock, which the engine asks to move instead of waiting.

A clock is anything with ``now() -> int``. A clock that also has this protocol's methods
(``durably.testing.VirtualClock``) moves only when told to, so the engine never waits
on the wall clock for it: ``Engine.result`` asks it to skip to the next alarm, and a
step's timeout is counted in its time. The engine knows this protocol only, never the
clock's module (``durably.testing`` sits above the engine).
"""

from __future__ import annotations

import asyncio
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol, runtime_checkable

__all__ = ["TimeSkippingClock", "MAX_SKIPPED_ALARMS"]

MAX_SKIPPED_ALARMS = 10_000
"""How many alarms ``Engine.result`` skips to under a time-skipping clock before it gives
up: a workflow that needs more most likely never ends (a retry without a limit)."""


@runtime_checkable
class TimeSkippingClock(Protocol):
    """A virtual clock that the engine may ask to move (tests)."""

    def now(self) -> int:
        """The clock's time, in epoch milliseconds."""
        ...

    async def settle(self, engine: Any = None) -> None:
        """Return once the engines on this clock have done what they can at its current
        time (``engine``: the one asking, which must be on this clock)."""
        ...

    async def skip(self, engine: Any = None) -> bool:
        """Move to the next time something is due (an alarm, a step's timeout) and handle
        it; ``False`` when nothing is ahead."""
        ...

    def timeout(self, ms: int) -> AbstractAsyncContextManager[asyncio.Timeout]:
        """An ``asyncio.timeout`` that expires when this clock passes ``now() + ms``."""
        ...
