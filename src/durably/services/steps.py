"""Running one step: replay its stored result, or run it, retry it, time it out, and commit it."""

from __future__ import annotations

import asyncio
import inspect
import time
import typing
from collections.abc import Callable
from types import CodeType
from typing import Any

import attrs
from returns.result import Failure, Success

from durably.domain import keys
from durably.domain.errors import (
    DurablyError,
    RetryExhaustedError,
    SerializationError,
    StepScopeError,
    StepTimeoutError,
    StorageError,
)
from durably.domain.events import (
    RetryExhausted,
    RetryScheduled,
    StepCompleted,
    StepFailed,
    StepStarted,
    TimeoutExceeded,
)
from durably.domain.records import (
    KEPT_FAILURES,
    FailedAttempt,
    JsonValue,
    StepAttempt,
    StepResult,
)
from durably.domain.retry import Retry
from durably.domain.serialization import decode, decode_value, encode, encode_value, type_name
from durably.domain.status import WorkflowError
from durably.ports.clock import TimeSkippingClock
from durably.services.context import (
    STEP,
    ExecutionScope,
    HistoryEnded,
    InfrastructureFailure,
    PauseSignal,
    StepInfo,
)
from durably.services.definition import declared_return

__all__ = ["run_step", "return_type_of", "read_or_fail"]

_RETURN_TYPES: dict[CodeType, Any] = {}


def return_type_of(fn: Callable[..., Any]) -> Any:
    """The declared return type of ``fn`` (``declared_return``), cached per code object."""
    code = getattr(fn, "__code__", None)
    if code is not None and code in _RETURN_TYPES:
        return _RETURN_TYPES[code]
    result = declared_return(fn)
    if code is not None:
        _RETURN_TYPES[code] = result
    return result


async def _invoke(
    fn: Callable[[], Any], key: str, timeout_ms: int | None, runtime: object = None
) -> Any:
    """Call ``fn`` (sync or async) within the attempt's timeout."""
    started = time.monotonic()
    if timeout_ms is None:
        value = fn()
        if inspect.isawaitable(value):
            value = await value
        return value
    # Under a test's time-skipping clock the timeout is counted in that clock's time.
    virtual = getattr(runtime, "clock", None)
    skipping = virtual if isinstance(virtual, TimeSkippingClock) else None
    started_at = 0 if skipping is None else skipping.now()

    def elapsed_ms() -> int:
        if skipping is not None:
            return skipping.now() - started_at
        return round((time.monotonic() - started) * 1000)

    limit = asyncio.timeout(timeout_ms / 1000) if skipping is None else skipping.timeout(timeout_ms)
    try:
        async with limit as deadline:
            value = fn()
            if inspect.isawaitable(value):
                value = await value
    except TimeoutError:
        if deadline.expired():
            raise StepTimeoutError(key, timeout_ms, elapsed_ms()) from None
        raise
    elapsed = elapsed_ms()
    if elapsed > timeout_ms:  # a synchronous function cannot be interrupted: judged afterwards
        raise StepTimeoutError(key, timeout_ms, elapsed)
    return value


def _as_exception(value: object) -> BaseException:
    if isinstance(value, BaseException):
        return value
    return RuntimeError(str(value))


async def read_or_fail(scope: ExecutionScope, key: str) -> Any:
    """Read ``key``; a storage failure stops the execution (``InfrastructureFailure``)."""
    try:
        return await scope.keys.get(key)
    except DurablyError as e:
        raise InfrastructureFailure(e) from e


