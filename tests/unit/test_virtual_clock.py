"""``VirtualClock`` under engines of ``durably_engine``: time moves alarm by alarm."""

from __future__ import annotations

import asyncio
import datetime
import time

import pytest
from returns.result import Failure

import durably
from durably import Retry
from durably.domain.errors import ResultTimeoutError, WorkflowFailedError
from durably.engine import Engine
from durably.ports import TimeSkippingClock
from durably.testing import DEFAULT_START, EngineFactory, ManualClock, VirtualClock

SECOND = 1_000
DAY = 86_400_000

seen: list[tuple[str, int]] = []
"""(what, the workflow's clock) as the steps of the workflows below run."""


async def tag_of(engine: Engine, id: str) -> str | None:
    """The status tag of instance ``id``."""
    status = (await engine.status(id)).unwrap().status
    return None if status is None else status.tag


@pytest.fixture(autouse=True)
def _forget() -> None:
    seen.clear()


def note(what: str) -> str:
    seen.append((what, durably.context().now()))
    return what


@durably.step(retry=Retry(3, delay="30s", jitter=False))
async def flaky() -> str:
    note(f"flaky attempt {durably.step_info().attempt}")
    if durably.step_info().attempt == 1:
        raise ConnectionError("down")
    return "ok"


@durably.workflow
async def retry_then_sleep(_: None) -> str:
    await flaky()
    await durably.sleep("1 minute")
    return await durably.step("after", lambda: note("after"))


@durably.workflow
async def sleeper(minutes: int) -> int:
    await durably.sleep(minutes * 60_000)
    await durably.step("woke", lambda: note(f"woke after {minutes} min"))
    return minutes


@durably.workflow
async def month(_: None) -> str:
    await durably.sleep("30 days")
    return await durably.step("end", lambda: note("end"))


async def test_each_alarm_fires_at_its_own_due_time(
    durably_engine: EngineFactory, durably_clock: VirtualClock
) -> None:
    start = durably_clock.now()
    engine = await durably_engine([retry_then_sleep])
    await engine.start(retry_then_sleep, None, id="r")
    await durably_clock.advance("1h")
    assert seen == [
        ("flaky attempt 1", start),
        ("flaky attempt 2", start + 30 * SECOND),  # not at the end of the hour
        ("after", start + 90 * SECOND),  # the sleep began when the retry succeeded
    ]
    assert durably_clock.now() == start + 3_600 * SECOND
    assert (await engine.result("r")).unwrap() == "after"


async def test_alarms_of_several_instances_fire_in_due_order(
    durably_engine: EngineFactory, durably_clock: VirtualClock
) -> None:
    start = durably_clock.now()
    engine = await durably_engine([sleeper])
    for minutes in (7, 2, 5):
        await engine.start(sleeper, minutes, id=f"s{minutes}")
    await durably_clock.advance("10 min")
    assert seen == [
        ("woke after 2 min", start + 2 * 60 * SECOND),
        ("woke after 5 min", start + 5 * 60 * SECOND),
        ("woke after 7 min", start + 7 * 60 * SECOND),
    ]


async def test_advance_stops_at_its_target(
    durably_engine: EngineFactory, durably_clock: VirtualClock
) -> None:
    start = durably_clock.now()
    engine = await durably_engine([month])
    await engine.start(month, None, id="m")
    await durably_clock.advance("29 days")
    assert durably_clock.now() == start + 29 * DAY
    assert await tag_of(engine, "m") == "Paused"
    assert seen == []
    await durably_clock.advance_to(start + 30 * DAY)
    assert seen == [("end", start + 30 * DAY)]
    assert await tag_of(engine, "m") == "Completed"


async def test_a_month_long_sleep_takes_milliseconds(
    durably_engine: EngineFactory, durably_clock: VirtualClock
) -> None:
    engine = await durably_engine([month])
    began = time.monotonic()
    await engine.start(month, None, id="m")
    await durably_clock.advance("30 days")
    elapsed = time.monotonic() - began
    assert (await engine.result("m")).unwrap() == "end"
    assert elapsed < 1.0  # not a speed test: 10x above what it takes, it proves nothing waits


async def test_result_skips_to_the_end_and_no_further(
    durably_engine: EngineFactory, durably_clock: VirtualClock
) -> None:
    start = durably_clock.now()
    engine = await durably_engine([retry_then_sleep, month])
    await engine.queue(retry_then_sleep, None, id="r")
    await engine.queue(month, None, id="m")
    assert (await engine.result("r")).unwrap() == "after"
    assert durably_clock.now() == start + 90 * SECOND  # the month-long sleep is still ahead
    assert await tag_of(engine, "m") == "Paused"
    assert (await engine.result("m")).unwrap() == "end"
    assert durably_clock.now() == start + 30 * DAY


