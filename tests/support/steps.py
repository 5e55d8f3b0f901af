"""Step functions the engine tests share."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

__all__ = ["logged"]

V = TypeVar("V")


def logged(log: list[V], value: V) -> Callable[[], V]:
    """A step function that appends ``value`` to ``log`` (to count calls) and returns it."""

    def fn() -> V:
        log.append(value)
        return value

    return fn
