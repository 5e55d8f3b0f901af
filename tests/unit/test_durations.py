from __future__ import annotations

import datetime
import doctest
import enum
import math

import pytest

import durably.domain.durations as durations_module
from durably.domain.durations import parse_duration
from durably.domain.errors import InvalidDurationError

SPELLINGS = {
    1: ["", "ms", "millisecond", "milliseconds"],
    1_000: ["s", "sec", "second", "seconds"],
    60_000: ["m", "min", "minute", "minutes"],
    3_600_000: ["h", "hr", "hour", "hours"],
    86_400_000: ["d", "day", "days"],
}
UNIT_CASES = [(unit, factor) for factor, units in SPELLINGS.items() for unit in units]


@pytest.mark.parametrize(("unit", "factor"), UNIT_CASES)
@pytest.mark.parametrize("space", ["", " ", "  "])
def test_every_unit_spelling(unit: str, factor: int, space: str) -> None:
    assert parse_duration(f"3{space}{unit}") == 3 * factor
    assert parse_duration(f"3{space}{unit.upper()}") == 3 * factor
    assert parse_duration(f"3{space}{unit.title()}") == 3 * factor


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1.5s", 1_500),
        ("0.5 hours", 1_800_000),
        ("5", 5),
        ("5 minutes", 300_000),
        ("1 day", 86_400_000),
        ("2H", 7_200_000),
        (".5s", 500),
        ("0", 0),
        ("0s", 0),
        ("007ms", 7),
        ("  10 s  ", 10_000),
        ("\t1m\n", 60_000),
        ("1.5", 2),  # half to even
        ("2.5", 2),
        ("2.5000001", 3),
        ("0.0005s", 0),  # 0.5 ms, half to even
        ("0.0015s", 2),  # 1.5 ms, half to even
        ("0.0014s", 1),
        ("1.005s", 1_005),  # exact: no float error
        ("0.1h", 360_000),
        ("1.23456789d", 106_666_666),
        ("12345678901234567890", 12345678901234567890),
    ],
)
def test_string_values(text: str, expected: int) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0, 0),
        (1, 1),
        (250, 250),
        (10**20, 10**20),
        (0.0, 0),
        (-0.0, 0),
        (1.4, 1),
        (1.6, 2),
        (2.5, 2),  # round(): half to even
        (3.5, 4),
        (1e15, 10**15),
    ],
)
def test_numbers_are_milliseconds(value: float, expected: int) -> None:
    result = parse_duration(value)
    assert result == expected
    assert type(result) is int


def test_int_subclass_is_accepted_as_plain_int() -> None:
    class Ms(enum.IntEnum):
        SHORT = 40

    result = parse_duration(Ms.SHORT)
    assert result == 40
    assert type(result) is int


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (datetime.timedelta(0), 0),
        (datetime.timedelta(milliseconds=1), 1),
        (datetime.timedelta(seconds=1.5), 1_500),
        (datetime.timedelta(minutes=2), 120_000),
        (datetime.timedelta(days=1, hours=1), 90_000_000),
        (datetime.timedelta(microseconds=499), 0),
        (datetime.timedelta(microseconds=500), 0),  # half to even
        (datetime.timedelta(microseconds=1_500), 2),
        (datetime.timedelta(microseconds=1_501), 2),
        (datetime.timedelta(microseconds=2_500), 2),
        (datetime.timedelta(microseconds=2_501), 3),
        (datetime.timedelta.max, 999_999_999 * 86_400_000 + 86_399_999 + 1),
    ],
)
def test_timedelta(value: datetime.timedelta, expected: int) -> None:
    result = parse_duration(value)
    assert result == expected
    assert type(result) is int


INVALID: list[object] = [
    "5x",
    "",
    "   ",
    "-1s",
    "-1",
    "+1s",
    "s",
    "ms",
    "1.2.3s",
    "5.",
    "5.s",
    ".",
    "1e3",
    "1,5s",
    "5 s s",
    "5 sx",
    "5 mins",
    "5 secs",
    "1 5s",
    "s5",
    "nan",
    "inf",
    "\u0661\u0662s",  # Arabic-Indic digits: ASCII digits only
    "9" * 5_000,  # more digits than int() converts
    math.nan,
    math.inf,
    -math.inf,
    -1,
    -1.0,
    -0.4,
    datetime.timedelta(microseconds=-1),
    datetime.timedelta(days=-1),
    None,
    [],
    [5],
    {"ms": 5},
    True,
    False,
    b"5s",
    object(),
]


@pytest.mark.parametrize("value", INVALID, ids=lambda v: repr(v)[:40])
def test_invalid_input_raises(value: object) -> None:
    with pytest.raises(InvalidDurationError) as info:
        parse_duration(value)  # type: ignore[arg-type]
    error = info.value
    assert isinstance(error, ValueError)
    assert error.value is value
    assert error.field is None
    assert repr(value) in str(error)


@pytest.mark.parametrize("value", ["5x", -1, math.nan, None, True, datetime.timedelta(days=-1)])
def test_field_is_named_in_the_error(value: object) -> None:
    with pytest.raises(InvalidDurationError) as info:
        parse_duration(value, field="retry.timeout")  # type: ignore[arg-type]
    assert info.value.field == "retry.timeout"
    assert str(info.value).startswith("retry.timeout: ")
    assert repr(value) in str(info.value)


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("5x", "unknown unit 'x'"),
        (-1, "negative"),
        (math.inf, "finite"),
        (True, "bool"),
        (datetime.timedelta(days=-1), "negative"),
    ],
)
def test_reason_is_specific(value: object, fragment: str) -> None:
    with pytest.raises(InvalidDurationError, match=fragment):
        parse_duration(value)  # type: ignore[arg-type]


def test_long_adversarial_string_is_rejected() -> None:
    with pytest.raises(InvalidDurationError):
        parse_duration(" " * 50_000 + "5" + " " * 50_000 + "!")


def test_docstring_examples() -> None:
    result = doctest.testmod(durations_module, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 6
    assert result.failed == 0
