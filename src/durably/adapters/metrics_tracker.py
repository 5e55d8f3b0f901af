"""``MetricsTracker``: workflow and step metrics on the OpenTelemetry metrics API.

Instruments (meter ``durably``):

* counters ``durably.workflows.started`` / ``.completed`` / ``.failed`` / ``.cancelled``
  (attribute ``workflow.name``), one per run, whatever its number of segments;
* counter ``durably.steps.retries``: retries scheduled (``workflow.name``, ``step.name``);
* histogram ``durably.step.duration`` (ms): attempts that ran and completed
  (``workflow.name``, ``step.name``, ``status``); replays of a stored result ran nothing
  and are not recorded;
* observable gauge ``durably.queue.depth``: the due alarms waiting to be served, read
  from ``queue_depth()`` at each collection when it is given.

A step called in a loop has keys ``name``, ``name#2``, ...: the ``step.name`` attribute
drops the ``#n`` so that a loop does not make a series per iteration.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

try:
    from opentelemetry import metrics
    from opentelemetry.metrics import CallbackOptions, MeterProvider, Observation
except ImportError as e:  # pragma: no cover - depends on the installation
    raise ImportError("MetricsTracker needs OpenTelemetry: pip install 'durably[otel]'") from e

from durably.domain.events import (
    RetryScheduled,
    StepCompleted,
    WorkflowCancelled,
    WorkflowCompleted,
    WorkflowEvent,
    WorkflowFailed,
    WorkflowStarted,
)

__all__ = ["MetricsTracker"]

log = logging.getLogger("durably.trackers.metrics")


def _step_name(key: str) -> str:
    """The step's name without the ``#n`` of its repeated calls."""
    name, sep, count = key.rpartition("#")
    return name if sep and count.isdigit() else key


class MetricsTracker:
    """Counts events into instruments of ``meter_provider`` (the global one when ``None``)."""

    def __init__(
        self,
        meter_provider: MeterProvider | None = None,
        *,
        queue_depth: Callable[[], int] | None = None,
    ) -> None:
        self._provider = meter_provider
        meter = (
            meter_provider.get_meter("durably")
            if meter_provider is not None
            else metrics.get_meter("durably")
        )
        self._started = meter.create_counter(
            "durably.workflows.started", unit="{workflow}", description="Workflow runs started"
        )
        self._completed = meter.create_counter(
            "durably.workflows.completed", unit="{workflow}", description="Workflow runs completed"
        )
        self._failed = meter.create_counter(
            "durably.workflows.failed", unit="{workflow}", description="Workflow runs failed"
        )
        self._cancelled = meter.create_counter(
            "durably.workflows.cancelled", unit="{workflow}", description="Workflow runs cancelled"
        )
        self._retries = meter.create_counter(
            "durably.steps.retries", unit="{retry}", description="Step retries scheduled"
        )
        self._duration = meter.create_histogram(
            "durably.step.duration", unit="ms", description="Duration of completed step attempts"
        )
        self._queue_depth = queue_depth
        if queue_depth is not None:
            meter.create_observable_gauge(
                "durably.queue.depth",
                callbacks=[self._observe_queue_depth],
                unit="{alarm}",
                description="Due alarms waiting to be served (the queue depth)",
            )

    def _observe_queue_depth(self, _options: CallbackOptions) -> Iterable[Observation]:
        if self._queue_depth is None:  # pragma: no cover - registered only with a callback
            return []
        try:
            return [Observation(int(self._queue_depth()))]
        except Exception:
            log.exception("MetricsTracker: the queue_depth callback failed")
            return []

    # -- the Tracker protocol ------------------------------------------------------------

    def emit(self, event: WorkflowEvent) -> None:
        """Count the event; never raises."""
        try:
            self._record(event)
        except Exception:  # a tracker never fails a workflow
            log.exception("MetricsTracker failed on %s", getattr(event, "type", event))

    def _record(self, event: WorkflowEvent) -> None:
        workflow = {"workflow.name": event.workflow_name}
        match event:
            case WorkflowStarted():
                self._started.add(1, workflow)
            case WorkflowCompleted():
                self._completed.add(1, workflow)
            case WorkflowFailed():
                self._failed.add(1, workflow)
            case WorkflowCancelled():
                self._cancelled.add(1, workflow)
            case RetryScheduled(step_name=step_name):
                self._retries.add(1, {**workflow, "step.name": _step_name(step_name)})
            case StepCompleted(cached=False, step_name=step_name, duration_ms=duration_ms):
                self._duration.record(
                    duration_ms,
                    {**workflow, "step.name": _step_name(step_name), "status": "completed"},
                )
            case _:
                return

    async def flush(self) -> None:
        """Nothing buffered here: the provider's readers collect on their own schedule."""

    def pending(self) -> int:
        """Always 0."""
        return 0

    async def close(self) -> None:
        """Nothing to release (the provider belongs to the caller)."""
