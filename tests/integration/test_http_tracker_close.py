"""``HttpBatchTracker``: a bounded close, the ``redact`` hook, the plain-http warning.

A close against a collector that is down must not stall a shutdown: the bounds asserted
below only prove that (they are 2x the default and 10x a short ``close_timeout``), they
do not measure speed.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from durably.adapters.http_tracker import HttpBatchTracker
from durably.domain.errors import InvalidDurationError
from durably.engine import Engine
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


def down_url() -> str:
    """A collector URL with nothing listening: every POST is refused (and retried)."""
    return f"http://127.0.0.1:{free_port()}/v1/events"


def abandoned_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == HTTP_LOGGER and r.levelno == logging.WARNING and "not delivered" in r.message
    ]


# -- close is bounded -------------------------------------------------------------------


async def test_engine_close_with_the_collector_down_is_bounded_by_default(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The defaults: retries back off 0.5 s, 1 s, 2 s, 4 s, 8 s (over 15 s in all).
    tracker = HttpBatchTracker(down_url(), env="prod", service_key="svc")
    assert tracker.close_timeout_ms == 5_000
    engine = Engine([shop_workflow()], backend="memory://", tracker=tracker)
    await engine.open()
    started = (await engine.start("shop", "o1", id="shop-1")).unwrap()
    assert started.completed
    assert tracker.pending() == 8
    with caplog.at_level(logging.WARNING, logger=HTTP_LOGGER):
        began = time.monotonic()
        await engine.close()
        elapsed = time.monotonic() - began
    assert elapsed < 10, f"engine.close() took {elapsed:.1f} s with the collector down"
    assert (tracker.abandoned, tracker.delivered, tracker.pending()) == (8, 0, 0)
    (warning,) = abandoned_warnings(caplog)
    assert "closed with 8 events not delivered" in warning
    assert "close_timeout (5000 ms)" in warning


async def test_close_timeout_is_an_option_and_whatever_is_left_is_counted_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A sender already busy retrying its batches when close is called.
    tracker = tracker_for(down_url(), batch_size=10, close_timeout="200ms", max_retries=1_000)
    for i in range(25):
        tracker.emit(event(i))
    await until(lambda: tracker.attempts >= 3)
    with caplog.at_level(logging.WARNING, logger=HTTP_LOGGER):
        began = time.monotonic()
        await tracker.close()
        elapsed = time.monotonic() - began
    assert elapsed < 2, f"close() took {elapsed:.1f} s with close_timeout=200ms"
    # The batch in flight went back to the buffer when the sender stopped: none vanished.
    assert (tracker.abandoned, tracker.failed, tracker.pending()) == (25, 0, 0)
    (warning,) = abandoned_warnings(caplog)
    assert "closed with 25 events not delivered" in warning

    # Reopened later, the tracker counts only what the next close leaves.
    caplog.clear()
    tracker.emit(event(25))
    with caplog.at_level(logging.WARNING, logger=HTTP_LOGGER):
        await tracker.close()
    (warning,) = abandoned_warnings(caplog)
    assert "closed with 1 events not delivered" in warning
    assert tracker.abandoned == 26


async def test_a_close_in_time_abandons_nothing(
    server: CollectorServer, caplog: pytest.LogCaptureFixture
) -> None:
    server.delay = 0.05
    tracker = tracker_for(server.url, batch_size=10, close_timeout="30s")
    for i in range(25):
        tracker.emit(event(i))
    with caplog.at_level(logging.WARNING, logger=HTTP_LOGGER):
        await tracker.close()
    assert ids(server.events()) == expected_ids(range(25))
    assert (tracker.abandoned, tracker.delivered) == (0, 25)
    assert abandoned_warnings(caplog) == []


def test_close_timeout_is_a_duration() -> None:
    with pytest.raises(InvalidDurationError, match="close_timeout"):
        HttpBatchTracker("http://127.0.0.1/e", env="e", service_key="k", close_timeout="soon")


# -- redact -----------------------------------------------------------------------------


async def test_redact_changes_what_is_sent_and_can_drop_events(server: CollectorServer) -> None:
    seen: list[str] = []

    def redact(data: dict[str, Any]) -> dict[str, Any] | None:
        seen.append(data["type"])
        if data["type"] == "step.started":
            return None  # not sent at all
        if "input" in data:
            data["input"] = "<redacted>"
        data.pop("service_key")
        return data

    tracker = tracker_for(server.url, batch_size=100, redact=redact)
    engine = Engine([shop_workflow()], backend="memory://", tracker=tracker)
    async with engine:
        (await engine.start("shop", "card-4242", id="shop-1")).unwrap()
    assert seen == [
        "workflow.started",
        "step.started",
        "step.completed",
        "step.started",
        "step.completed",
        "step.started",
        "step.completed",
        "workflow.completed",
    ]
    sent = server.events()
    assert [e["type"] for e in sent] == [
        "workflow.started",
        "step.completed",
        "step.completed",
        "step.completed",
        "workflow.completed",
    ]
    assert sent[0]["input"] == "<redacted>"
    assert all("service_key" not in e for e in sent)
    bodies = b"".join(r.body for r in server.requests)
    assert b"card-4242" not in bodies
    assert b"svc-42" not in bodies
    assert tracker.pending() == 0


async def test_an_event_that_redact_fails_on_is_not_sent(
    server: CollectorServer, caplog: pytest.LogCaptureFixture
) -> None:
    def redact(data: dict[str, Any]) -> Any:
        if data["step_name"] == "s1":
            raise KeyError("secret")
        if data["step_name"] == "s2":
            return json.dumps(data)  # not a dict
        return data

    tracker = tracker_for(server.url, redact=redact)
    with caplog.at_level(logging.ERROR, logger=HTTP_LOGGER):
        for i in range(4):
            tracker.emit(event(i))  # never raises
    await tracker.close()
    assert ids(server.events()) == ["ev-0", "ev-3"]  # never sent unredacted
    messages = [r.getMessage() for r in caplog.records if r.name == HTTP_LOGGER]
    assert any("redact failed on a step.started event" in m for m in messages)
    assert any("redact returned str" in m for m in messages)


def test_redact_must_be_callable() -> None:
    with pytest.raises(TypeError, match="redact"):
        HttpBatchTracker(
            "http://127.0.0.1/e",
            env="e",
            service_key="k",
            redact="drop everything",  # type: ignore[arg-type]
        )


# -- plain http to another host ---------------------------------------------------------


def plain_http_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "plain http" in r.getMessage()]


def test_plain_http_to_another_host_is_warned_about_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger=HTTP_LOGGER):
        tracker = HttpBatchTracker(
            "http://user:pw@collector.example.com:8080/v1/events?key=s3cret",
            env="e",
            service_key="k",
        )
        for i in range(300):
            tracker.emit(event(i))  # no loop here: buffered, never sent
    (warning,) = plain_http_warnings(caplog)
    assert "http://collector.example.com:8080/v1/events" in warning
    assert "unencrypted" in warning
    assert "pw" not in warning  # the URL's credentials are not logged
    assert "s3cret" not in warning


@pytest.mark.parametrize(
    "endpoint",
    [
        "https://collector.example.com/v1/events",
        "http://localhost:4318/v1/events",
        "http://LOCALHOST/v1/events",
        "http://127.0.0.1:9000/v1/events",
        "http://127.1.2.3/v1/events",
        "http://[::1]:9000/v1/events",
    ],
)
def test_https_or_this_machine_is_not_warned_about(
    endpoint: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger=HTTP_LOGGER):
        HttpBatchTracker(endpoint, env="e", service_key="k")
    assert plain_http_warnings(caplog) == []
