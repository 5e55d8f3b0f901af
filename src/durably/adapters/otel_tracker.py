"""``OtelTracker``: a workflow run as an OpenTelemetry trace (extra ``durably[otel]``).

The shape of a trace (one per workflow instance):

* **One trace per instance, whatever process runs it.** The trace id is derived from the
  workflow id (SHA-256), so the segments of a run executed by different workers, or
  before and after a restart, land in the same trace without storing anything.
* **One span per execution segment**, named ``workflow <name>``: opened at
  ``workflow.started`` / ``workflow.resumed`` / ``workflow.recovered`` and ended at
  ``workflow.completed`` / ``failed`` / ``cancelled`` / ``paused``. A durable run is
  usually several segments (a sleep or a retry's back-off pauses it), possibly months
  apart. Every segment is a child of the run's *virtual root*: a remote span context whose
  ids are derived from the workflow id too and which is never exported itself, so the
  segments are siblings at the top of the trace. A segment also *links* to the segment
  before it when this tracker saw that one end.
* **One child span per step attempt**, named ``step <step name>``: ``step.started`` to
  ``step.completed`` / ``step.failed`` (error status and an ``exception`` event).
* **Span events** on the segment: ``retry.scheduled``, ``retry.exhausted``,
  ``sleep.started``, ``sleep.completed``, ``step.cached`` (a completed step replayed from
  its stored result, which runs nothing); ``timeout.exceeded`` goes on the step's span.

Times are the events' timestamps (the runtime clock). An event whose segment is not open
here (the tracker was created mid-run, the process restarted, a paused run was cancelled)
never fails: a ``step.started`` opens a segment of its own (``workflow.segment=unknown``),
an outcome without its segment is recorded as an instant segment
(``workflow.segment=outcome``), and a span event without a span is dropped.
``workflow.queued`` and ``workflow.purged`` make no span. A segment still open when a
new one of the same instance begins, or when the tracker closes, is ended with
``status=interrupted``; a step span still open when its segment ends, ``abandoned``.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from typing import Final

try:
    from opentelemetry import trace
    from opentelemetry.context import Context
    from opentelemetry.trace import (
        Link,
        NonRecordingSpan,
        Span,
        SpanContext,
        Status,
        StatusCode,
        TraceFlags,
        Tracer,
        TracerProvider,
    )
    from opentelemetry.util.types import Attributes
except ImportError as e:  # pragma: no cover - depends on the installation
    raise ImportError("OtelTracker needs OpenTelemetry: pip install 'durably[otel]'") from e

from durably.adapters.otel_spans import (
    Segment,
    add_exception,
    error_text,
    error_type,
    ns,
    run_trace_ids,
)
from durably.domain.events import (
    EventBase,
    RetryExhausted,
    RetryScheduled,
    SleepCompleted,
    SleepStarted,
    StepCompleted,
    StepFailed,
    StepStarted,
    TimeoutExceeded,
    WorkflowCancelled,
    WorkflowCompleted,
    WorkflowEvent,
    WorkflowFailed,
    WorkflowPaused,
    WorkflowRecovered,
    WorkflowResumed,
    WorkflowStarted,
)

__all__ = ["OtelTracker", "run_trace_ids"]

log = logging.getLogger("durably.trackers.otel")

MAX_TRACKED: Final = 10_000
"""Open segments (and last segments, for links) kept at most; the oldest are ended first."""


class OtelTracker:
    """Turns events into spans of ``tracer_provider`` (the global provider when ``None``)."""

    def __init__(self, tracer_provider: TracerProvider | None = None) -> None:
        self._provider = tracer_provider
        self._tracer: Tracer = (
            tracer_provider.get_tracer("durably")
            if tracer_provider is not None
            else trace.get_tracer("durably")
        )
        self._open: OrderedDict[str, Segment] = OrderedDict()
        self._last: OrderedDict[str, SpanContext] = OrderedDict()

    # -- the Tracker protocol ------------------------------------------------------------

    def emit(self, event: WorkflowEvent) -> None:
        """Open, annotate or end spans for ``event``; never raises."""
        try:
            self._handle(event)
        except Exception:  # a tracker never fails a workflow
            log.exception("OtelTracker failed on %s", getattr(event, "type", event))

    async def flush(self) -> None:
        """Ask the provider (an SDK one) to export what its processors hold."""
        force_flush = getattr(self._provider, "force_flush", None)
        if force_flush is None:
            return
        try:
            await asyncio.to_thread(force_flush)
        except Exception:
            log.exception("OtelTracker failed to flush its tracer provider")

    def pending(self) -> int:
        """Always 0: ended spans belong to the provider's processors."""
        return 0

    async def close(self) -> None:
        """End the segments still open (``status=interrupted``), then flush.

        The provider is not shut down: it belongs to the caller.
        """
        for workflow_id in list(self._open):
            self._end_segment(workflow_id, "interrupted", None)
        await self.flush()

    # -- events ----------------------------------------------------------------------------

    def _handle(self, event: WorkflowEvent) -> None:
        match event:
            case WorkflowStarted():
                self._begin(event, "start", {})
            case WorkflowResumed():
                self._begin(event, "resume", {})
            case WorkflowRecovered(attempt=attempt, reason=reason):
                self._begin(
                    event, "recover", {"recovery.attempt": attempt, "recovery.reason": reason}
                )
            case WorkflowCompleted(duration_ms=duration_ms, completed_steps=steps):
                self._finish(
                    event,
                    "completed",
                    Status(StatusCode.OK),
                    {"workflow.duration_ms": duration_ms, "workflow.completed_steps": len(steps)},
                )
            case WorkflowFailed(error=error, completed_steps=steps):
                segment = self._finish_target(event)
                add_exception(segment.span, error, event)
                self._finish(
                    event,
                    "failed",
                    Status(StatusCode.ERROR, error_text(error)),
                    {"error.type": error_type(error), "workflow.completed_steps": len(steps)},
                )
            case WorkflowCancelled(reason=reason, completed_steps=steps):
                attributes: dict[str, str | int] = {"workflow.completed_steps": len(steps)}
                if reason is not None:
                    attributes["cancel.reason"] = reason
                self._finish(event, "cancelled", None, attributes)
            case WorkflowPaused(reason=reason, resume_at=resume_at, step_name=step_name):
                paused: dict[str, str | int] = {"pause.reason": reason}
                if resume_at is not None:
                    paused["pause.resume_at"] = resume_at
                if step_name is not None:
                    paused["step.name"] = step_name
                self._finish(event, "paused", None, paused)
            case StepStarted():
                self._step_started(event)
            case StepCompleted(cached=True):
                self._span_event(
                    event,
                    "step.cached",
                    {"step.name": event.step_name, "step.attempt": event.attempt},
                )
            case StepCompleted():
                self._step_completed(event)
            case StepFailed():
                self._step_failed(event)
            case TimeoutExceeded(step_name=step_name, timeout_ms=timeout_ms):
                open_segment = self._open.get(event.workflow_id)
                step = open_segment.steps.get(step_name) if open_segment else None
                attrs_: dict[str, str | int] = {"step.name": step_name, "timeout_ms": timeout_ms}
                if step is not None:
                    step.add_event("timeout.exceeded", attrs_, timestamp=ns(event))
                else:
                    self._span_event(event, "timeout.exceeded", attrs_)
            case RetryScheduled():
                self._span_event(
                    event,
                    "retry.scheduled",
                    {
                        "step.name": event.step_name,
                        "step.attempt": event.attempt,
                        "retry.delay_ms": event.delay_ms,
                        "retry.next_attempt_at": event.next_attempt_at,
                    },
                )
            case RetryExhausted():
                self._span_event(
                    event,
                    "retry.exhausted",
                    {"step.name": event.step_name, "retry.attempts": event.attempts},
                )
            case SleepStarted():
                self._span_event(
                    event,
                    "sleep.started",
                    {"sleep.duration_ms": event.duration_ms, "sleep.resume_at": event.resume_at},
                )
            case SleepCompleted():
                self._span_event(event, "sleep.completed", {"sleep.duration_ms": event.duration_ms})
            case _:  # workflow.queued, workflow.purged: no span
                return

    # -- segments --------------------------------------------------------------------------

    def _root_context(self, workflow_id: str) -> Context:
        trace_id, span_id = run_trace_ids(workflow_id)
        root = SpanContext(
            trace_id=trace_id,
            span_id=span_id,
            is_remote=True,
            trace_flags=TraceFlags(TraceFlags.SAMPLED),
        )
        return trace.set_span_in_context(NonRecordingSpan(root))

    def _common(self, event: EventBase) -> dict[str, str]:
        attributes = {"workflow.id": event.workflow_id, "workflow.name": event.workflow_name}
        if event.execution_id is not None:
            attributes["workflow.execution_id"] = event.execution_id
        return attributes

    def _begin(self, event: EventBase, kind: str, extra: dict[str, str | int]) -> Segment:
        workflow_id = event.workflow_id
        if workflow_id in self._open:  # its end was never seen (a crash in this process)
            self._end_segment(workflow_id, "interrupted", None, end_ns=ns(event))
        previous = self._last.get(workflow_id)
        links = [Link(previous, {"durably.link": "previous_segment"})] if previous else []
        span = self._tracer.start_span(
            f"workflow {event.workflow_name}",
            context=self._root_context(workflow_id),
            attributes={**self._common(event), "workflow.segment": kind, **extra},
            links=links,
            start_time=ns(event),
        )
        segment = Segment(span)
        self._open[workflow_id] = segment
        while len(self._open) > MAX_TRACKED:
            self._end_segment(next(iter(self._open)), "evicted", None)
        return segment

    def _finish_target(self, event: EventBase) -> Segment:
        """The open segment that ``event`` ends, or an instant one when none is open."""
        segment = self._open.get(event.workflow_id)
        if segment is None:
            segment = self._begin(event, "outcome", {})
        return segment

    def _finish(
        self,
        event: EventBase,
        outcome: str,
        status: Status | None,
        attributes: dict[str, str | int],
    ) -> None:
        segment = self._finish_target(event)
        segment.span.set_attributes(attributes)
        terminal = outcome != "paused"
        self._end_segment(event.workflow_id, outcome, status, end_ns=ns(event), terminal=terminal)

    def _end_segment(
        self,
        workflow_id: str,
        outcome: str,
        status: Status | None,
        *,
        end_ns: int | None = None,
        terminal: bool = False,
    ) -> None:
        segment = self._open.pop(workflow_id, None)
        if segment is None:
            return
        for step in segment.steps.values():
            step.set_attribute("status", "abandoned")
            step.end(end_time=end_ns)
        segment.span.set_attribute("status", outcome)
        if status is not None:
            segment.span.set_status(status)
        segment.span.end(end_time=end_ns)
        if terminal:
            self._last.pop(workflow_id, None)
        else:
            self._last[workflow_id] = segment.span.get_span_context()
            self._last.move_to_end(workflow_id)
            while len(self._last) > MAX_TRACKED:
                self._last.popitem(last=False)

    def _span_event(self, event: EventBase, name: str, attributes: Attributes) -> None:
        segment = self._open.get(event.workflow_id)
        if segment is None:
            log.debug("OtelTracker: no open segment for %s of %s", name, event.workflow_id)
            return
        segment.span.add_event(name, attributes, timestamp=ns(event))

    # -- steps -----------------------------------------------------------------------------

    def _step_started(self, event: StepStarted) -> None:
        segment = self._open.get(event.workflow_id)
        if segment is None:  # the tracker joined mid-segment: a segment of unknown start
            segment = self._begin(event, "unknown", {})
        stale = segment.steps.pop(event.step_name, None)
        if stale is not None:  # an attempt whose end was never seen
            stale.set_attribute("status", "abandoned")
            stale.end(end_time=ns(event))
        segment.steps[event.step_name] = self._tracer.start_span(
            f"step {event.step_name}",
            context=trace.set_span_in_context(segment.span),
            attributes={
                **self._common(event),
                "step.name": event.step_name,
                "step.attempt": event.attempt,
            },
            start_time=ns(event),
        )

    def _take_step(self, event: StepCompleted | StepFailed) -> Span | None:
        segment = self._open.get(event.workflow_id)
        if segment is None:
            return None
        return segment.steps.pop(event.step_name, None)

    def _step_completed(self, event: StepCompleted) -> None:
        span = self._take_step(event)
        if span is None:
            log.debug("OtelTracker: step.completed of %s without its span", event.step_name)
            return
        span.set_attributes({"status": "completed", "step.duration_ms": event.duration_ms})
        span.set_status(Status(StatusCode.OK))
        span.end(end_time=ns(event))

    def _step_failed(self, event: StepFailed) -> None:
        span = self._take_step(event)
        if span is None:
            self._span_event(
                event,
                "step.failed",
                {
                    "step.name": event.step_name,
                    "step.attempt": event.attempt,
                    "error.type": error_type(event.error),
                },
            )
            return
        add_exception(span, event.error, event)
        span.set_attributes(
            {
                "status": "failed",
                "step.will_retry": event.will_retry,
                "error.type": event.error.type,
            }
        )
        span.set_status(Status(StatusCode.ERROR, error_text(event.error)))
        span.end(end_time=ns(event))
