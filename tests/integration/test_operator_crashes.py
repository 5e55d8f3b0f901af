"""Operator actions survive SIGKILL: ``resume`` of an instance that failed at its third
step once the bug is fixed, and ``fork`` of it from its second step, run by a worker
process killed at a random moment and restarted.

Every step logs ``run <instance> <step> <pid> <time>``. The resumed instance never runs
its first two steps again (committed before it failed) and its third step gets fresh
attempts; the fork never runs the step before the one it was forked from; after the
kill, no step committed by then runs again; both complete.
"""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path

import pytest

from durably.domain.status import Failed
from durably.engine import Engine
from tests.integration.processes import backend_url, trials
from tests.integration.support import ChildProcess, spawn
from tests.integration.test_children_crashes import committed, finish, runs
from tests.integration.worker_child import LEASE, POLL, Fixable, fixable

pytestmark = pytest.mark.timeout(300)

STEPS = 12
TOTAL = sum(range(STEPS))


def start_worker(url: str, folder: Path) -> ChildProcess:
    child = spawn("worker_child.py", [url], folder)
    child.expect("ready")
    return child


async def failed(engine: Engine, iid: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if isinstance((await engine.status(iid)).unwrap().status, Failed):
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"{iid} did not fail: {(await engine.status(iid)).unwrap()}")


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
@pytest.mark.parametrize("trial", trials(1, 10))
async def test_resume_and_fork_across_a_kill(kind: str, trial: int, tmp_path: Path) -> None:
    rng = random.Random(f"operator-{kind}-{trial}")
    side, bug = tmp_path / "runs.log", tmp_path / "bug"
    bug.write_text("present", encoding="utf-8")
    async with (
        backend_url(kind, tmp_path, "ops_crash") as url,
        Engine([fixable], backend=url, lease=LEASE, poll_interval=POLL) as engine,
    ):
        job = Fixable(str(side), STEPS, str(bug))
        (await engine.queue(fixable, job, id="r")).unwrap()
        child = start_worker(url, tmp_path)
        try:
            await failed(engine, "r")
            assert [step for iid, step, _, _ in runs(side)] == ["s0", "s1", "s2"]
            bug.unlink()  # the fix is deployed
            before = len(runs(side))
            (await engine.resume("r", reason="fixed")).unwrap()
            (await engine.fork("r", from_step="s1", new_id="f")).unwrap()
            # The kill comes after 1 to 20 of the 21 runs left (r: s2-s11, f: s1-s11).
            target = before + rng.randint(1, 2 * STEPS - 4)
            deadline = time.monotonic() + 60
            for _ in range(100_000):
                if len(runs(side)) >= target or time.monotonic() > deadline:
                    break
                await asyncio.sleep(rng.uniform(0.0, 0.01))
            child.kill()
            read_at, done = time.time(), await committed(engine)
            child = start_worker(url, tmp_path)
            await finish(engine, "r")
            await finish(engine, "f")
        finally:
            child.kill()
        assert (await engine.result("r")).unwrap() == TOTAL
        assert (await engine.result("f")).unwrap() == TOTAL
        logged = runs(side)
        resumed = [step for iid, step, _, _ in logged[before:] if iid == "r"]
        assert "s0" not in resumed  # kept from before the failure
        assert "s1" not in resumed
        assert resumed[0] == "s2"
        forked = [step for iid, step, _, _ in logged if iid == "f"]
        assert "s0" not in forked  # copied from the instance it forked
        assert forked[0] == "s1"
        assert set(forked) == {f"s{k}" for k in range(1, STEPS)}
        again = [
            (iid, step) for iid, step, _, at in logged if at > read_at and step in done.get(iid, ())
        ]
        assert again == [], f"committed steps ran again after the kill: {again[:5]}"
        [third] = [s for s in (await engine.steps("r")).unwrap() if s.name == "s2"]
        assert third.completed_at is not None
        assert third.attempt == 1  # fresh attempts after the resume
