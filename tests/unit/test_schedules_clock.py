"""Schedules under the testing kit's virtual clock (memory backend): ticks fire at their
own times, with the pinned ids; pause, resume and trigger; daylight saving in Paris."""

from __future__ import annotations

import datetime

import pytest

import durably
from durably.testing import EngineFactory, VirtualClock

UTC = datetime.UTC

RUNS: list[tuple[str, datetime.datetime, int]] = []
"""``(instance id, tick.scheduled_at, the clock when its step ran)`` of every run."""


@pytest.fixture(autouse=True)
def _fresh_runs() -> None:
    RUNS.clear()


@durably.workflow
async def report(tick: durably.Tick) -> str:
    me = durably.context().workflow_id

    def note() -> str:
        RUNS.append((me, tick.scheduled_at, durably.context().now()))
        return tick.scheduled_at.isoformat()

    return await durably.step("note", note)


@durably.workflow
async def untyped(tick):  # type: ignore[no-untyped-def]  # no annotation: given a Tick all the same
    assert isinstance(tick, durably.Tick)
    return tick.schedule_id


def at(text: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(text).astimezone(UTC)


def ms(when: datetime.datetime) -> int:
    return round(when.timestamp() * 1000)


async def test_every_five_minutes_for_an_hour_fires_twelve_ticks_at_their_times(
    durably_engine: EngineFactory, durably_clock: VirtualClock
) -> None:
    five = durably.Schedule("five", report, cron="*/5 * * * *")
    engine = await durably_engine([report], schedules=[five])
    start = durably_clock.now()  # 2026-01-01T00:00:00Z: a tick time, but stored at it
    await durably_clock.advance("1h")
    expected = [start + k * 300_000 for k in range(1, 13)]
    assert [r[0] for r in RUNS] == [
        f"five@2026-01-01T{(k * 5) // 60:02d}:{(k * 5) % 60:02d}:00Z" for k in range(1, 13)
    ]
    assert [ms(r[1]) for r in RUNS] == expected
    assert [r[2] for r in RUNS] == expected  # each ran at its own time, not at the end
    assert all(r[1].tzinfo is not None for r in RUNS)
    listed = (await engine.list(workflow="report")).unwrap()
    assert len(listed) == 12
    assert {i.status for i in listed} == {"Completed"}
    [info] = (await engine.schedules()).unwrap()
    assert info.id == "five"
    assert info.cron == "*/5 * * * *"
    assert info.timezone == "UTC"
    assert info.last_run == at("2026-01-01T01:00:00+00:00")
    assert info.next_run == at("2026-01-01T01:05:00+00:00")
    assert not info.paused
    assert not info.orphaned


async def test_a_workflow_without_annotation_is_given_a_tick(
    durably_engine: EngineFactory, durably_clock: VirtualClock
) -> None:
    engine = await durably_engine([untyped], schedules=[durably.Schedule("u", untyped, every="1h")])
    await durably_clock.advance("1h")
    assert (await engine.result("u@2026-01-01T01:00:00Z")).unwrap() == "u"


async def test_pause_skips_the_ticks_and_resume_fires_from_the_next_one(
    durably_engine: EngineFactory, durably_clock: VirtualClock
) -> None:
    hourly = durably.Schedule("hourly", report, every="1h")
    engine = await durably_engine([report], schedules=[hourly])
    await durably_clock.advance("1h")  # 01:00 fires
    paused = (await engine.pause_schedule("hourly")).unwrap()
    assert paused.paused
    assert paused.next_run is None
    await durably_clock.advance("3h")  # 02:00, 03:00, 04:00 fall while paused
    resumed = (await engine.resume_schedule("hourly")).unwrap()
    assert not resumed.paused
    assert resumed.next_run == at("2026-01-01T05:00:00+00:00")
    await durably_clock.advance("2h")  # 05:00, 06:00
    assert [r[0] for r in RUNS] == [
        "hourly@2026-01-01T01:00:00Z",
        "hourly@2026-01-01T05:00:00Z",
        "hourly@2026-01-01T06:00:00Z",
    ]


async def test_trigger_starts_one_instance_now_even_while_paused(
    durably_engine: EngineFactory, durably_clock: VirtualClock
) -> None:
    daily = durably.Schedule("daily", report, cron="0 3 * * *")
    engine = await durably_engine([report], schedules=[daily])
    await durably_clock.advance("90m")
    (await engine.pause_schedule("daily")).unwrap()
    started = (await engine.trigger_schedule("daily")).unwrap()
    assert started == "daily@2026-01-01T01:30:00Z"
    assert (await engine.result(started)).unwrap() == "2026-01-01T01:30:00+00:00"
    await durably_clock.advance("1 day")  # paused: the 03:00 ticks are skipped
    assert [r[0] for r in RUNS] == [started]
    assert [r[2] for r in RUNS] == [ms(at("2026-01-01T01:30:00+00:00"))]


async def test_unknown_schedule_is_a_failure_naming_it(durably_engine: EngineFactory) -> None:
    engine = await durably_engine([report])
    for action in (engine.pause_schedule, engine.resume_schedule, engine.trigger_schedule):
        failed = await action("nope")
        error = failed.failure()
        assert isinstance(error.cause, durably.ScheduleNotFoundError)
        assert "'nope'" in str(error)


@pytest.mark.parametrize(
    ("start", "expected"),
    [
        # Spring forward (29 March 2026, 02:00 -> 03:00 CET -> CEST): 02:30 does not exist
        # that night; the job runs once, at 03:00 CEST (cronsim's Debian cron rule).
        (
            "2026-03-28T12:00:00+01:00",
            ["2026-03-29T01:00:00+00:00", "2026-03-30T00:30:00+00:00"],
        ),
        # Fall back (25 October 2026, 03:00 -> 02:00 CEST -> CET): 02:30 happens twice;
        # the job runs once, at the first (CEST).
        (
            "2026-10-24T12:00:00+02:00",
            ["2026-10-25T00:30:00+00:00", "2026-10-26T01:30:00+00:00"],
        ),
    ],
    ids=["march", "october"],
)
async def test_a_daily_tick_across_the_paris_daylight_saving_change(
    durably_clock: VirtualClock, durably_engine: EngineFactory, start: str, expected: list[str]
) -> None:
    durably_clock.start_at(start)
    paris = durably.Schedule("paris", report, cron="30 2 * * *", timezone="Europe/Paris")
    await durably_engine([report], schedules=[paris])
    await durably_clock.advance("2 days")
    assert [r[1] for r in RUNS] == [at(e) for e in expected]
    assert [r[2] for r in RUNS] == [ms(at(e)) for e in expected]
    assert [r[0] for r in RUNS] == [f"paris@{e.removesuffix('+00:00')}Z" for e in expected]


async def test_an_hourly_tick_fires_every_real_hour_across_the_october_change(
    durably_clock: VirtualClock, durably_engine: EngineFactory
) -> None:
    durably_clock.start_at("2026-10-25T00:00:00+02:00")  # 24 Oct 22:00 UTC
    paris = durably.Schedule("h", report, cron="15 * * * *", timezone="Europe/Paris")
    await durably_engine([report], schedules=[paris])
    await durably_clock.advance("5h")
    # 02:15 CEST and 02:15 CET are both real hours: five ticks in five hours, none twice.
    assert [r[1].strftime("%H:%M") for r in RUNS] == ["22:15", "23:15", "00:15", "01:15", "02:15"]
    assert len({r[0] for r in RUNS}) == 5
