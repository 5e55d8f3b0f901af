"""The tracker port: where events go after the commit that they describe."""

from __future__ import annotations

from typing import Protocol

from durably.domain.events import WorkflowEvent

__all__ = ["Tracker"]


class Tracker(Protocol):
    """Receives events; must never block or fail a workflow."""

    def emit(self, event: WorkflowEvent) -> None:
        """Accept one event (non-blocking)."""
        ...

    async def flush(self) -> None:
        """Deliver what is buffered."""
        ...

    def pending(self) -> int:
        """How many events wait for delivery."""
        ...

    async def close(self) -> None:
        """Flush and release resources."""
        ...
