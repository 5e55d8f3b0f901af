"""``step``: a unit of work whose result is stored once it completes."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeVar, overload

from returns.result import Result

from durably.domain.durations import Duration, parse_duration
from durably.domain.errors import InvalidDurationError
from durably.domain.retry import Retry
from durably.services.context import durable, require_scope
from durably.services.steps import return_type_of, run_step

__all__ = ["step"]

T = TypeVar("T")
P = ParamSpec("P")


def _timeout_ms(timeout: Duration | None) -> int | None:
    if timeout is None:
        return None
    ms = parse_duration(timeout, field="timeout")
    if ms == 0:
        raise InvalidDurationError(timeout, "timeout", "must be greater than 0 (omit it for none)")
    return ms


def _check_retry(retry: object) -> Retry | None:
    if retry is not None and not isinstance(retry, Retry):
        raise TypeError(f"retry must be a durably.Retry, got {type(retry).__name__}")
    return retry


@overload
def step(
    name: str,
    fn: Callable[[], Awaitable[Result[T, Any]]],
    /,
    *,
    retry: Retry | None = None,
    timeout: Duration | None = None,
) -> Awaitable[T]: ...


@overload
def step(
    name: str,
    fn: Callable[[], Awaitable[T]],
    /,
    *,
    retry: Retry | None = None,
    timeout: Duration | None = None,
) -> Awaitable[T]: ...


@overload
def step(
    name: str,
    fn: Callable[[], Result[T, Any]],
    /,
    *,
    retry: Retry | None = None,
    timeout: Duration | None = None,
) -> Awaitable[T]: ...


@overload
def step(
    name: str,
    fn: Callable[[], T],
    /,
    *,
    retry: Retry | None = None,
    timeout: Duration | None = None,
) -> Awaitable[T]: ...


@overload
def step(fn: Callable[P, Awaitable[T]], /) -> Callable[P, Awaitable[T]]: ...


@overload
def step(
    *,
    name: str | None = None,
    retry: Retry | None = None,
    timeout: Duration | None = None,
) -> Callable[[Callable[P, Awaitable[T]]], Callable[P, Awaitable[T]]]: ...


def step(
    name_or_fn: Any = None,
    fn: Any = None,
    /,
    *,
    name: str | None = None,
    retry: Retry | None = None,
    timeout: Duration | None = None,
) -> Any:
    """Run ``fn`` as the durable step ``name``: ``await step("fetch", lambda: fetch(id))``.

    Also a decorator, ``@step`` or ``@step(name=..., retry=..., timeout=...)``: every
    call of the decorated ``async def`` is then a step named after it.

    ``retry`` is a ``Retry`` (none: a failure fails the workflow). ``timeout`` bounds
    each attempt: a string with a unit (``"10s"``), a ``datetime.timedelta``, or a number
    of **milliseconds** (``timeout=30`` is 30 ms, not 30 seconds); ``0`` is refused.
    """
    retry = _check_retry(retry)
    timeout_ms = _timeout_ms(timeout)
    if isinstance(name_or_fn, str):
        if fn is None or not callable(fn):
            raise TypeError(f"step({name_or_fn!r}, fn): fn must be a zero-argument callable")
        return _call(name_or_fn, fn, retry, timeout_ms, return_type_of(fn))
    if name_or_fn is not None:
        if not callable(name_or_fn):
            raise TypeError("step takes a name and a function, or decorates a function")
        return _decorate(name_or_fn, name, retry, timeout_ms)

    def decorator(body: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
        return _decorate(body, name, retry, timeout_ms)

    return decorator


@durable
async def _call(
    name: str, fn: Callable[[], Any], retry: Retry | None, timeout_ms: int | None, rtype: Any
) -> Any:
    scope = require_scope("step")
    return await run_step(scope, name, fn, retry, timeout_ms, rtype)


def _decorate(
    body: Callable[P, Awaitable[T]], name: str | None, retry: Retry | None, timeout_ms: int | None
) -> Callable[P, Awaitable[T]]:
    step_name = name if name is not None else body.__name__
    rtype = return_type_of(body)

    @functools.wraps(body)
    async def as_step(*args: P.args, **kwargs: P.kwargs) -> T:
        result: T = await _call(step_name, lambda: body(*args, **kwargs), retry, timeout_ms, rtype)
        return result

    return durable(as_step)
