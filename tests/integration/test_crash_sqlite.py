"""Crash a process running workflows on a SQLite file (SIGKILL, SIGSTOP); another finishes them.

architecture.md, "Durability points" and "Scale-out"; semantics.md section 7. Each
step appends ``"<index> <pid>"`` to a side file before it returns, so the side file
says which process ran which step how many times: a committed step must never run
again, and at most the one step in flight at the kill may run twice.

The kill delays come from a seeded RNG; the seed is printed (and can be set with
``DURABLY_CRASH_SEED``) so that a failing trial can be replayed.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sqlite3
import time
from collections import Counter
from pathlib import Path

import pytest

from durably.domain.status import Completed, is_terminal
from durably.engine import Engine
from tests.integration import crash_child
from tests.integration.crash_child import LEASE, STEPS, WORKFLOWS, expected_total
from tests.integration.processes import trials
from tests.integration.support import (
    ChildProcess,
    committed_steps,
    db_url,
    spawn,
    step_counts,
    stranded_problems,
    wait_for_line,
)

SEED = int(os.environ.get("DURABLY_CRASH_SEED", str(time.time_ns() % 1_000_000)))
TRIALS = trials(6, 40)  # SIGKILL trials: make test, make chaos

pytestmark = pytest.mark.timeout(60)


def _announce(what: str) -> str:
    text = f"{what} (DURABLY_CRASH_SEED={SEED})"
    print(text)
    return text


async def _finish(engine: Engine, ids: list[str], *, within: float) -> float:
    """Fire due alarms until every instance in ``ids`` is terminal; returns the time taken."""
    started = time.monotonic()
    while True:
        await engine.run_until_idle()
        statuses = [(await engine.status(i)).unwrap().status for i in ids]
        if all(s is not None and is_terminal(s) for s in statuses):
            return time.monotonic() - started
        if time.monotonic() - started > within:
            raise AssertionError(
                f"not finished within {within}s: {dict(zip(ids, statuses, strict=True))}"
            )
        await asyncio.sleep(0.02)


def _indices(names: set[str]) -> set[int]:
    return {int(n[1:]) for n in names}


def _check_side_file(
    side: Path,
    steps: int,
    committed: set[int],
    child: int,
    parent: int,
    *,
    may_repeat: bool,
    context: str,
) -> int | None:
    """Check who ran which step how often; returns the index of the step run twice, if any."""
    counts = step_counts(side)
    by_step: dict[int, Counter[int]] = {i: Counter() for i in range(steps)}
    for (index, pid), n in counts.items():
        assert 0 <= index < steps, f"{context}: unknown step index {index}"
        assert pid in (child, parent), f"{context}: step {index} ran in unknown pid {pid}"
        by_step[index][pid] += n
    assert committed == set(range(len(committed))), (
        f"{context}: steps commit in order, yet the committed set is {sorted(committed)}"
    )
    repeated: list[int] = []
    for index, runs in by_step.items():
        assert sum(runs.values()) >= 1, f"{context}: step {index} never ran"
        if index in committed:
            # Committed before the kill: ran exactly once, in the child, never again.
            assert runs == Counter({child: 1}), f"{context}: committed step {index} ran {runs}"
        else:
            assert runs[parent] == 1, f"{context}: step {index} ran {runs} (parent {parent})"
            assert runs[child] <= 1, f"{context}: step {index} ran {runs} (child {child})"
            if runs[child]:
                repeated.append(index)
    if not may_repeat:
        assert not repeated, f"{context}: steps {repeated} ran twice although none was in flight"
    assert len(repeated) <= 1, f"{context}: several steps ran twice: {repeated}"
    if repeated:
        # Only the step in flight at the kill: the first one whose commit did not happen.
        assert repeated == [len(committed)], (
            f"{context}: step {repeated[0]} ran twice but the step in flight was {len(committed)}"
        )
    return repeated[0] if repeated else None


@pytest.mark.parametrize("trial", TRIALS)
async def test_sigkill_at_a_random_moment_then_a_new_engine_finishes(
    tmp_path: Path, trial: int
) -> None:
    rng = random.Random(SEED * 100 + trial)
    delay = rng.uniform(0.02, 0.35)
    context = _announce(f"trial {trial}: kill {delay * 1000:.0f} ms into the run")
    db, side, iid = tmp_path / "crash.db", tmp_path / "side.txt", f"crash-{trial}"

    child = spawn("crash_child.py", ["run", str(db), str(side), iid], tmp_path)
    child.expect("ready")
    await asyncio.sleep(delay)
    child.kill()

    # Right after the kill, behind the engine's back: nothing is stranded.
    assert stranded_problems(db) == [], context
    committed = committed_steps(db, iid)

    async with Engine(WORKFLOWS, backend=db_url(db), lease=LEASE) as engine:
        before = await engine.status(iid)
        exists = before.unwrap().exists
        if exists:
            # The dead owner's lease is expired at once by open(): no lease-length wait.
            row = await engine.host.instance(iid)
            assert row is not None
            assert row.lease_owner is None, f"{context}: dead owner still holds {row}"
            records_before = {r.name: r for r in (await engine.steps(iid)).unwrap()}
            assert set(records_before) == committed, context
            assert set(before.unwrap().completed_steps) == committed, context
        else:
            # Killed before the start's own commit: nothing ran, nothing is stored.
            assert committed == set(), context
            assert step_counts(side) == Counter(), context
            records_before = {}
            started = await engine.start(crash_child.twenty_steps, str(side), id=iid)
            assert started.unwrap().id == iid
        took = await _finish(engine, [iid], within=20)
        if exists and not is_terminal(before.unwrap().status):
            assert took < LEASE.duration_ms / 1000, f"{context}: recovery waited {took:.2f}s"

        result = await engine.result(iid, timeout="10s")
        assert result.unwrap() == expected_total(STEPS), context
        status = (await engine.status(iid)).unwrap()
        assert isinstance(status.status, Completed), context
        assert list(status.completed_steps) == [f"s{i}" for i in range(STEPS)], context
        records = (await engine.steps(iid)).unwrap()
        assert [r.name for r in records] == [f"s{i}" for i in range(STEPS)], context
        for record in records:
            if record.name in records_before:
                assert record == records_before[record.name], f"{context}: {record.name} rewritten"
        completed = (await engine.list(status="Completed")).unwrap()
        assert [s.id for s in completed] == [iid], context
        assert (await engine.list(status="Running")).unwrap() == [], context

    repeated = _check_side_file(
        side,
        STEPS,
        _indices(committed),
        child.pid,
        os.getpid(),
        may_repeat=True,
        context=context,
    )
    print(f"{context}: {len(committed)} steps committed before the kill, ran twice: {repeated}")
    assert stranded_problems(db) == [], context


async def test_sigkill_while_paused_in_a_sleep(tmp_path: Path) -> None:
    db, side, iid = tmp_path / "crash.db", tmp_path / "side.txt", "sleeper-1"
    child = spawn("crash_child.py", ["pause", str(db), str(side), iid], tmp_path)
    line = child.expect("paused")
    assert "Paused(reason='sleep'" in line, line
    child.kill()
    assert stranded_problems(db) == []
    committed = committed_steps(db, iid)
    assert committed == {"s0", "s1", "s2"}

    async with Engine(WORKFLOWS, backend=db_url(db), lease=LEASE) as engine:
        status = (await engine.status(iid)).unwrap().status
        assert status is not None
        assert status.tag == "Paused"
        await _finish(engine, [iid], within=15)
        assert (await engine.result(iid, timeout="5s")).unwrap() == expected_total(6)
        assert [r.name for r in (await engine.steps(iid)).unwrap()] == [f"s{i}" for i in range(6)]
    _check_side_file(
        side,
        6,
        _indices(committed),
        child.pid,
        os.getpid(),
        may_repeat=False,
        context="paused",
    )
    assert stranded_problems(db) == []


async def test_sigkill_while_queued(tmp_path: Path) -> None:
    db, side, prefix = tmp_path / "crash.db", tmp_path / "side", "queued"
    child = spawn("crash_child.py", ["queue", str(db), str(side), prefix, "3"], tmp_path)
    child.expect("queued")
    child.kill()
    assert stranded_problems(db) == []
    ids = [f"{prefix}-{k}" for k in range(3)]

    async with Engine(WORKFLOWS, backend=db_url(db), lease=LEASE) as engine:
        queued = (await engine.list(status="Queued")).unwrap()
        assert sorted(s.id for s in queued) == ids
        await _finish(engine, ids, within=20)
        for iid in ids:
            assert (await engine.result(iid, timeout="5s")).unwrap() == expected_total(STEPS)
    for k in range(3):
        # Nothing ran before the kill: every step ran exactly once, here.
        counts = step_counts(Path(f"{side}.{k}"))
        assert counts == Counter({(i, os.getpid()): 1 for i in range(STEPS)})
    assert stranded_problems(db) == []


async def test_sigkill_of_a_worker_with_several_instances_in_flight(tmp_path: Path) -> None:
    rng = random.Random(SEED + 7)
    delay = rng.uniform(0.05, 0.4)
    context = _announce(f"worker: kill {delay * 1000:.0f} ms into the run")
    db, side, prefix, n = tmp_path / "crash.db", tmp_path / "side", "w", 4
    child = spawn("crash_child.py", ["worker", str(db), str(side), prefix, str(n)], tmp_path)
    child.expect("ready")
    await asyncio.sleep(delay)
    child.kill()
    assert stranded_problems(db) == [], context
    ids = [f"{prefix}-{k}" for k in range(n)]
    committed = {iid: committed_steps(db, iid) for iid in ids}

    async with Engine(WORKFLOWS, backend=db_url(db), lease=LEASE) as engine:
        took = await _finish(engine, ids, within=20)
        assert took < LEASE.duration_ms / 1000 + 1.5, f"{context}: recovery took {took:.2f}s"
        for iid in ids:
            assert (await engine.result(iid, timeout="5s")).unwrap() == expected_total(STEPS)
    for k, iid in enumerate(ids):
        _check_side_file(
            Path(f"{side}.{k}"),
            STEPS,
            _indices(committed[iid]),
            child.pid,
            os.getpid(),
            may_repeat=True,
            context=f"{context}, {iid}",
        )
    assert stranded_problems(db) == [], context


def _write_locked(db: Path) -> bool:
    conn = sqlite3.connect(str(db), timeout=0, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("ROLLBACK")
        return False
    except sqlite3.OperationalError:
        return True
    finally:
        conn.close()


def _stop_between_transactions(child: ChildProcess, db: Path) -> None:
    """SIGSTOP the child, but never while it holds the database's write lock."""
    for _ in range(50):
        child.signal(signal.SIGSTOP)
        time.sleep(0.01)
        if not _write_locked(db):
            return
        child.signal(signal.SIGCONT)
        time.sleep(0.02)
    raise AssertionError("could not stop the child outside a write transaction")


