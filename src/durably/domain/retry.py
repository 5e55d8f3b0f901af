"""The retry policy of a step."""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from typing import Any, TypeAlias

import attrs

from durably.domain.backoff import (
    BackoffStrategy,
    ConstantBackoff,
    ExponentialBackoff,
    LinearBackoff,
    add_jitter,
    calculate_backoff_delay,
)
from durably.domain.durations import Duration, parse_duration

__all__ = ["Retry", "RetryDelay", "DEFAULT_BACKOFF"]

RetryDelay: TypeAlias = Duration | BackoffStrategy | Callable[[int], int | float]

DEFAULT_BACKOFF = ExponentialBackoff(initial_ms=1_000, multiplier=2.0, max_ms=60_000)
"""The delay when a ``Retry`` names none: exponential from 1 s, x2, capped at 60 s."""


def _check_max_attempts(_: object, attribute: attrs.Attribute[int], value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"Retry.max_attempts must be an int >= 0, got {value!r}")


def _check_delay(_: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is None or callable(value):
        return
    if isinstance(value, ConstantBackoff | LinearBackoff | ExponentialBackoff):
        return
    parse_duration(value, field="Retry.delay")


def _to_budget(value: Duration | None) -> int | None:
    return None if value is None else parse_duration(value, field="Retry.max_duration")


@attrs.frozen(kw_only=False)
class Retry:
    """How a failed step is retried.

    ``max_attempts`` counts **retries after the first run**, not runs:
    ``Retry(max_attempts=2)`` runs a step at most 3 times (``Retry(0)`` once), and the
    ``RetryExhaustedError`` says ``failed after 3 attempts (max_attempts=2 retries)``.
    ``delay`` is a duration, a back-off strategy or ``fn(attempt) -> ms`` (default:
    exponential from 1 s, x2, capped at 60 s). ``jitter`` adds +-10 %.
    ``is_retryable(error)`` picks the errors worth retrying. ``max_duration`` is a budget
    counted from the first attempt's start: a retry that would resume past it is not
    scheduled.

    Durations (``delay``, ``max_duration``) are strings with a unit (``"500ms"``,
    ``"30s"``, ``"1 hour"``), ``datetime.timedelta`` values, or numbers of
    **milliseconds**: ``delay=5`` waits 5 ms, not 5 seconds.
    """

    max_attempts: int = attrs.field(validator=_check_max_attempts)
    delay: RetryDelay | None = attrs.field(default=None, kw_only=True, validator=_check_delay)
    jitter: bool = attrs.field(default=True, kw_only=True)
    is_retryable: Callable[[BaseException], bool] | None = attrs.field(default=None, kw_only=True)
    max_duration: int | None = attrs.field(default=None, kw_only=True, converter=_to_budget)

    def should_retry(self, error: BaseException) -> bool:
        """Whether ``error`` may be retried at all (attempts aside)."""
        return True if self.is_retryable is None else bool(self.is_retryable(error))

    def delay_for(self, attempt: int, rng: random.Random | None = None) -> int:
        """The delay in ms after the failed attempt number ``attempt`` (1-based)."""
        delay = self.delay
        if delay is None:
            ms = calculate_backoff_delay(DEFAULT_BACKOFF, attempt)
        elif isinstance(delay, ConstantBackoff | LinearBackoff | ExponentialBackoff):
            ms = calculate_backoff_delay(delay, attempt)
        elif callable(delay):
            raw = delay(attempt)
            if isinstance(raw, bool) or not isinstance(raw, int | float) or not math.isfinite(raw):
                raise ValueError(f"Retry.delay({attempt}) returned {raw!r}, not a number of ms")
            ms = max(0, round(raw))
        else:
            ms = parse_duration(delay, field="Retry.delay")
        return add_jitter(ms, rng=rng) if self.jitter and ms > 0 else ms
