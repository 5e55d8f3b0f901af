"""Two worker processes share one SQLite file: every step of 200 workflows runs exactly once.

architecture.md, "Scale-out": workers claim due instances with leases; an instance
is run by one worker at a time, and every commit is fenced by the lease.
"""

from __future__ import annotations

import asyncio
import os
from collections import Counter, defaultdict
from pathlib import Path

import pytest
from returns.result import Failure

from durably.domain.errors import WorkflowCancelledError
from durably.domain.status import Cancelled
from durably.engine import Engine
from tests.integration import crash_child
from tests.integration.support import (
    db_url,
    read_lines,
    spawn,
    stranded_problems,
    wait_for_line,
)
from tests.integration.two_workers_child import LEASE, STEP_NAMES, Job, expected_output, fan_out

pytestmark = pytest.mark.timeout(90)

INSTANCES = 200


async def test_two_worker_processes_run_every_step_exactly_once(tmp_path: Path) -> None:
    db, log = tmp_path / "shared.db", tmp_path / "steps.log"
    ids = [f"job-{n:03d}" for n in range(INSTANCES)]
    async with Engine([fan_out], backend=db_url(db), lease=LEASE) as engine:
        for n, iid in enumerate(ids):
            queued = (await engine.queue(fan_out, Job(n, str(log)), id=iid)).unwrap()
            assert not queued.completed
        assert len((await engine.list(status="Queued", limit=1000)).unwrap()) == INSTANCES

    workers = [
        spawn("two_workers_child.py", [str(db), str(INSTANCES), "60"], tmp_path) for _ in range(2)
    ]
    for worker in workers:
        worker.expect("ready")
    for worker in workers:
        worker.send("go")
    for worker in workers:
        assert worker.wait(timeout=75) == 0, worker.stderr()
        assert "exit True" in worker.lines, (worker.lines, worker.stderr())

    async with Engine([fan_out], backend=db_url(db), lease=LEASE) as engine:
        completed = (await engine.list(status="Completed", limit=1000)).unwrap()
        assert sorted(s.id for s in completed) == ids
        for n, iid in enumerate(ids):
            assert (await engine.result(iid)).unwrap() == expected_output(n)
            assert [r.name for r in (await engine.steps(iid)).unwrap()] == list(STEP_NAMES)
    assert stranded_problems(db) == []

    runs: Counter[tuple[str, str]] = Counter()
    pids_of: defaultdict[str, set[int]] = defaultdict(set)
    for line in read_lines(log):
        iid, step, pid = line.split()
        runs[(iid, step)] += 1
        pids_of[iid].add(int(pid))
    expected = {(iid, step) for iid in ids for step in STEP_NAMES}
    assert set(runs) == expected
    twice = {key: n for key, n in runs.items() if n != 1}
    assert twice == {}, f"steps that ran more than once: {twice}"
    shared = {iid: pids for iid, pids in pids_of.items() if len(pids) != 1}
    assert shared == {}, f"instances run by both workers: {shared}"
    worker_pids = {w.pid for w in workers}
    assert set().union(*pids_of.values()) <= worker_pids, "only the workers ran steps"
    share = Counter(next(iter(pids)) for pids in pids_of.values())
    print(f"instances per worker pid: {dict(share)}")
    assert os.getpid() not in share
    assert len(share) == 2, f"one worker did all the work: {dict(share)}"


async def test_start_of_one_id_from_two_engines_at_once_is_idempotent(tmp_path: Path) -> None:
    """Two engines (two connections, two lease owners: two processes' worth) race to create
    one id: the unique key lets one create it, and the other answers with that instance."""
    db, log = tmp_path / "race.db", tmp_path / "steps.log"
    url = db_url(db)
    async with (
        Engine([fan_out], backend=url, lease=LEASE) as first,
        Engine([fan_out], backend=url, lease=LEASE) as second,
    ):
        for call in ("start", "queue"):
            iid = f"race-{call}"
            results = await asyncio.gather(
                getattr(first, call)(fan_out, Job(1, str(log)), id=iid),
                getattr(second, call)(fan_out, Job(2, str(log)), id=iid),
            )
            answers = [r.unwrap() for r in results]  # neither may fail
            assert [a.id for a in answers] == [iid, iid]
        await first.run_until_idle()
        for call in ("start", "queue"):
            assert (await second.result(f"race-{call}", timeout="5s")).unwrap() in (
                expected_output(1),
                expected_output(2),
            )
    runs = Counter(tuple(line.split()[:2]) for line in read_lines(log))
    assert runs == Counter({(f"race-{c}", s): 1 for c in ("start", "queue") for s in STEP_NAMES}), (
        "one instance per id, each step run once"
    )


async def test_cancel_from_another_process_stops_the_owner_at_its_next_step(
    tmp_path: Path,
) -> None:
    """The owner (a child process) runs slow steps; this process cancels the instance."""
    db, side, iid = tmp_path / "cancel.db", tmp_path / "side.txt", "far-away"
    child = spawn("crash_child.py", ["fenced", str(db), str(side), iid], tmp_path)
    wait_for_line(Path(f"{side}.begin"), f"2 {child.pid}", timeout=30)
    async with Engine(crash_child.WORKFLOWS, backend=db_url(db), lease=crash_child.LEASE) as e:
        cancelled = (await e.cancel(iid, reason="user pressed stop")).unwrap()
        assert cancelled.cancelled
        assert cancelled.previous_status == "Running"
        assert child.wait(timeout=30) == 0, child.stderr()
        status = (await e.status(iid)).unwrap().status
        assert isinstance(status, Cancelled), status
        assert status.reason == "user pressed stop"
        completed = [r.name for r in (await e.steps(iid)).unwrap()]
        # Step 2 was running when the flag was raised: it may finish; nothing after it runs.
        assert completed == ["s0", "s1", "s2"]
        failure = await e.result(iid)
        assert isinstance(failure, Failure)
        assert isinstance(failure.failure(), WorkflowCancelledError)
    ran = sorted(int(line.split()[0]) for line in read_lines(side))
    assert ran == [0, 1, 2]
    assert any("Cancelled" in line for line in child.lines), child.lines
    assert stranded_problems(db) == []
