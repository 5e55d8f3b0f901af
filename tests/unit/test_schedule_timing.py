"""The pure side of schedules: tick ids, the ticks of a window (cron and every), and what
an opening engine decides about missed ticks (``domain/schedules.py``)."""

from __future__ import annotations

import datetime
import doctest
from typing import Any

import attrs
import pytest

import durably.domain.schedules as schedules_module
from durably.domain.schedules import (
    MAX_CATCH_UP,
    StoredSchedule,
    Timing,
    opened,
    parse_timing,
    ticks_within,
)

MIN = 60_000
T0 = round(datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC).timestamp() * 1000)
FIVE = Timing(cron="*/5 * * * *")


def test_the_doctests_hold() -> None:
    result = doctest.testmod(schedules_module)
    assert result.attempted >= 3
    assert result.failed == 0


def test_ticks_within_a_window_cron_and_every_agree() -> None:
    every = Timing(every_ms=5 * MIN)
    for first, last, limit in [(T0, T0 + 60 * MIN, 100), (T0 + 1, T0 + 60 * MIN, 5), (T0, T0, 3)]:
        assert ticks_within(FIVE, first, last, limit) == ticks_within(every, first, last, limit)
    twelve = [T0 + k * 5 * MIN for k in range(1, 13)]
    assert ticks_within(FIVE, T0 + 1, T0 + 60 * MIN, 100) == twelve
    assert ticks_within(FIVE, T0 + 61 * MIN, T0 + 60 * MIN, 100) == []


def test_ticks_within_a_long_window_keep_the_latest() -> None:
    year = 365 * 24 * 60 * MIN
    every_minute = Timing(cron="* * * * *")
    found = ticks_within(every_minute, T0, T0 + year, MAX_CATCH_UP)
    assert len(found) == MAX_CATCH_UP
    assert found[-1] == T0 + year
    assert found == [T0 + year - k * MIN for k in range(MAX_CATCH_UP - 1, -1, -1)]


def row(**changes: Any) -> StoredSchedule:
    base = StoredSchedule(
        id="five", workflow="w", timing=FIVE, catch_up="latest", queue="default",
        next_at=T0 + 35 * MIN, seen_at=T0 + 30 * MIN, version=7,
    )  # fmt: skip
    return attrs.evolve(base, **changes)


NOW = T0 + 90 * MIN
MISSED = [T0 + k * 5 * MIN for k in range(7, 19)]  # 00:35 .. 01:30


@pytest.mark.parametrize(
    ("catch_up", "pending"), [("latest", MISSED[-1:]), ("all", MISSED), ("none", [])]
)
def test_an_open_after_downtime_picks_the_missed_ticks(catch_up: str, pending: list[int]) -> None:
    decided = opened(row(), NOW, False, row(catch_up=catch_up))
    assert list(decided.pending) == pending
    assert decided.next_at == T0 + 95 * MIN
    assert decided.seen_at == NOW
    assert decided.catch_up == catch_up


def test_ticks_due_before_the_last_engine_went_away_all_fire() -> None:
    # The cursor is at 00:20: 00:20 .. 00:30 came due while an engine was open.
    late = row(next_at=T0 + 20 * MIN)
    decided = opened(late, NOW, False, row(catch_up="none"))
    assert list(decided.pending) == [T0 + 20 * MIN, T0 + 25 * MIN, T0 + 30 * MIN]


def test_nothing_is_missed_while_an_engine_has_it_open_or_it_is_paused() -> None:
    for alive, paused in [(True, False), (False, True)]:
        decided = opened(row(paused=paused), NOW, alive, row(catch_up="all"))
        assert decided.pending == ()
        assert decided.next_at == T0 + 35 * MIN  # the worker fires from the cursor


def test_a_changed_timing_starts_afresh_after_now() -> None:
    hourly = Timing(every_ms=60 * MIN)
    decided = opened(row(), NOW, False, row(timing=hourly, catch_up="all"))
    assert decided.timing == hourly
    assert decided.pending == ()
    assert decided.next_at == T0 + 120 * MIN


@pytest.mark.parametrize(
    ("cron", "every", "zone", "words"),
    [
        ("0 3 * * * *", None, "UTC", "5 fields"),
        ("0 25 * * *", None, "UTC", "Bad hour"),
        ("0 3 31 2 *", None, "UTC", "cron"),
        ("0 3 * * *", None, "Europe/Pariss", "unknown time zone"),
        (None, "500ms", "UTC", "at least 1 second"),
        (None, None, "UTC", "exactly one"),
        ("0 3 * * *", "1h", "UTC", "exactly one"),
    ],
)
def test_bad_timings_are_one_line_naming_the_schedule(
    cron: str | None, every: str | None, zone: str, words: str
) -> None:
    with pytest.raises(ValueError, match=words) as raised:
        parse_timing("nightly", cron, every, zone)
    assert str(raised.value).startswith("schedule 'nightly': ")
    assert "\n" not in str(raised.value)
