"""Backoff: how long to wait before retrying a failed step attempt.

Pure: the strategies are frozen values, ``calculate_backoff_delay`` is arithmetic, and
``add_jitter`` draws from a caller-supplied ``random.Random`` when determinism matters.
"""

from __future__ import annotations

import math
import random
from fractions import Fraction
from typing import Any, ClassVar, Final, TypeAlias, assert_never

import attrs

from durably.domain.durations import Duration, parse_duration
from durably.domain.errors import InvalidDurationError

__all__ = [
    "ConstantBackoff",
    "LinearBackoff",
    "ExponentialBackoff",
    "BackoffStrategy",
    "Backoff",
    "BackoffPresets",
    "calculate_backoff_delay",
    "add_jitter",
]

# The delay an uncapped exponential backoff saturates at, instead of overflowing (int64 max).
_UNCAPPED_LIMIT_MS: Final = 2**63 - 1


def _check_ms(value: object, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidDurationError(
            value=value, field=name, reason="must be a non-negative int of milliseconds"
        )


def _ms(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    _check_ms(value, attribute.name)


def _optional_ms(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None:
        _check_ms(value, attribute.name)


def _check_multiplier(value: object, name: str) -> None:
    # ``1 <= value < inf`` also rejects NaN, and never converts a huge int to float.
    if isinstance(value, bool) or not isinstance(value, int | float) or not 1 <= value < math.inf:
        raise ValueError(f"{name}: must be a finite number >= 1, got {value!r}")


def _multiplier(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    _check_multiplier(value, attribute.name)


@attrs.frozen
class ConstantBackoff:
    """Wait the same ``delay_ms`` before every retry."""

    delay_ms: int = attrs.field(validator=_ms)


@attrs.frozen
class LinearBackoff:
    """Wait ``initial_ms``, growing by ``increment_ms`` per retry, capped at ``max_ms``."""

    initial_ms: int = attrs.field(validator=_ms)
    increment_ms: int = attrs.field(validator=_ms)
    max_ms: int | None = attrs.field(default=None, validator=_optional_ms)


@attrs.frozen
class ExponentialBackoff:
    """Wait ``initial_ms``, multiplied by ``multiplier`` per retry, capped at ``max_ms``."""

    initial_ms: int = attrs.field(validator=_ms)
    multiplier: float = attrs.field(default=2.0, validator=_multiplier)
    max_ms: int | None = attrs.field(default=None, validator=_optional_ms)


BackoffStrategy: TypeAlias = ConstantBackoff | LinearBackoff | ExponentialBackoff
"""Any backoff strategy ``calculate_backoff_delay`` understands."""


def _exponential_delay(strategy: ExponentialBackoff, attempt: int) -> int:
    cap = _UNCAPPED_LIMIT_MS if strategy.max_ms is None else strategy.max_ms
    if strategy.initial_ms == 0 or strategy.multiplier == 1:
        return min(strategy.initial_ms, cap)
    try:
        # float(): an int multiplier must not turn this into exact big-int exponentiation.
        raw = strategy.initial_ms * float(strategy.multiplier) ** (attempt - 1)
    except OverflowError:
        return cap
    if not raw < cap:  # also catches inf
        return cap
    return min(round(raw), cap)


def calculate_backoff_delay(strategy: BackoffStrategy, attempt: int) -> int:
    """Return the milliseconds to wait after failed attempt number ``attempt`` (1-based)."""
    if attempt < 1:
        raise ValueError(f"attempt: must be >= 1 (the 1-based failed attempt), got {attempt!r}")
    match strategy:
        case ConstantBackoff(delay_ms=delay_ms):
            return delay_ms
        case LinearBackoff(initial_ms=initial_ms, increment_ms=increment_ms, max_ms=max_ms):
            delay = initial_ms + increment_ms * (attempt - 1)
            return delay if max_ms is None else min(delay, max_ms)
        case ExponentialBackoff():
            return _exponential_delay(strategy, attempt)
        case _:
            assert_never(strategy)


def add_jitter(ms: int, factor: float = 0.1, *, rng: random.Random | None = None) -> int:
    """Return ``ms`` moved uniformly at random within ``±factor`` of itself, in whole ms."""
    if not 0 <= factor <= 1:  # also rejects NaN
        raise ValueError(f"factor: must be between 0 and 1, got {factor!r}")
    if isinstance(ms, bool) or not isinstance(ms, int) or ms < 0:
        raise InvalidDurationError(value=ms, field="ms", reason="must be a non-negative int")
    if factor == 0 or ms == 0:
        return ms
    spread = Fraction(ms) * Fraction(factor)  # exact, so the bounds below are exact too
    low, high = math.ceil(ms - spread), math.floor(ms + spread)  # low <= ms <= high, low >= 0
    draw = rng.uniform if rng is not None else random.uniform
    return min(max(round(draw(float(ms - spread), float(ms + spread))), low), high)


class BackoffPresets:
    """Ready-made strategies for common retry needs."""

    @staticmethod
    def standard() -> ExponentialBackoff:
        """Exponential from 1 s, doubling, capped at 30 s."""
        return ExponentialBackoff(initial_ms=1_000, multiplier=2.0, max_ms=30_000)

    @staticmethod
    def aggressive() -> ExponentialBackoff:
        """Exponential from 100 ms, doubling, capped at 5 s."""
        return ExponentialBackoff(initial_ms=100, multiplier=2.0, max_ms=5_000)

    @staticmethod
    def patient() -> ExponentialBackoff:
        """Exponential from 5 s, doubling, capped at 120 s."""
        return ExponentialBackoff(initial_ms=5_000, multiplier=2.0, max_ms=120_000)

    @staticmethod
    def simple() -> ConstantBackoff:
        """Constant 1 s."""
        return ConstantBackoff(delay_ms=1_000)


class Backoff:
    """Build backoff strategies from durations in any form ``parse_duration`` accepts."""

    presets: ClassVar[BackoffPresets] = BackoffPresets()
    """Ready-made strategies, e.g. ``Backoff.presets.standard()``."""

    @staticmethod
    def constant(delay: Duration) -> ConstantBackoff:
        """Wait ``delay`` before every retry."""
        return ConstantBackoff(delay_ms=parse_duration(delay, field="delay"))

    @staticmethod
    def linear(
        *, initial: Duration, increment: Duration, max: Duration | None = None
    ) -> LinearBackoff:
        """Wait ``initial``, then ``increment`` longer per retry, never more than ``max``."""
        return LinearBackoff(
            initial_ms=parse_duration(initial, field="initial"),
            increment_ms=parse_duration(increment, field="increment"),
            max_ms=None if max is None else parse_duration(max, field="max"),
        )

    @staticmethod
    def exponential(
        *, base: Duration, factor: float = 2, max: Duration | None = None
    ) -> ExponentialBackoff:
        """Wait ``base``, multiplied by ``factor`` per retry, never more than ``max``."""
        _check_multiplier(factor, "factor")
        return ExponentialBackoff(
            initial_ms=parse_duration(base, field="base"),
            multiplier=factor,
            max_ms=None if max is None else parse_duration(max, field="max"),
        )
