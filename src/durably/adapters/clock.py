"""Clocks and the runtime adapter every backend shares: an instance id and a clock."""

from __future__ import annotations

import time
from typing import Protocol

import attrs

__all__ = ["Clock", "ManualClock", "SystemClock", "ClockRuntime"]


class Clock(Protocol):
    """Anything with ``now() -> int`` (epoch ms)."""

    def now(self) -> int:
        """The current time in epoch milliseconds."""
        ...


@attrs.define
class ManualClock:
    """A clock that moves only when told to (tests)."""

    time_ms: int = 0

    def now(self) -> int:
        """The clock's current time."""
        return self.time_ms


class SystemClock:
    """The machine's wall clock."""

    def now(self) -> int:
        """The current wall-clock time in epoch ms."""
        return time.time_ns() // 1_000_000


@attrs.frozen
class ClockRuntime:
    """``RuntimeAdapter``: an instance id and a clock."""

    instance_id: str
    clock: Clock

    def now(self) -> int:
        """The clock's time."""
        return self.clock.now()
