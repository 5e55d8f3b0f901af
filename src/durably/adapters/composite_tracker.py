"""``CompositeTracker``: one tracker that hands every event to several."""

from __future__ import annotations

import asyncio
import logging

from durably.domain.events import WorkflowEvent
from durably.ports import Tracker

__all__ = ["CompositeTracker"]

log = logging.getLogger("durably.trackers")


class CompositeTracker:
    """Fans ``emit``, ``flush`` and ``close`` out to ``trackers``; one failing spoils none."""

    def __init__(self, *trackers: Tracker) -> None:
        self.trackers: tuple[Tracker, ...] = trackers

    def emit(self, event: WorkflowEvent) -> None:
        """Give the event to each tracker; never raises."""
        for tracker in self.trackers:
            try:
                tracker.emit(event)
            except Exception:  # a tracker never fails a workflow, nor the other trackers
                log.exception("tracker %r failed to take %s", tracker, event.type)

    async def flush(self) -> None:
        """Flush every tracker (concurrently)."""
        await self._each("flush")

    def pending(self) -> int:
        """The events waiting in all the trackers."""
        total = 0
        for tracker in self.trackers:
            try:
                total += tracker.pending()
            except Exception:
                log.exception("tracker %r failed to count its pending events", tracker)
        return total

    async def close(self) -> None:
        """Close every tracker (concurrently), even when one of them fails."""
        await self._each("close")

    async def _each(self, method: str) -> None:
        results = await asyncio.gather(
            *(getattr(tracker, method)() for tracker in self.trackers), return_exceptions=True
        )
        for tracker, result in zip(self.trackers, results, strict=True):
            if isinstance(result, BaseException):
                if isinstance(result, asyncio.CancelledError):
                    raise result
                log.error("tracker %r failed to %s", tracker, method, exc_info=result)