async def test_a_hung_owner_loses_its_lease_and_cannot_write_after_it_wakes(
    tmp_path: Path,
) -> None:
    """SIGSTOP (not kill): the pid stays alive, so only the lease's expiry frees the instance."""
    db, side, iid = tmp_path / "fenced.db", tmp_path / "side.txt", "fenced-1"
    steps = crash_child.SLOW_STEPS
    child = spawn("crash_child.py", ["fenced", str(db), str(side), iid], tmp_path)
    wait_for_line(Path(f"{side}.begin"), f"2 {child.pid}", timeout=30)
    _stop_between_transactions(child, db)
    try:
        committed = committed_steps(db, iid)
        assert committed == {"s0", "s1"}
        async with Engine(WORKFLOWS, backend=db_url(db), lease=LEASE) as engine:
            row = await engine.host.instance(iid)
            assert row is not None
            assert row.lease_owner is not None, "a live (stopped) owner keeps its lease"
            assert row.lease_owner.split(":")[1] == str(child.pid)
            assert await engine.run_until_idle() == 0, "claimed before the lease expired"
            took = await _finish(engine, [iid], within=20)
            assert took >= 0.5, f"recovered after {took:.2f}s, before the lease could expire"
            assert (await engine.result(iid)).unwrap() == expected_total(steps)
            records = {r.name: r for r in (await engine.steps(iid)).unwrap()}
    finally:
        child.signal(signal.SIGCONT)
    # The woken owner finishes its step in flight, then its commit is refused (fenced).
    assert child.wait(timeout=30) == 0, child.stderr()
    result_line = next(line for line in child.lines if line.startswith("result"))
    assert result_line.startswith("result <Failure"), result_line
    assert "lease" in result_line, result_line

    async with Engine(WORKFLOWS, backend=db_url(db), lease=LEASE) as engine:
        status = (await engine.status(iid)).unwrap()
        assert isinstance(status.status, Completed)
        assert (await engine.result(iid)).unwrap() == expected_total(steps)
        assert {r.name: r for r in (await engine.steps(iid)).unwrap()} == records
    repeated = _check_side_file(
        side, steps, {0, 1}, child.pid, os.getpid(), may_repeat=True, context="fenced"
    )
    assert repeated == 2, "the woken owner ran its step in flight once more (and only that)"
    assert stranded_problems(db) == []
