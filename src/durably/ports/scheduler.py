"""The scheduler port: one instance's single alarm slot."""

from __future__ import annotations

from typing import Protocol

from returns.result import Result

from durably.domain.errors import SchedulerError

__all__ = ["SchedulerAdapter"]


class SchedulerAdapter(Protocol):
    """Sets, clears and reads the one alarm of an instance (times in epoch ms).

    Inside a storage transaction of the same runtime, changes join that transaction.
    """

    async def schedule(self, at: int) -> Result[None, SchedulerError]:
        """Set the alarm to ``at``, replacing any alarm already set."""
        ...

    async def cancel(self) -> Result[None, SchedulerError]:
        """Clear the alarm (a no-op when none is set)."""
        ...

    async def get_scheduled(self) -> Result[int | None, SchedulerError]:
        """When the alarm is set for, or ``None``."""
        ...