@durably.step(retry=Retry(1_000_000, delay="1s", jitter=False))
async def always_down() -> None:
    raise ConnectionError("down")


@durably.workflow
async def endless(_: None) -> None:
    await always_down()


async def test_result_gives_up_after_10_000_alarms(
    durably_engine: EngineFactory, durably_clock: VirtualClock
) -> None:
    start = durably_clock.now()
    engine = await durably_engine([endless])
    await engine.queue(endless, None, id="e")
    outcome = await engine.result("e")
    assert isinstance(outcome, Failure)
    error = outcome.failure()
    assert isinstance(error, ResultTimeoutError)
    assert error.alarms == 10_000
    assert error.status == "Paused"
    assert error.timeout_ms == durably_clock.now() - start == 10_000 * SECOND
    assert "10000 alarms of the virtual clock" in str(error)


@durably.step(timeout="10s")
async def hanging() -> str:
    note("hanging")
    await asyncio.get_running_loop().create_future()  # never done: only the timeout ends it
    return "never"


@durably.workflow
async def times_out(_: None) -> str:
    return await hanging()


async def test_a_step_timeout_is_counted_in_virtual_time(
    durably_engine: EngineFactory, durably_clock: VirtualClock
) -> None:
    start = durably_clock.now()
    engine = await durably_engine([times_out])
    await engine.queue(times_out, None, id="t")
    await durably_clock.advance("9999ms")
    assert await tag_of(engine, "t") == "Running"
    await durably_clock.advance("1ms")
    outcome = await engine.result("t")
    assert isinstance(outcome, Failure)
    error = outcome.failure()
    assert isinstance(error, WorkflowFailedError)
    assert error.error.type == "StepTimeoutError"
    assert "10000" in error.error.message
    assert durably_clock.now() == start + 10 * SECOND
    assert seen == [("hanging", start)]


async def test_result_skips_to_a_step_timeout(
    durably_engine: EngineFactory, durably_clock: VirtualClock
) -> None:
    start = durably_clock.now()
    engine = await durably_engine([times_out])
    await engine.queue(times_out, None, id="t")
    outcome = await engine.result("t")
    assert isinstance(outcome, Failure)
    error = outcome.failure()
    assert isinstance(error, WorkflowFailedError)
    assert error.error.type == "StepTimeoutError"
    assert durably_clock.now() == start + 10 * SECOND


def test_the_start_is_fixed_and_can_be_set() -> None:
    clock = VirtualClock()
    assert clock.now() == round(DEFAULT_START.timestamp() * 1000)
    clock.start_at("2030-05-01T12:00:00+02:00")
    assert clock.now() == round(
        datetime.datetime(2030, 5, 1, 10, tzinfo=datetime.UTC).timestamp() * 1000
    )
    clock.start_at(1_000)
    assert VirtualClock(start=1_000).now() == clock.now() == 1_000
    with pytest.raises(ValueError, match="offset"):
        clock.start_at(datetime.datetime(2030, 5, 1))


async def test_the_start_cannot_move_once_engines_run(
    durably_engine: EngineFactory, durably_clock: VirtualClock
) -> None:
    await durably_engine([month])
    with pytest.raises(RuntimeError, match="before making an engine"):
        durably_clock.start_at(0)
    with pytest.raises(ValueError, match="does not go back"):
        await durably_clock.advance_to(durably_clock.now() - 1)


def test_only_the_virtual_clock_skips_time() -> None:
    assert isinstance(VirtualClock(), TimeSkippingClock)
    assert not isinstance(ManualClock(), TimeSkippingClock)


async def test_a_manual_clock_keeps_result_waiting_in_real_time() -> None:
    clock = ManualClock(time_ms=0)
    async with Engine([month], backend="memory://", clock=clock) as engine:
        await engine.start(month, None, id="m")
        outcome = await engine.result("m", timeout="50ms")
        assert isinstance(outcome, Failure)
        assert isinstance(outcome.failure(), ResultTimeoutError)
        assert outcome.failure().alarms is None
        assert clock.now() == 0


async def test_an_engine_the_clock_does_not_move_is_refused() -> None:
    async with Engine([month], backend="memory://", clock=VirtualClock()) as engine:
        await engine.start(month, None, id="m")
        with pytest.raises(RuntimeError, match="durably_engine"):
            await engine.result("m")


async def test_engines_of_one_test_share_its_clock(
    durably_engine: EngineFactory, durably_clock: VirtualClock
) -> None:
    start = durably_clock.now()
    first = await durably_engine([sleeper])
    second = await durably_engine([sleeper])
    await first.start(sleeper, 3, id="a")
    await second.start(sleeper, 1, id="b")
    await durably_clock.advance("5 min")
    assert seen == [
        ("woke after 1 min", start + 60 * SECOND),
        ("woke after 3 min", start + 180 * SECOND),
    ]
    assert first.now() == second.now() == durably_clock.now()
