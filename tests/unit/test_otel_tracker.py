"""``OtelTracker``: a traced run read back from the SDK's ``InMemorySpanExporter``.

The trace of an instance: its id derived from the workflow id; one ``workflow <name>``
span per execution segment, each a child of the run's virtual root and linked to the
segment before it; one ``step <name>`` span per attempt under its segment; retries,
sleeps, cached replays and timeouts as span events.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

import durably
from durably import Retry
from durably.adapters.otel_tracker import OtelTracker, run_trace_ids
from durably.containers import build_root
from durably.domain.events import (
    SleepCompleted,
    StepCompleted,
    StepFailed,
    TimeoutExceeded,
    WorkflowCompleted,
    WorkflowPaused,
)
from durably.domain.status import WorkflowError
from durably.status import Completed, Failed, Paused
from durably.testing import create_in_memory_runtime
from tests.support.harness import Harness

pytestmark = pytest.mark.timeout(10)

T0 = 1_000_000
NS = 1_000_000  # ns per ms


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> TracerProvider:
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    return tracer_provider


def checkout_workflow() -> durably.WorkflowDefinition[Any, Any]:
    """Three steps; ``charge`` fails once and is retried after 2 s; a 5 s sleep before ``ship``."""
    calls: list[int] = []

    def charge() -> str:
        calls.append(1)
        if len(calls) == 1:
            raise ConnectionError("card network down")
        return "charged"

    @durably.workflow(name="checkout")
    async def checkout(order: str) -> str:
        await durably.step("reserve", lambda: f"reserved {order}")
        await durably.step("charge", charge, retry=Retry(max_attempts=3, delay="2s", jitter=False))
        await durably.sleep("5s")
        await durably.step("ship", lambda: "shipped")
        return "done"

    return checkout


def by_name(spans: tuple[ReadableSpan, ...] | list[ReadableSpan], name: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name == name]


def event_names(span: ReadableSpan) -> list[str]:
    return [e.name for e in span.events]


def parent_id(span: ReadableSpan) -> int:
    assert span.parent is not None, span.name
    return span.parent.span_id


async def run_checkout(tracker: OtelTracker) -> Harness:
    h = Harness(create_in_memory_runtime("wf-checkout", T0), checkout_workflow(), tracker=tracker)
    started = await h.start("order-7", execution_id="exec-1")
    assert isinstance(started.status, Paused)  # the retry's back-off
    assert isinstance(await h.resume(), Paused)  # the sleep
    assert isinstance(await h.resume(), Completed)
    return h


async def test_a_traced_run_with_a_retry_and_a_sleep(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    await run_checkout(OtelTracker(provider))
    spans = exporter.get_finished_spans()
    trace_id, root_id = run_trace_ids("wf-checkout")
    assert {s.context.trace_id for s in spans} == {trace_id}  # one trace for the whole run

    # Three segments: start (until the retry's pause), resume (until the sleep), resume.
    segments = sorted(by_name(spans, "workflow checkout"), key=lambda s: s.start_time or 0)
    assert [s.attributes["workflow.segment"] for s in segments if s.attributes] == [
        "start",
        "resume",
        "resume",
    ]
    assert [s.attributes["status"] for s in segments if s.attributes] == [
        "paused",
        "paused",
        "completed",
    ]
    assert all(parent_id(s) == root_id for s in segments)  # siblings under the virtual root
    assert all(s.parent is not None and s.parent.is_remote for s in segments)
    assert [s.status.status_code for s in segments] == [
        StatusCode.UNSET,
        StatusCode.UNSET,
        StatusCode.OK,
    ]
    first, second, third = segments
    assert first.attributes is not None
    assert second.attributes is not None
    assert (first.attributes["workflow.id"], first.attributes["workflow.name"]) == (
        "wf-checkout",
        "checkout",
    )
    assert first.attributes["workflow.execution_id"] == "exec-1"
    assert (first.attributes["pause.reason"], first.attributes["pause.resume_at"]) == (
        "retry",
        T0 + 2_000,
    )
    assert second.attributes["pause.reason"] == "sleep"
    # Each later segment links to the one before it.
    assert [link.context.span_id for link in second.links] == [first.context.span_id]
    assert [link.context.span_id for link in third.links] == [second.context.span_id]
    assert list(first.links) == []
    # Times are the runtime clock's.
    assert (first.start_time, first.end_time) == (T0 * NS, T0 * NS)
    assert (second.start_time, third.start_time) == ((T0 + 2_000) * NS, (T0 + 7_000) * NS)

    # One span per step attempt, under the segment that ran it.
    steps = [s for s in spans if s.name.startswith("step ")]
    described = sorted(
        (
            s.name,
            s.attributes["step.attempt"] if s.attributes else None,
            s.attributes["status"] if s.attributes else None,
            segments.index(next(g for g in segments if g.context.span_id == parent_id(s))),
        )
        for s in steps
    )
    assert described == [
        ("step charge", 1, "failed", 0),
        ("step charge", 2, "completed", 1),
        ("step reserve", 1, "completed", 0),
        ("step ship", 1, "completed", 2),
    ]
    for step in steps:
        assert step.context.trace_id == trace_id
        assert step.attributes is not None
        assert step.attributes["workflow.id"] == "wf-checkout"
        assert step.attributes["workflow.name"] == "checkout"
        assert step.attributes["step.name"] == step.name.removeprefix("step ")

    (failed_attempt,) = [s for s in steps if s.attributes and s.attributes["status"] == "failed"]
    assert failed_attempt.status.status_code is StatusCode.ERROR
    assert failed_attempt.status.description == "ConnectionError: card network down"
    assert failed_attempt.attributes is not None
    assert failed_attempt.attributes["step.will_retry"] is True
    (exception,) = failed_attempt.events
    assert exception.name == "exception"
    assert exception.attributes is not None
    assert exception.attributes["exception.type"] == "ConnectionError"
    for ok in (s for s in steps if s is not failed_attempt):
        assert ok.status.status_code is StatusCode.OK

    # Span events: the retry on the first segment, the sleep across the next two, replays.
    assert event_names(first) == ["retry.scheduled"]
    (retry,) = first.events
    assert retry.attributes is not None
    assert (retry.attributes["step.name"], retry.attributes["step.attempt"]) == ("charge", 2)
    assert retry.attributes["retry.delay_ms"] == 2_000
    assert event_names(second) == ["step.cached", "sleep.started"]
    assert event_names(third) == ["step.cached", "step.cached", "sleep.completed"]
    sleep_started = second.events[1]
    assert sleep_started.attributes is not None
    assert sleep_started.attributes["sleep.duration_ms"] == 5_000


async def test_segments_run_by_two_processes_share_the_trace(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    # Each "process" has its own tracker; the retry's resume runs in the second one.
    h = Harness(
        create_in_memory_runtime("wf-split", T0), checkout_workflow(), tracker=OtelTracker(provider)
    )
    await h.start("order-7", execution_id="exec-1")
    other = OtelTracker(provider)
    await h.resume(tracker=other)
    await h.resume(tracker=other)
    spans = exporter.get_finished_spans()
    trace_id, root_id = run_trace_ids("wf-split")
    assert {s.context.trace_id for s in spans} == {trace_id}
    segments = by_name(spans, "workflow checkout")
    assert len(segments) == 3
    assert all(parent_id(s) == root_id for s in segments)
    # The second process never saw the first segment end: no link to it, and no crash.
    resumed = sorted(segments, key=lambda s: s.start_time or 0)[1]
    assert list(resumed.links) == []


async def test_a_failed_run_has_an_error_status(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    def broken() -> None:
        raise ValueError("bad input")

    @durably.workflow(name="fragile")
    async def fragile(_: Any) -> None:
        await durably.step("ok", lambda: 1)
        await durably.step("boom", broken)

    h = Harness(create_in_memory_runtime("wf-fail", T0), fragile, tracker=OtelTracker(provider))
    await h.start("order-7", execution_id="exec-1")
    assert isinstance(await h.status(), Failed)
    spans = exporter.get_finished_spans()
    (segment,) = by_name(spans, "workflow fragile")
    assert segment.status.status_code is StatusCode.ERROR
    assert segment.status.description == "ValueError: bad input"
    assert segment.attributes is not None
    assert segment.attributes["status"] == "failed"
    assert "exception" in event_names(segment)
    (boom,) = by_name(spans, "step boom")
    assert boom.status.status_code is StatusCode.ERROR
    assert boom.attributes is not None
    assert boom.attributes["step.will_retry"] is False
    assert parent_id(boom) == segment.context.span_id


async def test_a_timeout_is_an_event_of_the_step_span(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    async def slow() -> str:
        await asyncio.sleep(5)
        return "late"

    @durably.workflow(name="slowpoke")
    async def slowpoke(_: Any) -> None:
        await durably.step("slow", slow, timeout="20ms")

    h = Harness(create_in_memory_runtime("wf-timeout", T0), slowpoke, tracker=OtelTracker(provider))
    await h.start("order-7", execution_id="exec-1")
    (step,) = by_name(exporter.get_finished_spans(), "step slow")
    assert event_names(step) == ["timeout.exceeded", "exception"]
    assert step.events[0].attributes is not None
    assert step.events[0].attributes["timeout_ms"] == 20
    assert step.status.status_code is StatusCode.ERROR


async def test_cancelling_a_paused_run_records_an_outcome_segment(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    tracker = OtelTracker(provider)
    h = Harness(create_in_memory_runtime("wf-cancel", T0), checkout_workflow(), tracker=tracker)
    await h.start("order-7", execution_id="exec-1")  # paused for the retry: no segment is open
    h.handle.set_time(T0 + 500)
    (await h.orchestrator().cancel(reason="customer left")).unwrap()
    segments = by_name(exporter.get_finished_spans(), "workflow checkout")
    assert len(segments) == 2
    outcome = max(segments, key=lambda s: s.start_time or 0)
    assert outcome.attributes is not None
    assert outcome.attributes["workflow.segment"] == "outcome"
    assert (outcome.attributes["status"], outcome.attributes["cancel.reason"]) == (
        "cancelled",
        "customer left",
    )
    assert outcome.start_time == outcome.end_time == (T0 + 500) * NS
    assert parent_id(outcome) == run_trace_ids("wf-cancel")[1]


def make(event_type: Any, **fields: Any) -> Any:
    common = {"event_id": "e", "timestamp": 5, "workflow_id": "ghost", "workflow_name": "w"}
    return event_type(**common, **fields)


async def test_events_whose_span_is_not_open_do_not_crash(
    provider: TracerProvider, exporter: InMemorySpanExporter, caplog: pytest.LogCaptureFixture
) -> None:
    tracker = OtelTracker(provider)
    error = WorkflowError(message="x", type="KeyError")
    # A tracker that starts mid-run (say after a restart) sees ends without beginnings.
    tracker.emit(make(StepCompleted, step_name="a", attempt=1, duration_ms=3))
    tracker.emit(make(StepFailed, step_name="b", attempt=2, error=error, will_retry=True))
    tracker.emit(make(TimeoutExceeded, step_name="b", timeout_ms=10))
    tracker.emit(make(SleepCompleted, duration_ms=10))
    assert exporter.get_finished_spans() == ()
    tracker.emit(make(WorkflowPaused, reason="sleep", resume_at=99))
    tracker.emit(make(WorkflowCompleted))
    spans = exporter.get_finished_spans()
    assert [s.attributes["status"] for s in spans if s.attributes] == ["paused", "completed"]
    assert not [r for r in caplog.records if r.name.startswith("durably.trackers")]
    await tracker.close()


async def test_close_ends_the_open_segments_as_interrupted(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    gate, inside = asyncio.Event(), asyncio.Event()
    tracker = OtelTracker(provider)

    async def wait_for_gate() -> str:
        inside.set()
        await gate.wait()
        return "through"

    @durably.workflow(name="gated")
    async def gated(_: Any) -> str:
        return await durably.step("wait", wait_for_gate)

    h = Harness(create_in_memory_runtime("wf-gated", T0), gated, tracker=tracker)
    run = asyncio.create_task(h.start("order-7", execution_id="exec-1"))
    await inside.wait()  # the segment and the step's span are open
    await tracker.close()
    spans = exporter.get_finished_spans()
    assert {(s.name, s.attributes["status"] if s.attributes else None) for s in spans} == {
        ("workflow gated", "interrupted"),
        ("step wait", "abandoned"),
    }
    gate.set()
    assert isinstance((await run).status, Completed)
    # The end after the close has no segment to end: it is recorded as an outcome.
    outcome = by_name(exporter.get_finished_spans(), "workflow gated")[-1]
    assert outcome.attributes is not None
    assert (outcome.attributes["workflow.segment"], outcome.attributes["status"]) == (
        "outcome",
        "completed",
    )


def test_the_otel_profile_builds_an_otel_tracker() -> None:
    container = build_root([], {"backend": {"url": "memory://"}, "tracker": {"kind": "otel"}})
    assert isinstance(container.tracker(), OtelTracker)
