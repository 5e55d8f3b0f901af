"""The in-process trackers, and the emitter that stamps events for one instance."""

from __future__ import annotations

import logging
from typing import Any, TypeVar

from durably.domain.events import EventBase, WorkflowEvent, uuid7
from durably.domain.serialization import converter
from durably.ports import RuntimeAdapter, Tracker

__all__ = ["NoopTracker", "InMemoryTracker", "LoggingTracker", "EventEmitter", "BoundEmitter"]

E = TypeVar("E", bound=EventBase)


class NoopTracker:
    """Drops every event (the default)."""

    def emit(self, event: WorkflowEvent) -> None:
        """Drop the event."""

    async def flush(self) -> None:
        """Nothing to deliver."""

    def pending(self) -> int:
        """Always 0."""
        return 0

    async def close(self) -> None:
        """Nothing to release."""


class InMemoryTracker:
    """Keeps every event in a list (tests)."""

    def __init__(self) -> None:
        self.events: list[WorkflowEvent] = []

    def emit(self, event: WorkflowEvent) -> None:
        """Keep the event."""
        self.events.append(event)

    def of_type(self, event_type: str | type[E]) -> list[Any]:
        """The events of one ``type`` string (``"step.completed"``) or class."""
        if isinstance(event_type, str):
            return [e for e in self.events if e.type == event_type]
        return [e for e in self.events if isinstance(e, event_type)]

    def types(self) -> list[str]:
        """The ``type`` of every event, in order."""
        return [e.type for e in self.events]

    def clear(self) -> None:
        """Forget every event."""
        self.events.clear()

    async def flush(self) -> None:
        """Nothing to deliver."""

    def pending(self) -> int:
        """Always 0 (events are kept, not delivered)."""
        return 0

    async def close(self) -> None:
        """Nothing to release."""


class LoggingTracker:
    """Logs each event as one structured record of the standard ``logging`` module."""

    def __init__(self, logger: logging.Logger | None = None, level: int = logging.INFO) -> None:
        self.logger = logger if logger is not None else logging.getLogger("durably.events")
        self.level = level

    def emit(self, event: WorkflowEvent) -> None:
        """Log the event; its fields go in ``extra={"event": {...}}``."""
        if not self.logger.isEnabledFor(self.level):
            return
        data = converter.unstructure(event, WorkflowEvent)
        self.logger.log(
            self.level,
            "%s %s",
            event.type,
            event.workflow_id,
            extra={"event": data},
        )

    async def flush(self) -> None:
        """Logging is synchronous: nothing to deliver."""

    def pending(self) -> int:
        """Always 0."""
        return 0

    async def close(self) -> None:
        """Nothing to release."""


class EventEmitter:
    """Builds events for one instance (its id and clock) and hands them to the tracker.

    With a ``NoopTracker`` nothing is built at all: events cost nothing when unused.
    """

    def __init__(self, tracker: Tracker, runtime: RuntimeAdapter) -> None:
        self.tracker = tracker
        self._runtime = runtime
        self.enabled = not isinstance(tracker, NoopTracker)

    def bound(self, workflow_name: str, execution_id: str | None = None) -> BoundEmitter:
        """An emitter whose events name this workflow and execution id."""
        return BoundEmitter(self, workflow_name, execution_id)

    def emit(
        self, event_type: type[E], workflow_name: str, execution_id: str | None, **fields: Any
    ) -> None:
        """Build an event of ``event_type`` with ``fields`` and emit it; never raises."""
        if not self.enabled:
            return
        now = self._runtime.now()
        try:
            event = event_type(
                event_id=uuid7(now),
                timestamp=now,
                workflow_id=self._runtime.instance_id,
                workflow_name=workflow_name,
                execution_id=execution_id,
                **fields,
            )
            self.tracker.emit(event)  # type: ignore[arg-type]
        except Exception:  # a tracker must never fail a workflow
            logging.getLogger("durably").exception("tracker failed to take %s", event_type)


class BoundEmitter:
    """An ``EventEmitter`` with the workflow's name and execution id filled in."""

    __slots__ = ("_emitter", "enabled", "execution_id", "workflow_name")

    def __init__(self, emitter: EventEmitter, workflow_name: str, execution_id: str | None) -> None:
        self._emitter = emitter
        self.enabled = emitter.enabled
        self.workflow_name = workflow_name
        self.execution_id = execution_id

    def emit(self, event_type: type[E], **fields: Any) -> None:
        """Emit an event of ``event_type`` about the bound workflow."""
        if self.enabled:
            self._emitter.emit(event_type, self.workflow_name, self.execution_id, **fields)
