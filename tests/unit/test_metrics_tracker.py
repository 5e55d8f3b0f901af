"""``MetricsTracker`` read back through the SDK's ``InMemoryMetricReader``; ``CompositeTracker``."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    Gauge,
    Histogram,
    HistogramDataPoint,
    InMemoryMetricReader,
    NumberDataPoint,
    Sum,
)

import durably
from durably import Retry
from durably.adapters.composite_tracker import CompositeTracker
from durably.adapters.metrics_tracker import MetricsTracker
from durably.domain.events import WorkflowEvent
from durably.status import Completed
from durably.testing import create_in_memory_runtime
from durably.trackers import InMemoryTracker
from tests.support.harness import Harness

pytestmark = pytest.mark.timeout(10)

T0 = 1_000


def points(reader: InMemoryMetricReader, name: str) -> list[Any]:
    """The data points of metric ``name`` (none when it was never recorded)."""
    data = reader.get_metrics_data()
    if data is None:
        return []
    found: list[Any] = []
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                if metric.name == name:
                    assert isinstance(metric.data, Sum | Histogram | Gauge)
                    found.extend(metric.data.data_points)
    return found


def total(reader: InMemoryMetricReader, name: str) -> int:
    values = []
    for point in points(reader, name):
        assert isinstance(point, NumberDataPoint)
        values.append(int(point.value))
    return sum(values)


def checkout() -> durably.WorkflowDefinition[Any, Any]:
    calls: list[int] = []

    def charge() -> str:
        calls.append(1)
        if len(calls) <= 2:
            raise ConnectionError("declined")
        return "ok"

    @durably.workflow(name="checkout")
    async def body(_: Any) -> str:
        for _item in range(2):
            await durably.step("pick", lambda: "picked")  # keys pick, pick#2
        await durably.step("charge", charge, retry=Retry(max_attempts=5, delay="1s", jitter=False))
        await durably.sleep("1s")
        return "done"

    return body


def broken() -> durably.WorkflowDefinition[Any, Any]:
    def fail() -> None:
        raise ValueError("no")

    @durably.workflow(name="broken")
    async def body(_: Any) -> None:
        await durably.step("fail", fail)

    return body


@pytest.fixture
def reader() -> InMemoryMetricReader:
    return InMemoryMetricReader()


@pytest.fixture
def provider(reader: InMemoryMetricReader) -> MeterProvider:
    return MeterProvider(metric_readers=[reader])


async def test_workflow_counters_retries_and_step_durations(
    provider: MeterProvider, reader: InMemoryMetricReader
) -> None:
    tracker = MetricsTracker(provider)
    for n in range(2):
        h = Harness(create_in_memory_runtime(f"ok-{n}", T0), checkout(), tracker=tracker)
        await h.start()
        assert isinstance(await h.resume_until_done(), Completed)
    await Harness(create_in_memory_runtime("bad", T0), broken(), tracker=tracker).start()
    paused = Harness(create_in_memory_runtime("cancel-me", T0), checkout(), tracker=tracker)
    await paused.start()
    (await paused.orchestrator().cancel(reason="stop")).unwrap()

    assert total(reader, "durably.workflows.started") == 4  # resumes are not new starts
    assert total(reader, "durably.workflows.completed") == 2
    assert total(reader, "durably.workflows.failed") == 1
    assert total(reader, "durably.workflows.cancelled") == 1
    # Two per finished checkout; the cancelled one was cancelled in its first back-off.
    assert total(reader, "durably.steps.retries") == 2 * 2 + 1
    (retries,) = points(reader, "durably.steps.retries")
    assert dict(retries.attributes) == {"workflow.name": "checkout", "step.name": "charge"}

    started = {
        dict(p.attributes or {})["workflow.name"]: p.value
        for p in points(reader, "durably.workflows.started")
    }
    assert started == {"checkout": 3, "broken": 1}

    # Attempts that ran and completed: pick, pick#2 and charge per finished checkout, and
    # the two picks of the cancelled one. Replays of stored results are not counted.
    histograms = points(reader, "durably.step.duration")
    by_step: dict[str, int] = {}
    for point in histograms:
        assert isinstance(point, HistogramDataPoint)
        attributes = dict(point.attributes or {})
        assert attributes["status"] == "completed"
        by_step[str(attributes["step.name"])] = point.count
    assert by_step == {"pick": 2 * 2 + 2, "charge": 2}  # "pick#2" counts as "pick"


async def test_queue_depth_gauge_reads_the_callback(
    provider: MeterProvider, reader: InMemoryMetricReader
) -> None:
    depth = [7]
    MetricsTracker(provider, queue_depth=lambda: depth[0])
    assert [p.value for p in points(reader, "durably.queue.depth")] == [7]
    depth[0] = 3
    assert [p.value for p in points(reader, "durably.queue.depth")] == [3]


async def test_a_failing_queue_depth_callback_is_logged_not_raised(
    provider: MeterProvider, reader: InMemoryMetricReader, caplog: pytest.LogCaptureFixture
) -> None:
    def broken_depth() -> int:
        raise RuntimeError("backend gone")

    MetricsTracker(provider, queue_depth=broken_depth)
    with caplog.at_level(logging.ERROR, logger="durably.trackers.metrics"):
        assert points(reader, "durably.queue.depth") == []
    assert any("queue_depth callback failed" in r.message for r in caplog.records)


async def test_no_queue_depth_callback_no_gauge(
    provider: MeterProvider, reader: InMemoryMetricReader
) -> None:
    tracker = MetricsTracker(provider)
    await Harness(create_in_memory_runtime("bad", T0), broken(), tracker=tracker).start()
    assert total(reader, "durably.workflows.failed") == 1
    assert points(reader, "durably.queue.depth") == []


# -- CompositeTracker ------------------------------------------------------------------


class Broken(InMemoryTracker):
    """A tracker failing at everything."""

    def emit(self, event: WorkflowEvent) -> None:
        raise RuntimeError("emit down")

    async def flush(self) -> None:
        raise RuntimeError("flush down")

    def pending(self) -> int:
        raise RuntimeError("pending down")

    async def close(self) -> None:
        raise RuntimeError("close down")


class Counting(InMemoryTracker):
    def __init__(self) -> None:
        super().__init__()
        self.flushed = 0
        self.closed = 0

    async def flush(self) -> None:
        self.flushed += 1

    def pending(self) -> int:
        return 2

    async def close(self) -> None:
        self.closed += 1


async def test_composite_fans_out_and_one_failing_tracker_spoils_none(
    provider: MeterProvider, reader: InMemoryMetricReader, caplog: pytest.LogCaptureFixture
) -> None:
    first, last = Counting(), Counting()
    composite = CompositeTracker(first, Broken(), MetricsTracker(provider), last)
    with caplog.at_level(logging.ERROR, logger="durably.trackers"):
        h = Harness(create_in_memory_runtime("c-1", T0), checkout(), tracker=composite)
        await h.start()
        assert isinstance(await h.resume_until_done(), Completed)
        assert composite.pending() == 4  # 2 + 2 (+ 0 for the metrics; the broken one logged)
        await composite.flush()
        await composite.close()
    assert first.types() == last.types()
    assert first.types()[0] == "workflow.started"
    assert first.types()[-1] == "workflow.completed"
    assert total(reader, "durably.workflows.completed") == 1
    assert (first.flushed, first.closed, last.flushed, last.closed) == (1, 1, 1, 1)
    messages = [r.getMessage() for r in caplog.records]
    assert any("failed to take workflow.started" in m for m in messages)
    assert any("failed to flush" in m for m in messages)
    assert any("failed to close" in m for m in messages)
    assert any("failed to count" in m for m in messages)
