"""Schedules over a SQLite file and a hand-moved clock: what each catch-up policy starts
after a 1-hour gap with no engine open, orphaned schedules, operators from another
engine, and the one-line errors of a bad schedule."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest

import durably
from durably.adapters.clock import ManualClock
from durably.engine import Engine
from tests.integration.support import db_url

START = round(datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC).timestamp() * 1000)
MINUTE = 60_000


@durably.workflow
async def tick_report(tick: durably.Tick) -> str:
    return tick.scheduled_at.isoformat()


@durably.workflow
async def no_input() -> None:
    return None


@durably.workflow
async def takes_int(n: int) -> int:
    return n


def five_minutes(catch_up: str = "latest") -> durably.Schedule:
    return durably.Schedule("five", tick_report, cron="*/5 * * * *", catch_up=catch_up)


async def started(engine: Engine) -> list[str]:
    """The ids of the instances of ``tick_report``, in order."""
    return sorted(i.id for i in (await engine.list(workflow="tick_report", limit=5000)).unwrap())


def ids(*times: str) -> list[str]:
    return [f"five@2026-01-01T{t}:00Z" for t in times]


@pytest.mark.parametrize(
    ("catch_up", "after_gap"),
    [
        ("latest", ids("01:30")),
        (
            "all",
            ids(*(f"{h:02d}:{m:02d}" for h, m in [(0, 35), (0, 40), (0, 45), (0, 50)]))
            + ids(*(f"{h:02d}:{m:02d}" for h, m in [(0, 55), (1, 0), (1, 5), (1, 10)]))
            + ids("01:15", "01:20", "01:25", "01:30"),
        ),
        ("none", []),
    ],
)
async def test_catch_up_after_an_hour_with_no_engine_open(
    tmp_path: Path, catch_up: str, after_gap: list[str]
) -> None:
    url = db_url(tmp_path / "s.db")
    clock = ManualClock(START)
    before = ids("00:05", "00:10", "00:15", "00:20", "00:25", "00:30")
    async with Engine([tick_report], backend=url, clock=clock, schedules=[five_minutes()]) as e:
        clock.time_ms += 30 * MINUTE
        await e.run_until_idle()  # due while the engine was open: all fire, however late
        assert await started(e) == before
    clock.time_ms += 60 * MINUTE  # nobody has the schedule open: 12 ticks are missed
    schedule = five_minutes(catch_up)
    async with Engine([tick_report], backend=url, clock=clock, schedules=[schedule]) as e:
        await e.run_until_idle()
        assert await started(e) == sorted(before + after_gap)
        [info] = (await e.schedules()).unwrap()
        assert info.next_run == datetime.datetime(2026, 1, 1, 1, 35, tzinfo=datetime.UTC)
        clock.time_ms += 5 * MINUTE
        await e.run_until_idle()
        assert (await started(e))[-1] == "five@2026-01-01T01:35:00Z"
        for iid in await started(e):
            assert (await e.status(iid)).unwrap().status.tag == "Completed"  # type: ignore[union-attr]


async def test_catch_up_all_starts_at_most_1000_missed_ticks(tmp_path: Path) -> None:
    url = db_url(tmp_path / "s.db")
    clock = ManualClock(START)
    every = durably.Schedule("sec", tick_report, every="1s", catch_up="all")
    async with Engine([tick_report], backend=url, clock=clock, schedules=[every]):
        pass
    clock.time_ms += 3_000_000  # 3000 ticks missed
    async with Engine([tick_report], backend=url, clock=clock, schedules=[every]) as e:
        [info] = (await e.schedules()).unwrap()
        assert info.pending == 1000
        await e.run_until_idle()
        found = await started(e)
        assert len(found) == 1000
        assert found[0] == "sec@2026-01-01T00:33:21Z"  # the latest 1000: 2001 s .. 3000 s
        assert found[-1] == "sec@2026-01-01T00:50:00Z"


async def test_a_new_schedule_fires_only_ticks_after_it_was_stored(tmp_path: Path) -> None:
    url = db_url(tmp_path / "s.db")
    clock = ManualClock(START + 7 * MINUTE)
    schedules = [five_minutes("all")]
    async with Engine([tick_report], backend=url, clock=clock, schedules=schedules) as e:
        await e.run_until_idle()
        assert await started(e) == []
        clock.time_ms += 3 * MINUTE
        await e.run_until_idle()
        assert await started(e) == ids("00:10")


async def test_a_dropped_schedule_stops_firing_and_is_listed_orphaned(tmp_path: Path) -> None:
    url = db_url(tmp_path / "s.db")
    clock = ManualClock(START)
    async with Engine([tick_report], backend=url, clock=clock, schedules=[five_minutes()]):
        pass
    clock.time_ms += 60 * MINUTE
    async with Engine([tick_report], backend=url, clock=clock) as e:  # the code dropped it
        await e.run_until_idle()
        assert await started(e) == []
        [info] = (await e.schedules()).unwrap()
        assert info.orphaned
        assert info.id == "five"


async def test_operators_act_from_an_engine_without_the_schedule(tmp_path: Path) -> None:
    url = db_url(tmp_path / "s.db")
    clock = ManualClock(START)
    declares = Engine([tick_report], backend=url, clock=clock, schedules=[five_minutes()])
    async with declares, Engine([], backend=url, clock=clock) as operator:
        [info] = (await operator.schedules()).unwrap()
        assert not info.orphaned  # the first engine is open (its heartbeat is fresh)
        assert (await operator.pause_schedule("five")).unwrap().paused
        clock.time_ms += 10 * MINUTE
        await declares.run_until_idle()
        assert await started(declares) == []  # paused: 00:05 and 00:10 skipped
        clock.time_ms += 1000
        triggered = (await operator.trigger_schedule("five")).unwrap()
        assert triggered == "five@2026-01-01T00:10:01Z"
        await declares.run_until_idle()  # the engine that has the workflow starts it
        assert await started(declares) == [triggered]
        assert not (await operator.resume_schedule("five")).unwrap().paused
        clock.time_ms += 5 * MINUTE
        await declares.run_until_idle()
        assert await started(declares) == [triggered, "five@2026-01-01T00:15:00Z"]


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda: durably.Schedule("bad", tick_report, cron="61 * * * *"), ["'bad'", "cron"]),
        (lambda: durably.Schedule("bad", tick_report, cron="* * *"), ["'bad'", "5 fields"]),
        (
            lambda: durably.Schedule("bad", tick_report, cron="0 3 * * *", timezone="Mars/Base"),
            ["'bad'", "time zone", "'Mars/Base'"],
        ),
        (lambda: durably.Schedule("bad", tick_report, every="soon"), ["'bad'", "every"]),
        (lambda: durably.Schedule("bad", tick_report), ["'bad'", "exactly one"]),
        (
            lambda: durably.Schedule("bad", tick_report, every="1h", catch_up="some"),
            ["'bad'", "catch_up"],
        ),
    ],
    ids=["cron-field", "cron-size", "timezone", "every", "neither", "catch-up"],
)
def test_a_bad_schedule_is_one_line_naming_it(make: object, words: list[str]) -> None:
    with pytest.raises(ValueError, match="schedule") as raised:
        make()  # type: ignore[operator]
    message = str(raised.value)
    assert "\n" not in message
    for word in words:
        assert word in message


@pytest.mark.parametrize(
    ("workflow", "words"),
    [
        (no_input, ["'nightly'", "takes no input", "Tick"]),
        (takes_int, ["'nightly'", "takes a int", "Tick"]),
    ],
)
def test_a_workflow_that_takes_no_tick_is_refused_naming_the_schedule(
    tmp_path: Path, workflow: durably.WorkflowDefinition[object, object], words: list[str]
) -> None:
    nightly = durably.Schedule("nightly", workflow, cron="0 3 * * *")
    with pytest.raises(ValueError, match="schedule") as raised:
        Engine([workflow], backend=db_url(tmp_path / "s.db"), schedules=[nightly])
    message = str(raised.value)
    assert "\n" not in message
    for word in words:
        assert word in message