async def run_step(
    scope: ExecutionScope,
    name: str,
    fn: Callable[[], Any],
    retry: Retry | None,
    timeout_ms: int | None,
    return_type: Any,
) -> Any:
    """Run the step ``name`` of the execution ``scope`` (semantics.md section 3)."""
    outer = STEP.get()
    if outer is not None:
        raise StepScopeError("step", outer.step_name)
    key = scope.next_key(name)
    if not scope.durable:
        return await _run_direct(scope, key, fn, timeout_ms)
    position = scope.take_position()
    result_key = keys.check_key(keys.step(key, "result"), f"step {key!r}")
    attempt_key = keys.step(key, "attempt")
    await scope.before_durable_point(key, position)
    try:
        found = await scope.keys.get_many((result_key, attempt_key))
    except DurablyError as e:
        raise InfrastructureFailure(e) from e
    stored = found.get(result_key)
    if stored is not None:
        record: StepResult = decode(stored, StepResult, key=result_key)
        scope.events.emit(
            StepCompleted,
            step_name=key,
            attempt=record.meta.attempt,
            duration_ms=record.meta.duration_ms,
            cached=True,
        )
        return decode_value(record.value, return_type, key=result_key)

    if scope.mode == "replay":
        raise HistoryEnded(key)  # not completed in the history: a replay check runs no step
    stored_attempt = found.get(attempt_key)
    now = scope.runtime.now()
    previous: StepAttempt | None = None
    if stored_attempt is not None:
        previous = decode(stored_attempt, StepAttempt, key=attempt_key)
    if previous is None or previous.failed_for_good:
        attempt, first_started_at = 1, now  # a step that failed for good starts afresh
    else:
        attempt, first_started_at = previous.attempt, previous.first_started_at

    scope.events.emit(StepStarted, step_name=key, attempt=attempt)
    token = STEP.set(StepInfo(scope.workflow_id, key, attempt, f"{scope.workflow_id}/{key}"))
    started = time.monotonic()
    error: BaseException | None = None
    value: Any = None
    try:
        value = await _invoke(fn, key, timeout_ms, scope.runtime)
        if isinstance(value, Success):
            value = value.unwrap()
        elif isinstance(value, Failure):
            error = _as_exception(value.failure())
    except Exception as e:
        error = e
    finally:
        STEP.reset(token)
    duration_ms = round((time.monotonic() - started) * 1000)

    run = _Attempt(key, attempt, first_started_at, now, duration_ms, previous, position)
    if error is not None:
        _fail(scope, run, error, retry)

    try:
        # The value this run goes on with is the one every replay will read back.
        data, value = encode_value(value, return_type, key=result_key, step_name=key)
    except SerializationError as e:
        _refused(scope, run, e)
    completed_at = scope.runtime.now()
    try:
        index = await scope.next_index()
        # The result is the completion marker too (it carries its place in the order):
        # the commit writes one row, so one page of the file.
        result = {
            "value": data,
            "meta": {
                "completed_at": completed_at,
                "attempt": attempt,
                "duration_ms": duration_ms,
                "started_at": now,
                "index": index,
                "position": position,
            },
        }
        # The attempt record of a step that failed before stays: it is its history.
        await scope.commit({result_key: result})
    except DurablyError as e:
        scope.forget_completions()
        if isinstance(e, StorageError) and e.permanent:
            # The database refused the value itself: retrying the commit (or recovering
            # the instance) cannot change that, so the step fails now, naming the cause.
            refused = SerializationError(
                f"the storage refused the value ({e.cause})",
                key=result_key,
                type_name=type_name(value),
                step_name=key,
            )
            _refused(scope, run, refused)
        raise InfrastructureFailure(e) from e
    scope.step_completed(key, index)
    scope.events.emit(
        StepCompleted, step_name=key, attempt=attempt, duration_ms=duration_ms, cached=False
    )
    return value


async def _run_direct(
    scope: ExecutionScope, key: str, fn: Callable[[], Any], timeout_ms: int | None
) -> Any:
    """Run a step of a direct (non-durable) run once: same scope rules and values, no storage."""
    token = STEP.set(StepInfo(scope.workflow_id, key, 1, f"{scope.workflow_id}/{key}"))
    try:
        value = await _invoke(fn, key, timeout_ms)
    finally:
        STEP.reset(token)
    if isinstance(value, Success):
        return value.unwrap()
    if isinstance(value, Failure):
        raise _as_exception(value.failure())
    return value


