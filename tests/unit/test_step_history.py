"""Every attempt of a step is kept (``StepAttempt.failures``), in the commits that already
happen: a retry's pause, the commit that records the workflow's failure, or the next
commit after a failure that the workflow caught. A step that succeeds at once writes
nothing more than before.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import durably
from durably import Retry
from durably.domain.records import KEPT_FAILURES, StepAttempt
from durably.domain.serialization import decode
from durably.status import Completed, Failed, Paused
from tests.support.harness import Harness
from tests.support.runtimes import RuntimeFactory

T0 = 1_000


def one_step(fn: Callable[[], Any], *, retry: Retry | None = None) -> Any:
    """A workflow of a first step that succeeds, then step ``x``: ``fn``."""

    @durably.workflow(name="flaky")
    async def body(_: Any) -> Any:
        await durably.step("warmup", lambda: "w")
        return await durably.step("x", fn, retry=retry)

    return body


def failing(times: int, calls: list[int]) -> Callable[[], str]:
    """A step function that fails its first ``times`` calls, then returns ``"ok"``."""

    def fn() -> str:
        calls.append(durably.step_info().attempt)
        if len(calls) <= times:
            raise ConnectionError(f"failure {len(calls)}")
        return "ok"

    return fn


def attempt_record(h: Harness, key: str = "x") -> StepAttempt:
    record: StepAttempt = decode(h.snapshot()[f"step:{key}:attempt"], StepAttempt)
    return record


def clocked(h: Harness, fails: int, took_ms: int) -> Any:
    """A step function that moves the virtual clock by ``took_ms`` and fails ``fails`` times."""
    calls: list[int] = []

    def fn() -> str:
        calls.append(durably.step_info().attempt)
        h.handle.advance_time(took_ms)
        if len(calls) <= fails:
            raise ConnectionError(f"failure {len(calls)}")
        return "ok"

    return fn


async def test_every_failed_attempt_is_kept_with_its_times_and_error_after_success(
    runtimes: RuntimeFactory,
) -> None:
    h = Harness(runtimes("h1", T0))
    h.workflows = [one_step(clocked(h, 2, 50), retry=Retry(3, delay="1s", jitter=False))]
    first = await h.start()
    assert first.status == Paused(reason="retry", resume_at=T0 + 50 + 1_000, step_name="x")
    assert isinstance(await h.resume(), Paused)
    assert isinstance(await h.resume(), Completed)
    record = attempt_record(h)
    assert [f.attempt for f in record.failures] == [1, 2]
    assert [(f.started_at, f.ended_at) for f in record.failures] == [
        (T0, T0 + 50),
        (T0 + 1_050, T0 + 1_100),
    ]
    assert [f.error.message for f in record.failures] == ["failure 1", "failure 2"]
    assert all(f.error.type == "ConnectionError" for f in record.failures)
    assert all("ConnectionError" in (f.error.traceback or "") for f in record.failures)
    assert all(f.duration_ms >= 0 for f in record.failures)
    assert not record.failed_for_good
    assert h.snapshot()["step:x:result"]["meta"]["attempt"] == 3


async def test_a_step_that_fails_for_good_records_its_failure_in_the_failing_commit(
    runtimes: RuntimeFactory,
) -> None:
    calls: list[int] = []
    h = Harness(runtimes("h1", T0), one_step(failing(5, calls)))
    result = await h.start()
    assert isinstance(result.status, Failed)
    assert h.handle.commits == 3  # start, warmup, the end: the failure rides with the end
    record = attempt_record(h)
    assert [(f.attempt, f.error.message) for f in record.failures] == [(1, "failure 1")]
    assert record.failed_for_good
    assert record.last_error is not None
    assert record.last_error.message == "failure 1"


async def test_exhausted_retries_record_every_attempt_and_the_last_with_the_failure(
    runtimes: RuntimeFactory,
) -> None:
    calls: list[int] = []
    h = Harness(
        runtimes("h1", T0), one_step(failing(5, calls), retry=Retry(1, delay="1s", jitter=False))
    )
    await h.start()
    commits = h.handle.commits
    final = await h.resume()
    assert isinstance(final, Failed)
    assert final.error.type == "RetryExhaustedError"
    # The Resume, then one commit for the Failed status and the last attempt together.
    assert h.handle.commits == commits + 2
    record = attempt_record(h)
    assert [f.attempt for f in record.failures] == [1, 2]
    assert record.failures[-1].error.type == "ConnectionError"  # the step's own error
    assert record.failed_for_good


async def test_a_caught_failure_is_kept_and_a_replay_runs_the_step_with_fresh_attempts(
    runtimes: RuntimeFactory,
) -> None:
    calls: list[int] = []
    fn = failing(100, calls)

    @durably.workflow
    async def tolerant(_: Any) -> str:
        with contextlib.suppress(durably.RetryExhaustedError):
            await durably.step("x", fn, retry=Retry(1, delay="1s", jitter=False))
        await durably.sleep("10s")
        return "done"

    h = Harness(runtimes("h1", T0), tolerant)
    await h.start()  # attempt 1 fails: retry
    assert isinstance(await h.resume(), Paused)  # attempt 2 fails for good, caught: the sleep
    record = attempt_record(h)
    assert record.failed_for_good  # committed with the sleep's pause
    assert [f.attempt for f in record.failures] == [1, 2]
    # The replay after the sleep runs the step again (a failure is not a stored result):
    # a new run of it, with the whole retry budget again.
    assert isinstance(await h.resume(), Paused)
    assert calls == [1, 2, 1]
    assert isinstance(await h.resume(), Completed)
    assert calls == [1, 2, 1, 2]
    assert [f.attempt for f in attempt_record(h).failures] == [1, 2, 1, 2]


async def test_the_history_keeps_only_the_most_recent_failures(runtimes: RuntimeFactory) -> None:
    calls: list[int] = []
    total = KEPT_FAILURES + 5
    h = Harness(
        runtimes("h1", T0),
        one_step(failing(total, calls), retry=Retry(total, delay="1ms", jitter=False)),
    )
    await h.start()
    while isinstance(await h.status(), Paused):
        await h.resume()
    assert isinstance(await h.status(), Completed)
    failures = attempt_record(h).failures
    assert len(failures) == KEPT_FAILURES
    assert [f.attempt for f in failures] == list(range(6, total + 1))


async def test_a_step_that_succeeds_at_once_writes_no_attempt_record(
    runtimes: RuntimeFactory,
) -> None:
    calls: list[int] = []
    h = Harness(runtimes("h1", T0), one_step(failing(0, calls)))
    assert (await h.start()).completed
    assert not [k for k in h.snapshot() if k.endswith(":attempt")]
    assert h.handle.commits == 4  # start, two steps, the end: as before


def test_an_attempt_record_stored_before_the_history_still_reads() -> None:
    stored = {
        "attempt": 3,
        "first_started_at": T0,
        "last_error": {
            "message": "boom",
            "type": "ValueError",
            "traceback": None,
            "step_name": "x",
            "attempt": 2,
        },
        "started_at": None,
    }
    record: StepAttempt = decode(stored, StepAttempt)
    assert record.failures == ()
    assert not record.failed_for_good
    assert record.attempt == 3
