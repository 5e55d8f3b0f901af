"""Step failures, retries and per-attempt timeouts (semantics.md section 3), and their events.

A retry pauses the workflow (``Paused(reason="retry")``); the test moves the virtual
clock to the resume time and fires the alarm to run the next attempt. Timeouts are
real (asyncio) and kept small; no test asserts a wall-clock upper bound.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest
from returns.result import Failure, Result, Success

import durably
from durably import Backoff, Retry
from durably.status import Completed, Failed, Paused, WorkflowError
from tests.support.harness import Harness
from tests.support.runtimes import RuntimeFactory

T0 = 1_000


async def failed_error(h: Harness) -> WorkflowError:
    status = await h.status()
    assert isinstance(status, Failed), status
    return status.error


def one_step(
    fn: Callable[[], Any],
    *,
    retry: Retry | None = None,
    timeout: str | None = None,
    caught: list[BaseException] | None = None,
    name: str = "flaky",
) -> durably.WorkflowDefinition[Any, Any]:
    """A workflow whose only step is ``fn`` (``caught`` collects what the step raised)."""

    @durably.workflow(name=name)
    async def body(_: Any) -> Any:
        await durably.step("warmup", lambda: "w")
        try:
            return await durably.step("x", fn, retry=retry, timeout=timeout)
        except Exception as e:
            if caught is not None:
                caught.append(e)
            raise

    return body


def failing(times: int, calls: list[int]) -> Callable[[], str]:
    """A step function that fails its first ``times`` calls, then returns ``"ok"``."""

    def fn() -> str:
        calls.append(durably.step_info().attempt)
        if len(calls) <= times:
            raise ConnectionError(f"failure {len(calls)}")
        return "ok"

    return fn


# -- failures without retry ---------------------------------------------------------


async def test_a_returned_failure_fails_the_step(runtimes: RuntimeFactory) -> None:
    @durably.workflow
    async def failing(_: Any) -> str:
        await durably.step("f", lambda: Failure(KeyError("missing")))
        return "unreachable"

    h = Harness(runtimes("r1", T0), failing)
    await h.start()
    error = await failed_error(h)
    assert error.type == "KeyError"
    assert "missing" in error.message
    assert error.step_name == "f"
    assert "step:f:result" not in h.snapshot()


async def test_a_returned_failure_of_a_non_exception_still_fails(runtimes: RuntimeFactory) -> None:
    @durably.workflow
    async def failing(_: Any) -> str:
        await durably.step("f", lambda: Failure("plain text"))
        return "unreachable"

    h = Harness(runtimes("r1", T0), failing)
    await h.start()
    error = await failed_error(h)
    assert "plain text" in error.message
    assert error.step_name == "f"


async def test_a_raising_step_without_retry_fails_the_workflow_with_details(
    runtimes: RuntimeFactory,
) -> None:
    calls: list[int] = []

    def boom() -> int:
        calls.append(1)
        raise ValueError("bad input 42")

    @durably.workflow
    async def failing(_: Any) -> int:
        await durably.step("ok", lambda: 1)
        return await durably.step("boom", boom)

    h = Harness(runtimes("r1", T0), failing)
    result = await h.start()
    assert not result.completed
    error = await failed_error(h)
    assert error.type == "ValueError"
    assert error.message == "bad input 42"
    assert error.traceback is not None
    assert "Traceback" in error.traceback
    assert "bad input 42" in error.traceback
    assert (error.step_name, error.attempt) == ("boom", 1)
    assert calls == [1]
    assert await h.completed_steps() == ("ok",)
    assert "step:boom:result" not in h.snapshot()
    failed = h.tracker.of_type("step.failed")
    assert [(e.step_name, e.attempt, e.will_retry, e.error.type) for e in failed] == [
        ("boom", 1, False, "ValueError")
    ]


async def test_user_code_may_catch_a_step_failure_and_continue(runtimes: RuntimeFactory) -> None:
    @durably.workflow
    async def recovering(_: Any) -> str:
        try:
            await durably.step("risky", lambda: 1 / 0)
        except ZeroDivisionError:
            return await durably.step("fallback", lambda: "fallback")
        return "unreachable"

    h = Harness(runtimes("r1", T0), recovering)
    result = await h.start()
    assert result.completed
    assert result.output == "fallback"
    assert await h.completed_steps() == ("fallback",)


async def test_an_unserializable_result_is_a_serialization_error_naming_step_and_type(
    runtimes: RuntimeFactory,
) -> None:
    seen: list[durably.SerializationError] = []

    @durably.workflow
    async def unserializable(_: Any) -> str:
        try:
            await durably.step("weird", lambda: object())
        except durably.SerializationError as e:
            seen.append(e)
            raise
        return "unreachable"

    h = Harness(runtimes("r1", T0), unserializable)
    await h.start()
    assert len(seen) == 1
    assert seen[0].step_name == "weird"
    assert seen[0].type_name == "object"
    assert "weird" in str(seen[0])
    assert "object" in str(seen[0])
    error = await failed_error(h)
    assert error.type == "SerializationError"
    assert error.step_name == "weird"
    assert "step:weird:result" not in h.snapshot()
    assert await h.completed_steps() == ()


# -- attempts --------------------------------------------------------------------------


async def test_max_attempts_2_runs_three_times_then_exhausts(runtimes: RuntimeFactory) -> None:
    calls: list[int] = []
    caught: list[BaseException] = []
    h = Harness(
        runtimes("r1", T0),
        one_step(
            failing(10, calls), retry=Retry(max_attempts=2, delay="1s", jitter=False), caught=caught
        ),
    )
    first = await h.start()
    assert first.status == Paused(reason="retry", resume_at=T0 + 1_000, step_name="x")
    assert await h.resume() == Paused(reason="retry", resume_at=T0 + 2_000, step_name="x")
    final = await h.resume()
    assert isinstance(final, Failed)
    assert calls == [1, 2, 3]
    assert final.error.type == "RetryExhaustedError"
    assert final.error.step_name == "x"
    assert "failure 3" in final.error.message
    assert "failed after 3 attempts (max_attempts=2 retries)" in final.error.message
    [exhausted] = caught
    assert isinstance(exhausted, durably.RetryExhaustedError)
    assert (exhausted.step_name, exhausted.attempts, exhausted.max_attempts) == ("x", 3, 2)
    assert isinstance(exhausted.last_error, ConnectionError)
    assert str(exhausted.last_error) == "failure 3"
    assert "step:x:result" not in h.snapshot()


async def test_success_on_the_second_attempt_records_the_attempt(runtimes: RuntimeFactory) -> None:
    calls: list[int] = []
    h = Harness(
        runtimes("r1", T0),
        one_step(failing(1, calls), retry=Retry(max_attempts=3, delay="1s", jitter=False)),
    )
    first = await h.start()
    assert isinstance(first.status, Paused)
    attempt_record = h.snapshot()["step:x:attempt"]
    assert attempt_record["attempt"] == 2
    assert attempt_record["first_started_at"] == T0
    assert attempt_record["last_error"]["type"] == "ConnectionError"

    assert isinstance(await h.resume(), Completed)
    assert calls == [1, 2]
    snapshot = h.snapshot()
    assert snapshot["step:x:result"]["value"] == "ok"
    assert snapshot["step:x:result"]["meta"]["attempt"] == 2
    history = snapshot["step:x:attempt"]  # kept once the step commits: it is its history
    assert [f["attempt"] for f in history["failures"]] == [1]
    assert history["failures"][0]["error"]["message"] == "failure 1"


async def test_max_attempts_0_fails_on_the_first_failure_as_exhausted(
    runtimes: RuntimeFactory,
) -> None:
    calls: list[int] = []
    h = Harness(
        runtimes("r1", T0), one_step(failing(1, calls), retry=Retry(max_attempts=0, jitter=False))
    )
    await h.start()
    assert calls == [1]
    assert (await failed_error(h)).type == "RetryExhaustedError"


async def test_a_non_retryable_error_fails_at_once(runtimes: RuntimeFactory) -> None:
    calls: list[int] = []
    seen: list[BaseException] = []

    def only_connection_errors(e: BaseException) -> bool:
        seen.append(e)
        return isinstance(e, ConnectionError)

    def fn() -> str:
        calls.append(1)
        raise PermissionError("denied")

    retry = Retry(max_attempts=5, delay="1s", jitter=False, is_retryable=only_connection_errors)
    h = Harness(runtimes("r1", T0), one_step(fn, retry=retry))
    await h.start()
    error = await failed_error(h)
    assert error.type == "PermissionError"
    assert (error.step_name, error.attempt) == ("x", 1)
    assert calls == [1]
    assert [type(e) for e in seen] == [PermissionError]
    assert h.tracker.of_type("retry.scheduled") == []


async def test_is_retryable_false_for_everything_means_no_retry(runtimes: RuntimeFactory) -> None:
    calls: list[int] = []
    retry = Retry(max_attempts=5, jitter=False, is_retryable=lambda _: False)
    h = Harness(runtimes("r1", T0), one_step(failing(1, calls), retry=retry))
    await h.start()
    assert (await failed_error(h)).type == "ConnectionError"
    assert calls == [1]


async def test_a_returned_failure_is_retried_like_a_raised_one(runtimes: RuntimeFactory) -> None:
    calls: list[int] = []

    def fn() -> Result[str, Exception]:
        calls.append(1)
        return Failure(ConnectionError("nope")) if len(calls) == 1 else Success("yes")

    h = Harness(
        runtimes("r1", T0), one_step(fn, retry=Retry(max_attempts=1, delay="1s", jitter=False))
    )
    first = await h.start()
    assert first.status == Paused(reason="retry", resume_at=T0 + 1_000, step_name="x")
    assert isinstance(await h.resume(), Completed)
    assert h.snapshot()["step:x:result"]["value"] == "yes"


# -- delays ----------------------------------------------------------------------------


async def resume_times(runtimes: RuntimeFactory, retry: Retry, failures: int) -> list[int]:
    """The ``resume_at - failure time`` of each retry pause, failing ``failures`` times."""
    h = Harness(runtimes("r1", T0), one_step(failing(failures, []), retry=retry))
    delays: list[int] = []
    status = (await h.start()).status
    now = T0
    while isinstance(status, Paused):
        assert status.reason == "retry"
        assert status.resume_at is not None
        delays.append(status.resume_at - now)
        now = status.resume_at
        status = await h.resume()
    assert isinstance(status, Completed)
    return delays


@pytest.mark.parametrize(
    ("delay", "expected"),
    [
        ("250ms", [250, 250, 250]),
        (Backoff.constant("2s"), [2_000, 2_000, 2_000]),
        (Backoff.exponential(base="1s"), [1_000, 2_000, 4_000]),
        (Backoff.exponential(base="100ms", factor=3, max="500ms"), [100, 300, 500]),
        (Backoff.linear(initial="1s", increment="500ms", max="1.8s"), [1_000, 1_500, 1_800]),
        (lambda attempt: attempt * 111, [111, 222, 333]),
        (None, [1_000, 2_000, 4_000]),  # the default: exponential from 1 s, x2
    ],
)
async def test_delay_strategies_give_the_expected_resume_times(
    runtimes: RuntimeFactory, delay: Any, expected: list[int]
) -> None:
    assert (
        await resume_times(runtimes, Retry(max_attempts=5, delay=delay, jitter=False), 3)
        == expected
    )


async def test_the_default_delay_is_capped_at_60_seconds(runtimes: RuntimeFactory) -> None:
    delays = await resume_times(runtimes, Retry(max_attempts=8, jitter=False), 8)
    assert delays == [1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 60_000, 60_000]


async def test_jitter_stays_within_ten_percent(runtimes: RuntimeFactory) -> None:
    delays: list[int] = []
    for i in range(20):
        h = Harness(
            runtimes(f"j{i}", T0), one_step(failing(1, []), retry=Retry(max_attempts=1, delay="1s"))
        )
        status = (await h.start()).status
        assert isinstance(status, Paused)
        assert status.resume_at is not None
        delays.append(status.resume_at - T0)
    assert all(900 <= d <= 1_100 for d in delays), delays
    assert len(set(delays)) > 1


async def test_max_duration_refuses_a_retry_that_would_resume_past_the_budget(
    runtimes: RuntimeFactory,
) -> None:
    calls: list[int] = []
    caught: list[BaseException] = []
    retry = Retry(max_attempts=5, delay="3s", jitter=False, max_duration="5s")
    h = Harness(runtimes("r1", T0), one_step(failing(10, calls), retry=retry, caught=caught))
    first = await h.start()
    assert first.status == Paused(reason="retry", resume_at=T0 + 3_000, step_name="x")
    final = await h.resume()  # attempt 2 fails at T0+3000: T0+6000 would pass T0+5000
    assert isinstance(final, Failed)
    assert final.error.type == "RetryExhaustedError"
    assert calls == [1, 2]
    [exhausted] = caught
    assert isinstance(exhausted, durably.RetryExhaustedError)
    assert (exhausted.attempts, exhausted.max_attempts) == (2, 5)
    assert "Retry.max_duration ran out first" in final.error.message
    assert [(e.step_name, e.attempts) for e in h.tracker.of_type("retry.exhausted")] == [("x", 2)]
    assert h.handle.scheduled_time() is None


async def test_max_duration_allows_a_retry_that_lands_exactly_on_the_budget(
    runtimes: RuntimeFactory,
) -> None:
    retry = Retry(max_attempts=5, delay="2500ms", jitter=False, max_duration="5s")
    assert await resume_times(runtimes, retry, 2) == [2_500, 2_500]


def test_invalid_retry_options_are_refused_naming_the_field() -> None:
    with pytest.raises(ValueError, match="max_attempts"):
        Retry(max_attempts=-1)
    with pytest.raises(durably.InvalidDurationError, match=r"Retry\.delay") as delay_error:
        Retry(1, delay="-1s")
    assert delay_error.value.field == "Retry.delay"
    with pytest.raises(durably.InvalidDurationError, match=r"Retry\.max_duration"):
        Retry(1, max_duration="soon")


# -- timeouts --------------------------------------------------------------------------


async def slow() -> str:
    await asyncio.sleep(1)
    return "slow"


async def test_a_slow_attempt_times_out_with_the_real_elapsed_time(
    runtimes: RuntimeFactory,
) -> None:
    caught: list[BaseException] = []
    h = Harness(runtimes("r1", T0), one_step(slow, timeout="50ms", caught=caught))
    await h.start()
    [timeout] = caught
    assert isinstance(timeout, durably.StepTimeoutError)
    assert (timeout.step_name, timeout.timeout_ms) == ("x", 50)
    assert timeout.elapsed_ms >= 50
    error = await failed_error(h)
    assert error.type == "StepTimeoutError"
    assert (error.step_name, error.attempt) == ("x", 1)
    assert [(e.step_name, e.timeout_ms) for e in h.tracker.of_type("timeout.exceeded")] == [
        ("x", 50)
    ]


async def test_a_blocking_sync_step_past_its_timeout_fails_after_it_returns(
    runtimes: RuntimeFactory,
) -> None:
    def blocking() -> str:
        time.sleep(0.08)
        return "late"

    caught: list[BaseException] = []
    h = Harness(runtimes("r1", T0), one_step(blocking, timeout="50ms", caught=caught))
    await h.start()
    [timeout] = caught
    assert isinstance(timeout, durably.StepTimeoutError)
    assert timeout.elapsed_ms >= 50
    assert "step:x:result" not in h.snapshot()


async def test_a_timed_out_attempt_is_retried_and_the_timeout_counts_per_attempt(
    runtimes: RuntimeFactory,
) -> None:
    attempts: list[int] = []

    async def slow_then_fast() -> str:
        attempt = durably.step_info().attempt
        attempts.append(attempt)
        if attempt == 1:
            await asyncio.sleep(1)
        return f"attempt {attempt}"

    retry = Retry(max_attempts=2, delay="1h", jitter=False)
    h = Harness(runtimes("r1", T0), one_step(slow_then_fast, retry=retry, timeout="50ms"))
    first = await h.start()
    assert first.status == Paused(reason="retry", resume_at=T0 + 3_600_000, step_name="x")
    # Far past the first attempt's start plus its timeout: the new attempt gets its own 50 ms.
    await h.alarm_at(T0 + 10 * 3_600_000)
    final = await h.status()
    assert isinstance(final, Completed)
    assert attempts == [1, 2]
    assert h.snapshot()["step:x:result"]["value"] == "attempt 2"
    failed = h.tracker.of_type("step.failed")
    assert [(e.error.type, e.will_retry) for e in failed] == [("StepTimeoutError", True)]


async def test_a_fast_step_within_its_timeout_succeeds(runtimes: RuntimeFactory) -> None:
    h = Harness(runtimes("r1", T0), one_step(lambda: "quick", timeout="10s"))
    assert (await h.start()).output == "quick"
    assert h.tracker.of_type("timeout.exceeded") == []


@pytest.mark.parametrize("timeout", [0, "0s", -5, "-50ms"])
def test_zero_or_negative_timeouts_are_invalid(timeout: Any) -> None:
    with pytest.raises(durably.InvalidDurationError, match="timeout"):
        durably.step("x", lambda: 1, timeout=timeout)


# -- pauses are never swallowed --------------------------------------------------------


async def test_except_exception_around_a_retried_step_does_not_swallow_the_pause(
    runtimes: RuntimeFactory,
) -> None:
    swallowed: list[bool] = []
    fn = failing(1, [])

    @durably.workflow
    async def careless(_: Any) -> str:
        try:
            await durably.step("x", fn, retry=Retry(max_attempts=1, delay="1s", jitter=False))
        except Exception:
            swallowed.append(True)
        return "done"

    h = Harness(runtimes("r1", T0), careless)
    first = await h.start()
    assert first.status == Paused(reason="retry", resume_at=T0 + 1_000, step_name="x")
    assert isinstance(await h.resume(), Completed)
    assert swallowed == []


# -- events ----------------------------------------------------------------------------


async def test_events_of_a_step_that_fails_once_then_succeeds(runtimes: RuntimeFactory) -> None:
    h = Harness(
        runtimes("r1", T0),
        one_step(failing(1, []), retry=Retry(max_attempts=2, delay="1s", jitter=False)),
    )
    await h.start()
    assert h.tracker.types() == [
        "workflow.started",
        "step.started",  # warmup
        "step.completed",
        "step.started",
        "step.failed",
        "retry.scheduled",
        "workflow.paused",
    ]
    [failed] = h.tracker.of_type("step.failed")
    assert (failed.step_name, failed.attempt, failed.will_retry) == ("x", 1, True)
    assert failed.error.type == "ConnectionError"
    [scheduled] = h.tracker.of_type("retry.scheduled")
    assert (scheduled.step_name, scheduled.attempt) == ("x", 2)
    assert (scheduled.next_attempt_at, scheduled.delay_ms) == (T0 + 1_000, 1_000)
    [paused] = h.tracker.of_type("workflow.paused")
    assert (paused.reason, paused.resume_at, paused.step_name) == ("retry", T0 + 1_000, "x")

    h.tracker.clear()
    await h.resume()
    assert h.tracker.types() == [
        "workflow.resumed",
        "step.completed",  # warmup, replayed
        "step.started",
        "step.completed",
        "workflow.completed",
    ]
    cached, started, completed = h.tracker.events[1:4]
    assert getattr(cached, "cached", None) is True
    assert (getattr(started, "step_name", None), getattr(started, "attempt", None)) == ("x", 2)
    assert getattr(completed, "cached", None) is False
    assert getattr(completed, "attempt", None) == 2
    assert all(e.workflow_id == "r1" and e.workflow_name == "flaky" for e in h.tracker.events)


async def test_events_of_exhaustion(runtimes: RuntimeFactory) -> None:
    h = Harness(
        runtimes("r1", T0),
        one_step(failing(10, []), retry=Retry(max_attempts=1, delay="1s", jitter=False)),
    )
    await h.start()
    h.tracker.clear()
    await h.resume()
    assert h.tracker.types()[-4:] == [
        "step.started",
        "step.failed",
        "retry.exhausted",
        "workflow.failed",
    ]
    [failed] = h.tracker.of_type("step.failed")
    assert (failed.attempt, failed.will_retry) == (2, False)
    [exhausted] = h.tracker.of_type("retry.exhausted")
    assert (exhausted.step_name, exhausted.attempts) == ("x", 2)
    [workflow_failed] = h.tracker.of_type("workflow.failed")
    assert workflow_failed.error.type == "RetryExhaustedError"
