"""``HttpBatchTracker`` against a real HTTP server on 127.0.0.1 (semantics.md section 9).

The server (``collector.py``) answers as each test chooses. Nothing asserts a wall-clock
duration: waits poll a condition under a generous limit, and "never blocks" is shown by
counting.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest

from durably.adapters.composite_tracker import CompositeTracker
from durably.adapters.http_tracker import HttpBatchTracker
from durably.containers import build_root
from durably.domain.events import WorkflowEvent
from durably.domain.serialization import converter
from durably.engine import Engine
from durably.trackers import InMemoryTracker
from tests.integration.collector import (
    HTTP_LOGGER,
    CollectorServer,
    event,
    expected_ids,
    free_port,
    ids,
    shop_workflow,
    tracker_for,
    until,
)

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def server() -> AsyncIterator[CollectorServer]:
    collector = await CollectorServer().start()
    yield collector
    await collector.stop()


# -- the endpoint answers OK -----------------------------------------------------------


async def test_ok_every_event_delivered_in_order_in_bounded_batches(
    server: CollectorServer,
) -> None:
    headers = {"Authorization": "Bearer token-1", "X-Tenant": "acme"}
    tracker = tracker_for(server.url, headers=headers, batch_size=40)
    for i in range(250):
        tracker.emit(event(i))
        if i % 7 == 0:
            await asyncio.sleep(0)  # let the sender run between emits
    await tracker.flush()
    assert tracker.pending() == 0

    assert ids(server.events()) == expected_ids(range(250))  # in order, none lost, no dupes
    assert all(len(r.events()) <= 40 for r in server.requests)
    assert len(server.requests) >= 250 // 40 + 1
    for request in server.requests:
        assert (request.method, request.path) == ("POST", "/v1/events")
        assert request.headers["authorization"] == "Bearer token-1"
        assert request.headers["x-tenant"] == "acme"
        assert request.headers["content-type"] == "application/json"
    for sent in server.events():
        assert (sent["env"], sent["service_key"]) == ("staging", "svc-42")
    first = server.events()[0]
    expected = converter.unstructure(event(0), WorkflowEvent)
    assert first == {**expected, "env": "staging", "service_key": "svc-42"}
    assert first["type"] == "step.started"
    assert (tracker.delivered, tracker.dropped, tracker.failed) == (250, 0, 0)
    await tracker.close()


async def test_a_full_batch_is_sent_without_a_flush(server: CollectorServer) -> None:
    tracker = tracker_for(server.url, batch_size=10)
    for i in range(25):
        tracker.emit(event(i))
    await until(lambda: tracker.delivered >= 20)
    # Two full batches went by themselves; the 5 left wait for the interval (1 h) or a flush.
    assert [len(r.events()) for r in server.accepted] == [10, 10]
    assert tracker.pending() == 5
    await tracker.flush()
    assert ids(server.events()) == expected_ids(range(25))
    await tracker.close()


async def test_the_timer_flushes_without_an_explicit_flush(server: CollectorServer) -> None:
    tracker = tracker_for(server.url, batch_size=100, flush_interval="100ms")
    for i in range(3):
        tracker.emit(event(i))
    assert server.requests == []  # 3 < batch_size: nothing goes before the timer fires
    await until(lambda: tracker.delivered == 3)
    assert ids(server.events()) == expected_ids(range(3))
    assert tracker.pending() == 0
    await tracker.close()


async def test_close_flushes_and_stops_then_a_later_emit_starts_over(
    server: CollectorServer,
) -> None:
    tracker = tracker_for(server.url, batch_size=100)
    for i in range(7):
        tracker.emit(event(i))
    assert tracker.pending() == 7
    await tracker.close()
    assert ids(server.events()) == expected_ids(range(7))
    assert tracker.pending() == 0
    # The engine may be opened again: the tracker takes events after close too.
    tracker.emit(event(7))
    await tracker.close()
    assert ids(server.events()) == expected_ids(range(8))


async def test_emit_without_a_running_loop_buffers_until_flush(server: CollectorServer) -> None:
    tracker = tracker_for(server.url, batch_size=2)

    def emit_outside_the_loop() -> None:
        for i in range(5):
            tracker.emit(event(i))  # no loop in this thread: nothing can be sent yet

    await asyncio.to_thread(emit_outside_the_loop)
    assert tracker.pending() == 5
    await tracker.flush()
    assert ids(server.events()) == expected_ids(range(5))
    await tracker.close()


# -- the endpoint fails, then recovers --------------------------------------------------


@pytest.mark.parametrize("status", [500, 503, 429])
async def test_retryable_answers_are_retried_until_delivered(
    server: CollectorServer, status: int
) -> None:
    server.statuses = [status] * 3
    tracker = tracker_for(server.url, batch_size=10, max_retries=5)
    for i in range(25):
        tracker.emit(event(i))
    await tracker.flush()
    # A batch answered 5xx/429 was not taken: its retry is its only delivery.
    assert ids(server.events()) == expected_ids(range(25))
    assert [r.status for r in server.requests] == [status] * 3 + [200] * 3
    assert tracker.attempts == 6
    assert (tracker.delivered, tracker.failed) == (25, 0)
    await tracker.close()


async def test_a_batch_still_failing_after_its_retries_is_given_up(
    server: CollectorServer, caplog: pytest.LogCaptureFixture
) -> None:
    server.statuses = [500] * 3
    tracker = tracker_for(server.url, batch_size=10, max_retries=2)
    for i in range(15):
        tracker.emit(event(i))
    with caplog.at_level(logging.ERROR, logger=HTTP_LOGGER):
        await tracker.flush()
    # The first batch: 1 attempt + 2 retries, all 500, then given up; the second goes through.
    assert [r.status for r in server.requests] == [500, 500, 500, 200]
    assert ids(server.events()) == expected_ids(range(10, 15))
    assert (tracker.failed, tracker.delivered) == (10, 5)
    assert any("gave up a batch of 10 events after 3 attempts" in r.message for r in caplog.records)
    await tracker.close()


async def test_a_client_error_drops_the_batch_without_retrying(
    server: CollectorServer, caplog: pytest.LogCaptureFixture
) -> None:
    server.statuses = [400]
    tracker = tracker_for(server.url, batch_size=10, max_retries=5)
    for i in range(20):
        tracker.emit(event(i))
    with caplog.at_level(logging.ERROR, logger=HTTP_LOGGER):
        await tracker.flush()
    assert [r.status for r in server.requests] == [400, 200]  # not retried
    assert ids(server.events()) == expected_ids(range(10, 20))
    assert (tracker.failed, tracker.delivered) == (10, 10)
    errors = [r.message for r in caplog.records if r.levelno == logging.ERROR]
    assert any("dropped a batch of 10 events" in m and "400" in m for m in errors)
    await tracker.close()


# -- the endpoint is slow ---------------------------------------------------------------


async def test_a_slow_endpoint_loses_nothing_and_emit_does_not_wait_for_it(
    server: CollectorServer,
) -> None:
    server.delay = 0.3
    tracker = tracker_for(server.url, batch_size=50, max_buffer=1_000)
    for i in range(200):
        tracker.emit(event(i))
        await asyncio.sleep(0)  # the sender runs, and waits on the slow server
    # Every emit has returned while the collector has answered at most one batch of four.
    assert len(server.accepted) <= 1
    assert tracker.pending() + tracker.delivered == 200
    await tracker.flush()
    assert ids(server.events()) == expected_ids(range(200))
    assert (tracker.dropped, tracker.failed) == (0, 0)
    await tracker.close()


# -- the endpoint is down ---------------------------------------------------------------


async def test_down_buffer_is_bounded_and_drops_the_oldest(
    caplog: pytest.LogCaptureFixture,
) -> None:
    port = free_port()
    collector = CollectorServer()
    tracker = tracker_for(
        f"http://127.0.0.1:{port}/v1/events", batch_size=10, max_buffer=100, max_retries=200
    )
    with caplog.at_level(logging.WARNING, logger=HTTP_LOGGER):
        for i in range(5_000):
            tracker.emit(event(i))  # never raises
    # All 5000 emits returned before the sender tried a single POST: emit does no I/O.
    assert tracker.attempts == 0
    assert tracker.pending() == 100
    assert tracker.dropped == 4_900
    warnings = [r.message for r in caplog.records if r.levelno == logging.WARNING]
    # One warning at each power of two (1, 2, 4 ... 4096 drops), each with the count.
    assert len(warnings) == 13
    assert "4096 dropped so far" in warnings[-1]
    assert "max_buffer=100" in warnings[-1]

    # The collector comes up on that port: what reaches it is the newest 100, in order.
    await collector.start(port)
    try:
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger=HTTP_LOGGER):
            await tracker.close()
        assert ids(collector.events()) == expected_ids(range(4_900, 5_000))
        assert any("4900 dropped so far" in r.message for r in caplog.records)
    finally:
        await collector.stop()


async def test_down_endpoint_never_fails_emit_and_accounts_for_every_event(
    caplog: pytest.LogCaptureFixture,
) -> None:
    url = f"http://127.0.0.1:{free_port()}/v1/events"
    tracker = tracker_for(url, batch_size=10, max_buffer=50, max_retries=1)
    emitted = 0
    with caplog.at_level(logging.WARNING, logger=HTTP_LOGGER):
        for _burst in range(20):
            before = tracker.attempts
            for _ in range(30):
                tracker.emit(event(emitted))
                emitted += 1
            assert tracker.attempts == before  # a burst of emits tried no POST itself
            assert tracker.pending() <= 50 + 10  # the buffer, plus one batch in flight
            await asyncio.sleep(0.005)  # the sender fails against the closed port meanwhile
        await until(lambda: tracker.failed > 0)
        await tracker.close()
    assert tracker.attempts > 0
    assert tracker.delivered == 0
    assert tracker.pending() == 0
    # Each event was dropped from the full buffer or given up after its retries: none vanished.
    assert tracker.dropped + tracker.failed == emitted
    assert tracker.dropped > 0
    messages = [r.message for r in caplog.records]
    assert any("gave up a batch" in m for m in messages)
    assert any(f"{tracker.dropped} dropped so far" in m for m in messages)


# -- end to end: an engine whose tracker posts to the collector ----------------------


async def test_engine_delivers_every_event_by_close(server: CollectorServer) -> None:
    tracker = tracker_for(server.url, batch_size=3)
    engine = Engine([shop_workflow()], backend="memory://", tracker=tracker)
    await engine.open()
    for n in range(2):
        started = (await engine.start("shop", f"o{n}", id=f"shop-{n}")).unwrap()
        assert started.output == f"reserved o{n}, charged, shipped"
    await engine.close()

    events = server.events()
    per_run = [
        "workflow.started",
        "step.started",
        "step.completed",
        "step.started",
        "step.completed",
        "step.started",
        "step.completed",
        "workflow.completed",
    ]
    for n in range(2):
        mine = [e for e in events if e["workflow_id"] == f"shop-{n}"]
        assert [e["type"] for e in mine] == per_run
        assert [e["step_name"] for e in mine if e["type"] == "step.completed"] == [
            "reserve",
            "charge",
            "ship",
        ]
        assert mine[0]["input"] == f"o{n}"
    assert len({e["event_id"] for e in events}) == len(events) == 16
    assert all((e["env"], e["service_key"]) == ("staging", "svc-42") for e in events)
    assert all(len(r.events()) <= 3 for r in server.requests)
    assert tracker.pending() == 0


async def test_engine_with_a_composite_tracker_sends_what_it_records(
    server: CollectorServer,
) -> None:
    memory = InMemoryTracker()
    http = tracker_for(server.url, batch_size=100)
    engine = Engine([shop_workflow()], backend="memory://", tracker=CompositeTracker(memory, http))
    async with engine:
        (await engine.start("shop", "o9", id="shop-9")).unwrap()
        assert engine.tracker.pending() == 8  # nothing sent yet: below batch_size, no flush
    assert ids(server.events()) == [e.event_id for e in memory.events]
    assert len(memory.events) == 8


# -- the ``http`` profile --------------------------------------------------------------


async def test_the_http_profile_builds_a_tracker_from_its_settings(
    server: CollectorServer,
) -> None:
    settings = {
        "kind": "http",
        "endpoint": server.url,
        "env": "prod",
        "service_key": "svc-9",
        "headers": {"X-Api-Key": "k-1"},
        "batch_size": 2,
        "flush_interval": "250ms",
        "close_timeout": "2s",
    }
    container = build_root([], {"backend": {"url": "memory://"}, "tracker": settings})
    tracker = container.tracker()
    assert isinstance(tracker, HttpBatchTracker)
    assert (tracker.batch_size, tracker.flush_interval_ms, tracker.close_timeout_ms) == (
        2,
        250,
        2000,
    )
    for i in range(3):
        tracker.emit(event(i))
    await tracker.close()
    assert ids(server.events()) == expected_ids(range(3))
    assert [len(r.events()) for r in server.requests] == [2, 1]
    assert all(r.headers["x-api-key"] == "k-1" for r in server.requests)
    assert {(e["env"], e["service_key"]) for e in server.events()} == {("prod", "svc-9")}


def test_the_http_profile_needs_an_endpoint() -> None:
    container = build_root([], {"backend": {"url": "memory://"}, "tracker": {"kind": "http"}})
    with pytest.raises(ValueError, match=r"tracker\.endpoint"):
        container.tracker()
