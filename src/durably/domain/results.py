"""Small bridges between ``returns`` containers and the exceptions they carry.

Inside the services, code raises; each public operation turns a raised durably error
into a ``Failure`` once, at its boundary (``operation``). ``ok(result)`` does the
reverse, for callers (tests, scripts) that want the value or the exception. Every
durably error is an exception, so the two forms carry the same object.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar

from returns.result import Failure, Result, Success

from durably.domain.errors import DurablyError

__all__ = ["ok", "as_result", "operation"]

T = TypeVar("T")
E = TypeVar("E", bound=BaseException)
P = ParamSpec("P")


def ok(result: Result[T, E]) -> T:
    """The value of a ``Success``; raises the error of a ``Failure``."""
    if isinstance(result, Success):
        return result.unwrap()  # type: ignore[no-any-return]
    raise result.failure()


def as_result(
    error_type: type[E],
) -> Callable[[Callable[P, Awaitable[T]]], Callable[P, Awaitable[Result[T, E]]]]:
    """Decorate an async function so that a raised ``error_type`` is returned as ``Failure``."""

    def decorate(fn: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[Result[T, E]]]:
        @functools.wraps(fn)
        async def wrapper(*args: P.args, **kwargs: P.kwargs) -> Result[T, E]:
            try:
                return Success(await fn(*args, **kwargs))
            except error_type as e:
                return Failure(e)

        return wrapper

    return decorate


def operation(
    fn: Callable[P, Awaitable[T]],
) -> Callable[P, Awaitable[Result[T, DurablyError]]]:
    """The public form of a raising service method: a raised durably error is returned
    as a ``Failure`` (``get_status = operation(status)``)."""
    return as_result(DurablyError)(fn)
