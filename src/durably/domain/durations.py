"""Durations: parse the ways a user may write one into whole milliseconds.

Pure: no IO, no clock. ``parse_duration`` is called on hot paths, so the common case (a
non-negative ``int``) is answered before anything else, and the string grammar is a single
regular expression compiled once.
"""

from __future__ import annotations

import datetime
import math
import re
from typing import Final, TypeAlias

from durably.domain.errors import InvalidDurationError

__all__ = ["parse_duration", "Duration"]

Duration: TypeAlias = int | float | str | datetime.timedelta
"""Anything ``parse_duration`` accepts: milliseconds, a timedelta, or a string like ``"1.5s"``."""

_MS_PER_UNIT: Final[dict[str, int]] = {
    "": 1,
    "ms": 1,
    "millisecond": 1,
    "milliseconds": 1,
    "s": 1_000,
    "sec": 1_000,
    "second": 1_000,
    "seconds": 1_000,
    "m": 60_000,
    "min": 60_000,
    "minute": 60_000,
    "minutes": 60_000,
    "h": 3_600_000,
    "hr": 3_600_000,
    "hour": 3_600_000,
    "hours": 3_600_000,
    "d": 86_400_000,
    "day": 86_400_000,
    "days": 86_400_000,
}

# An unsigned decimal number ("5", "1.5", ".5"; the lookahead makes it non-empty), optional spaces,
# then an optional unit made of letters, looked up in _MS_PER_UNIT afterwards. ASCII digits and
# spaces only. Written so that no two runs of spaces can trade characters: matching stays linear.
_DURATION_RE: Final = re.compile(
    r"\s*(?=\.?[0-9])(?P<int>[0-9]*)(?:\.(?P<frac>[0-9]+))?\s*(?:(?P<unit>[a-zA-Z]+)\s*)?",
    re.ASCII,
)

_US_PER_MS: Final = 1_000


def _round_ratio(numerator: int, denominator: int) -> int:
    """Round ``numerator / denominator`` (both >= 0) exactly, half to even, like ``round()``."""
    quotient, remainder = divmod(numerator, denominator)
    twice = 2 * remainder
    if twice > denominator or (twice == denominator and quotient % 2 == 1):
        quotient += 1
    return quotient


def _parse_string(value: str, field: str | None) -> int:
    match = _DURATION_RE.fullmatch(value)
    if match is None:
        raise InvalidDurationError(value=value, field=field)
    whole: str = match.group("int")
    frac: str = match.group("frac") or ""
    unit: str = match.group("unit") or ""
    factor = _MS_PER_UNIT.get(unit.lower())
    if factor is None:
        raise InvalidDurationError(
            value=value,
            field=field,
            reason=f"unknown unit {unit!r} (use ms, s, m, h or d)",
        )
    try:
        digits = int(whole + frac)
    except ValueError:  # more digits than int() will convert
        raise InvalidDurationError(value=value, field=field, reason="too many digits") from None
    # Exact: digits / 10**len(frac) * factor, rounded half to even, with no float error.
    return _round_ratio(digits * factor, 10 ** len(frac))


def parse_duration(value: Duration, *, field: str | None = None) -> int:
    """Convert a duration to whole milliseconds.

    Accepts a non-negative number of milliseconds (``int`` or finite ``float``; not ``bool``), a
    non-negative ``datetime.timedelta``, or a string: a number, optional spaces, and an optional
    case-insensitive unit (``ms``, ``s``/``sec``/``second(s)``, ``m``/``min``/``minute(s)``,
    ``h``/``hr``/``hour(s)``, ``d``/``day(s)``; no unit means milliseconds). Fractions are
    rounded to the nearest millisecond (half to even, as ``round()``).

    Args:
        value: The duration to convert.
        field: The name of the setting being parsed, quoted in the error message.

    Returns:
        The duration in whole milliseconds, ``>= 0``.

    Raises:
        InvalidDurationError: ``value`` is not a valid duration (it is also a ``ValueError``).

    Examples:
        >>> parse_duration(250)
        250
        >>> parse_duration("1.5s")
        1500
        >>> parse_duration("5 minutes")
        300000
        >>> parse_duration(" .5 Hours ")
        1800000
        >>> parse_duration(datetime.timedelta(seconds=2))
        2000
        >>> parse_duration("5x", field="timeout")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        durably.domain.errors.InvalidDurationError: timeout: invalid duration '5x': unknown unit...
    """
    if type(value) is int:  # the hot path: exactly int, so never a bool
        if value >= 0:
            return value
        raise InvalidDurationError(value=value, field=field, reason="must not be negative")
    if isinstance(value, str):
        return _parse_string(value, field)
    if isinstance(value, bool):
        raise InvalidDurationError(value=value, field=field, reason="a bool is not a duration")
    if isinstance(value, int):  # an int subclass, such as an IntEnum
        if value >= 0:
            return int(value)
        raise InvalidDurationError(value=value, field=field, reason="must not be negative")
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidDurationError(value=value, field=field, reason="must be finite")
        if value < 0:
            raise InvalidDurationError(value=value, field=field, reason="must not be negative")
        return round(value)
    if isinstance(value, datetime.timedelta):
        if value < datetime.timedelta(0):
            raise InvalidDurationError(value=value, field=field, reason="must not be negative")
        micros = (value.days * 86_400 + value.seconds) * 1_000_000 + value.microseconds
        return _round_ratio(micros, _US_PER_MS)
    raise InvalidDurationError(value=value, field=field)
