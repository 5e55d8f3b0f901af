"""The commit planner (``adapters/plan.py``): every shape of unit of work, as a pure function.

Each backend executes plans in one place; what a plan says (creation or fenced update,
rows, alarm, status, lease, consumed messages) is decided here, once, and tested here.
"""

from __future__ import annotations

import json

import pytest

from durably.adapters.plan import (
    CommitPlan,
    Create,
    Fenced,
    Unfenced,
    plan_commit,
    status_tag,
)
from durably.adapters.unit_of_work import (
    CLEAR_ALARM,
    KEEP_ALARM,
    ClearAlarm,
    SetAlarm,
    UnitOfWork,
)
from durably.domain import keys

OWNER = "host:1:me"
LEASE_MS = 30_000
NOW = 1_000


def status(tag: str, **fields: object) -> str:
    return json.dumps({"tag": tag, **fields})


def plan(unit: UnitOfWork, owner: str | None = OWNER) -> CommitPlan:
    return plan_commit("i1", unit, owner, LEASE_MS, NOW)


def test_a_creation_that_starts_running_holds_the_lease_and_arms_its_expiry() -> None:
    unit = UnitOfWork(
        None,
        writes={
            keys.NAME: json.dumps("order"),
            keys.INPUT: "7",
            keys.STATUS: status("Running", running_at=NOW),
        },
    )
    p = plan(unit)
    assert p.write == Create("order", OWNER, NOW + LEASE_MS)
    assert p.status == "Running"
    assert p.alarm == SetAlarm(NOW + LEASE_MS)  # recovered at the lease's end if we die
    assert dict(p.upserts) == unit.writes
    assert (p.clear, p.deletes, p.consume) == (False, (), ())


def test_a_queued_creation_is_nobodys_and_keeps_its_own_alarm() -> None:
    unit = UnitOfWork(
        None,
        writes={keys.NAME: json.dumps("order"), keys.STATUS: status("Queued", queued_at=NOW)},
        alarm=SetAlarm(NOW),
    )
    p = plan(unit)
    assert p.write == Create("order", None, None)
    assert p.alarm == SetAlarm(NOW)


def test_a_step_is_a_fenced_write_of_rows_that_leaves_the_alarm() -> None:
    p = plan(UnitOfWork(None, writes={"step:a:result": '{"value": 1}'}))
    assert p.write == Fenced(OWNER, NOW + LEASE_MS, release=False)
    assert p.status is None
    assert not p.renews  # nothing but the row: backends may skip the lease row
    assert p.alarm is KEEP_ALARM
    assert p.upserts == (("step:a:result", '{"value": 1}'),)


def test_a_pause_releases_the_lease_and_sets_its_alarm() -> None:
    unit = UnitOfWork(
        None,
        writes={
            keys.STATUS: status("Paused", reason="sleep", resume_at=6_000),
            "sleep:sleep#1": '{"resume_at": 6000}',
            keys.RECOVERY_ATTEMPTS: None,
        },
        alarm=SetAlarm(6_000),
    )
    p = plan(unit)
    assert p.write == Fenced(OWNER, NOW + LEASE_MS, release=True)
    assert p.renews
    assert (p.status, p.alarm) == ("Paused", SetAlarm(6_000))
    assert p.deletes == (keys.RECOVERY_ATTEMPTS,)
    assert keys.RECOVERY_ATTEMPTS not in dict(p.upserts)


def test_a_resume_keeps_the_lease_and_moves_the_alarm_to_its_expiry() -> None:
    p = plan(UnitOfWork(None, writes={keys.STATUS: status("Running", running_at=NOW)}))
    assert p.write == Fenced(OWNER, NOW + LEASE_MS, release=False)
    assert p.renews
    assert p.alarm == SetAlarm(NOW + LEASE_MS)


def test_the_end_with_a_purge_schedule_releases_and_sets_the_purge_alarm() -> None:
    unit = UnitOfWork(
        None,
        writes={
            keys.OUTPUT: '"done"',
            keys.STATUS: status("Completed", completed_at=NOW),
            keys.PURGE_AT: "61000",
            keys.PENDING_RESUME_AT: None,
        },
        alarm=SetAlarm(61_000),
    )
    p = plan(unit)
    assert p.write.release  # type: ignore[union-attr]
    assert (p.status, p.alarm) == ("Completed", SetAlarm(61_000))
    assert dict(p.upserts)[keys.PURGE_AT] == "61000"
    assert p.deletes == (keys.PENDING_RESUME_AT,)


def test_an_end_without_purge_clears_the_alarm() -> None:
    unit = UnitOfWork(
        None, writes={keys.STATUS: status("Failed", failed_at=NOW)}, alarm=CLEAR_ALARM
    )
    assert plan(unit).alarm == ClearAlarm()


def test_consumed_messages_are_part_of_the_plan_in_order() -> None:
    unit = UnitOfWork(
        None,
        writes={keys.STATUS: status("Cancelled", cancelled_at=NOW, reason="stop")},
        consumed={3, 1},
    )
    p = plan(unit)
    assert p.consume == (1, 3)
    assert p.status == "Cancelled"


def test_a_purge_clears_everything_so_it_deletes_and_consumes_nothing_more() -> None:
    unit = UnitOfWork(
        None,
        writes={keys.STATUS: status("Completed", completed_at=1), "gone": None},
        cleared=True,
        consumed={2},
    )
    p = plan(unit)
    assert p.clear
    assert (p.deletes, p.consume) == ((), ())
    assert dict(p.upserts) == {keys.STATUS: status("Completed", completed_at=1)}
    assert isinstance(p.write, Fenced)  # a name written after a clear is no creation


def test_without_an_owner_nothing_is_fenced() -> None:
    p = plan(UnitOfWork(None, writes={keys.STATUS: status("Running")}), owner=None)
    assert p.write == Unfenced()
    assert p.alarm is KEEP_ALARM  # no lease, so no lease expiry to arm


@pytest.mark.parametrize(
    ("text", "tag"),
    [(None, None), ('{"tag": "Paused"}', "Paused"), ("[1]", None), ('{"tag": 3}', None)],
)
def test_status_tag_reads_the_tag_of_a_stored_status(text: str | None, tag: str | None) -> None:
    assert status_tag(text) == tag


def test_a_unit_merged_into_an_open_one_keeps_every_change() -> None:
    open_unit = UnitOfWork(None, writes={"a": "1"})
    open_unit.merge(UnitOfWork(None, writes={"b": "2"}, alarm=SetAlarm(5), consumed={4}))
    open_unit.merge(UnitOfWork(None, cleared=True))
    open_unit.merge(UnitOfWork(None, writes={"c": "3"}))
    assert open_unit.cleared
    assert open_unit.writes == {"c": "3"}
    assert open_unit.alarm == SetAlarm(5)
    assert open_unit.consumed == {4}
    assert not open_unit.is_empty()
    assert UnitOfWork(None).is_empty()