@attrs.frozen
class _Attempt:
    """One attempt of a step that failed: what its history record needs."""

    key: str
    attempt: int
    first_started_at: int
    started_at: int
    duration_ms: int
    previous: StepAttempt | None
    position: int

    def record(self, scope: ExecutionScope, error: WorkflowError, *, final: bool) -> JsonValue:
        """The step's attempt record with this failure added (encoded for storage)."""
        failure = FailedAttempt(
            attempt=self.attempt,
            started_at=self.started_at,
            ended_at=scope.runtime.now(),
            duration_ms=self.duration_ms,
            error=error,
        )
        earlier = self.previous.failures if self.previous is not None else ()
        record = StepAttempt(
            attempt=self.attempt + 1,
            first_started_at=self.first_started_at,
            last_error=error,
            failures=(*earlier, failure)[-KEPT_FAILURES:],
            failed_for_good=final,
            position=self.position,
        )
        attempt_key = keys.step(self.key, "attempt")
        return encode(record, key=attempt_key)


def _refused(scope: ExecutionScope, run: _Attempt, error: SerializationError) -> typing.NoReturn:
    """Fail the step for a value that cannot be stored (never retried: a retry cannot
    change the value); the attempt joins the step's history with the next commit."""
    key, attempt = run.key, run.attempt
    scope.failures[id(error)] = (key, attempt)
    description = WorkflowError.from_exception(error, key, attempt)
    scope.pending[keys.step(key, "attempt")] = run.record(scope, description, final=True)
    scope.events.emit(
        StepFailed, step_name=key, attempt=attempt, error=description, will_retry=False
    )
    raise error


def _fail(
    scope: ExecutionScope, run: _Attempt, error: BaseException, retry: Retry | None
) -> typing.NoReturn:
    """Raise what a failed attempt leads to: the error, exhaustion, or a retry pause.

    The attempt joins the step's history: with the retry's pause commit, or, when the
    step fails for good, with the next commit (the one that records the failure).
    """
    events = scope.events
    key, attempt = run.key, run.attempt
    attempt_key = keys.step(key, "attempt")
    if isinstance(error, StepTimeoutError):
        events.emit(TimeoutExceeded, step_name=key, timeout_ms=error.timeout_ms)
    description = WorkflowError.from_exception(error, key, attempt)
    if retry is None or not retry.should_retry(error):
        events.emit(StepFailed, step_name=key, attempt=attempt, error=description, will_retry=False)
        scope.failures[id(error)] = (key, attempt)
        scope.pending[attempt_key] = run.record(scope, description, final=True)
        raise error
    resume_at: int | None = None
    if attempt <= retry.max_attempts:
        now = scope.runtime.now()
        delay = retry.delay_for(attempt)
        resume_at = now + delay
        if retry.max_duration is not None and resume_at > run.first_started_at + retry.max_duration:
            resume_at = None  # fix: a retry that would pass the budget is not scheduled
    if resume_at is None:
        events.emit(StepFailed, step_name=key, attempt=attempt, error=description, will_retry=False)
        events.emit(RetryExhausted, step_name=key, attempts=attempt)
        exhausted = RetryExhaustedError(key, attempt, error, retry.max_attempts)
        scope.failures[id(exhausted)] = (key, attempt)
        scope.pending[attempt_key] = run.record(scope, description, final=True)
        raise exhausted from error
    events.emit(StepFailed, step_name=key, attempt=attempt, error=description, will_retry=True)
    raise PauseSignal(
        "retry",
        resume_at,
        step_name=key,
        attempt=attempt + 1,
        writes={attempt_key: run.record(scope, description, final=False)},
        events=[
            (
                RetryScheduled,
                {
                    "step_name": key,
                    "attempt": attempt + 1,
                    "next_attempt_at": resume_at,
                    "delay_ms": resume_at - scope.runtime.now(),
                },
            )
        ],
    )
