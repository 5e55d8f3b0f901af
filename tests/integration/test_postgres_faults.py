"""Four worker processes over one PostgreSQL schema; one is killed, one is paused.

architecture.md, "Scale-out"; semantics.md section 7. 500 queued workflows of 10
steps are shared by 4 workers (``run_worker(concurrency=25)``, a 1.5 s lease renewed
every 300 ms). Each step appends ``"<instance> <step> <pid>"`` to a shared log
(``O_APPEND`` + fsync) before it returns, and returns ``[value, pid]``, so the stored
result of every step says which run committed it. Mid-run, one worker is SIGKILLed
and another is SIGSTOPped until its instances have been taken over (at least as long
as a lease, longer when the others need time to get to them), then SIGCONTed.

Then: all 500 complete with the right outputs; every step committed exactly once (the
run whose pid is in the stored result ran it once); every other run of a step is one
in flight in the killed or the paused worker when it stopped (at most one such step
per instance and worker, only for instances that worker held); the paused worker's
late commits were refused (``LeaseLost``, which it counts in its log and says at
exit); every stored status agrees with the instances table, no lease or alarm is left.

This file is also the worker: ``python test_postgres_faults.py worker URL``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import signal
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import psycopg
import pytest
from psycopg import sql

import durably
from durably.adapters.clock import ManualClock
from durably.adapters.postgres import PostgresHost
from durably.domain.lease import LeaseHold
from durably.domain.results import ok
from durably.engine import Engine, Lease
from tests.integration.pg_support import (
    acquire_database,
    drop_schema,
    engine_url,
    release_database,
)
from tests.integration.support import ChildProcess, append_line, read_lines, spawn

pytestmark = pytest.mark.timeout(120)

INSTANCES = 500
STEPS = 10
WORKERS = 4
CONCURRENCY = 25
LEASE = Lease(duration="1.5s", renew_every="300ms")
KILL_AFTER = 100  # completed instances when the first worker is SIGKILLed
STOP_AFTER = 175  # completed instances when the second one is SIGSTOPped
MIN_PAUSE_S = 3.0  # at least twice the lease
MAX_PAUSE_S = 40.0
DEADLINE_S = 90.0
REFUSED = "no longer held"  # the LeaseLost message of a fenced commit


@attrs.frozen
class Job:
    """One instance's input: its number and the shared log."""

    n: int
    log: str


def step_value(n: int, index: int) -> int:
    """What step ``index`` of instance ``n`` returns (with its pid)."""
    return n * STEPS + index


def expected_output(n: int) -> int:
    """The output of instance ``n``."""
    return sum(step_value(n, i) for i in range(STEPS))


def _logged(log: str, index: int, n: int) -> Callable[[], Awaitable[list[int]]]:
    async def run() -> list[int]:
        await asyncio.sleep(random.uniform(0.001, 0.004))
        info = durably.step_info()
        append_line(log, f"{info.workflow_id} s{index} {os.getpid()}\n")
        return [step_value(n, index), os.getpid()]

    return run


@durably.workflow(name="pg_faults")
async def ten_steps(job: Job) -> int:
    """Ten logged steps; returns the sum of their values."""
    total = 0
    for i in range(STEPS):
        value, _pid = await durably.step(f"s{i}", _logged(job.log, i, job.n))
        total += value
    return total


# -- the worker process ---------------------------------------------------------------------


class _RefusedCounter(logging.Handler):
    """Counts the log records of refused (fenced) commits."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.refused = 0

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if record.exc_info is not None:
            text += logging.Formatter().formatException(record.exc_info)
        if REFUSED in text:
            self.refused += 1


async def _worker(url: str) -> int:
    """Say ``ready``, wait for ``go``, work until ``stop``; say ``refused <n>``."""
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    counter = _RefusedCounter()
    logging.getLogger("durably").addHandler(counter)
    loop = asyncio.get_running_loop()
    async with Engine([ten_steps], backend=url, lease=LEASE, poll_interval="200ms") as engine:
        print("ready", flush=True)
        if (await loop.run_in_executor(None, sys.stdin.readline)).strip() != "go":
            return 3
        stop = asyncio.Event()

        async def wait_for_stop() -> None:
            await loop.run_in_executor(None, sys.stdin.readline)
            stop.set()

        watcher = loop.create_task(wait_for_stop())
        await engine.run_worker(concurrency=CONCURRENCY, stop=stop)
        await watcher
    print(f"refused {counter.refused}", flush=True)
    return 0


# -- the test ---------------------------------------------------------------------------------


@pytest.fixture
def schema_url() -> Iterator[tuple[str, str]]:
    """A fresh schema in the test database: ``(dsn, schema)``, dropped after."""
    dsn = acquire_database()
    schema = f"f_{os.urandom(6).hex()}"
    try:
        yield dsn, schema
    finally:
        try:
            drop_schema(dsn, schema)
        finally:
            release_database()


class _Db:
    """Reads behind the engines' backs, on a synchronous connection."""

    def __init__(self, dsn: str, schema: str) -> None:
        self.conn = psycopg.connect(dsn, autocommit=True)
        self.schema = schema

    def rows(self, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        text = sql.SQL(query).format(s=sql.Identifier(self.schema))
        return self.conn.execute(text, params).fetchall()

    def completed(self) -> int:
        return int(self.rows("SELECT count(*) FROM {s}.instances WHERE status = 'Completed'")[0][0])

    def held_by(self, pid: int) -> set[str]:
        rows = self.rows("SELECT id FROM {s}.instances WHERE lease_owner LIKE %s", (f"%:{pid}:%",))
        return {str(r[0]) for r in rows}

    def taken_over(self, ids: set[str], pid: int) -> set[str]:
        rows = self.rows(
            "SELECT id FROM {s}.instances WHERE id = ANY(%s)"
            " AND lease_owner IS NOT NULL AND lease_owner NOT LIKE %s",
            (sorted(ids), f"%:{pid}:%"),
        )
        return {str(r[0]) for r in rows}


@pytest.fixture
def db(schema_url: tuple[str, str]) -> Iterator[_Db]:
    """A synchronous connection to the test's schema, closed after."""
    reader = _Db(*schema_url)
    try:
        yield reader
    finally:
        reader.conn.close()


def _run_since(log: Path, offset: int, ids: set[str], pid: int) -> set[str]:
    """Those of ``ids`` with a step logged after ``offset`` by a process other than ``pid``."""
    with log.open("rb") as f:
        f.seek(offset)
        lines = f.read().decode(errors="replace").splitlines()
    found = set()
    for line in lines:
        parts = line.split()
        if len(parts) == 3 and parts[0] in ids and parts[2] != str(pid):
            found.add(parts[0])
    return found


async def _wait_until(what: str, check: Callable[[], bool], within: float) -> None:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within}s waiting until {what}")
        await asyncio.sleep(0.02)


async def test_killed_and_paused_workers_lose_nothing_and_commit_nothing_twice(
    tmp_path: Path, schema_url: tuple[str, str], db: _Db
) -> None:
    began = time.monotonic()
    dsn, schema = schema_url
    url, log = engine_url(dsn, schema), tmp_path / "steps.log"
    ids = [f"job-{n:03d}" for n in range(INSTANCES)]
    async with Engine([ten_steps], backend=url, lease=LEASE) as engine:
        for start in range(0, INSTANCES, 100):
            queued = await asyncio.gather(
                *(
                    engine.queue(ten_steps, Job(n, str(log)), id=ids[n])
                    for n in range(start, start + 100)
                )
            )
            assert all(not q.unwrap().completed for q in queued)

    workers: list[ChildProcess] = [
        spawn(Path(__file__).name, ["worker", url], tmp_path) for _ in range(WORKERS)
    ]
    killed, paused = workers[0], workers[1]
    try:
        for worker in workers:
            worker.expect("ready")
        for worker in workers:
            worker.send("go")

        await _wait_until(
            f"{KILL_AFTER} completed", lambda: db.completed() >= KILL_AFTER, DEADLINE_S
        )
        killed.kill()
        held_by_killed = db.held_by(killed.pid)
        assert held_by_killed, "the killed worker held no instance"

        await _wait_until(
            f"{STOP_AFTER} completed", lambda: db.completed() >= STOP_AFTER, DEADLINE_S
        )
        paused.signal(signal.SIGSTOP)
        stopped_at = time.monotonic()
        logged_before_stop = log.stat().st_size
        held_by_paused = db.held_by(paused.pid)
        assert held_by_paused, "the paused worker held no instance"
        # Its leases expire after 1.5 s; the others take its instances over once they
        # have run what was due before them. Resume it only after a takeover.
        await asyncio.sleep(MIN_PAUSE_S)

        def taken_over() -> set[str]:
            # Leased by another worker now, or already finished by one (a taken-over
            # instance may complete, and give its lease back, between two looks).
            return db.taken_over(held_by_paused, paused.pid) | _run_since(
                log, logged_before_stop, held_by_paused, paused.pid
            )

        await _wait_until(
            "another worker took over an instance of the paused one",
            lambda: bool(taken_over()),
            MAX_PAUSE_S,
        )
        await asyncio.sleep(0.3)
        taken = taken_over()
        paused.signal(signal.SIGCONT)
        pause = time.monotonic() - stopped_at

        await _wait_until("all completed", lambda: db.completed() >= INSTANCES, DEADLINE_S)
    finally:
        for worker in workers[1:]:
            if worker.proc.poll() is None:
                os.kill(worker.pid, signal.SIGCONT)
                with contextlib.suppress(BrokenPipeError):
                    worker.send("stop")
        codes = {w.pid: w.wait(timeout=30) for w in workers[1:]}
        if killed.proc.poll() is None:
            killed.kill()
    # (After ``wait``, a child's stderr is read from its file: its handle is closed.)
    errors = {w.pid: w.stderr_path.read_text(errors="replace") for w in workers}
    assert codes == {w.pid: 0 for w in workers[1:]}, errors
    refused = {
        w.pid: int(next(x for x in w.lines if x.startswith("refused")).split()[1])
        for w in workers[1:]
    }
    print(
        f"pause {pause:.1f}s, {len(taken)} of {len(held_by_paused)} instances of the paused "
        f"worker taken over; {len(held_by_killed)} held by the killed one; refused {refused}"
    )
    # The paused worker's late commits were refused: a fenced commit, not a silent write.
    assert refused[paused.pid] >= 1, errors[paused.pid]
    assert REFUSED in errors[paused.pid]
    for pid, text in errors.items():  # no heartbeat failed, nothing deadlocked
        assert "renewal failed" not in text, text
        assert "deadlock" not in text.lower(), text
        if pid != paused.pid:
            assert REFUSED not in text, f"a commit of healthy worker {pid} was refused"

    # -- every instance completed with the right output ----------------------------------------
    async with Engine([ten_steps], backend=url, lease=LEASE) as engine:
        completed = (await engine.list(status="Completed", limit=10_000)).unwrap()
        assert sorted(s.id for s in completed) == ids
        for n in (0, 1, 250, INSTANCES - 1):
            assert (await engine.result(ids[n])).unwrap() == expected_output(n)
            names = [r.name for r in (await engine.steps(ids[n])).unwrap()]
            assert names == [f"s{i}" for i in range(STEPS)]
    outputs = {
        str(iid): json.loads(value)
        for iid, value in db.rows(
            "SELECT instance_id, value::text FROM {s}.kv WHERE key = 'workflow:output'"
        )
    }
    assert outputs == {iid: expected_output(n) for n, iid in enumerate(ids)}

    # -- the stored state is consistent: one status, no lease, no alarm ---------------------
    rows = db.rows(
        "SELECT i.id, i.status, i.lease_owner, a.due_at, kv.value->>'tag' FROM {s}.instances i"
        " LEFT JOIN {s}.alarms a ON a.instance_id = i.id"
        " LEFT JOIN {s}.kv ON kv.instance_id = i.id AND kv.key = 'workflow:status'"
    )
    assert len(rows) == INSTANCES
    bad = [r for r in rows if r[1:] != ("Completed", None, None, "Completed")]
    assert bad == [], bad[:5]

    # -- each step committed once; the other runs were in flight in the faulty workers ------
    committed: dict[tuple[str, str], int] = {}
    number = {iid: n for n, iid in enumerate(ids)}
    for iid, key, value in db.rows(
        "SELECT instance_id, key, value::text FROM {s}.kv WHERE key LIKE 'step:%%:result'"
    ):
        step = str(key).split(":")[1]
        stored_value, pid = json.loads(value)["value"]
        assert stored_value == step_value(number[str(iid)], int(step[1:]))
        committed[(str(iid), step)] = int(pid)
    expected_keys = {(iid, f"s{i}") for iid in ids for i in range(STEPS)}
    assert set(committed) == expected_keys

    runs: defaultdict[tuple[str, str], list[int]] = defaultdict(list)
    for line in read_lines(log):
        iid, step, pid_text = line.split()
        runs[(iid, step)].append(int(pid_text))
    assert set(runs) == expected_keys
    worker_pids = {w.pid for w in workers}
    assert set().union(*map(set, runs.values())) <= worker_pids, "only the workers ran steps"
    faulty = {killed.pid: held_by_killed, paused.pid: held_by_paused}
    extra: Counter[tuple[str, int]] = Counter()  # (instance, faulty pid) -> steps run again
    for (iid, step), pids in runs.items():
        winner = committed[(iid, step)]
        assert pids.count(winner) == 1, f"{iid} {step}: committed by {winner}, ran in {pids}"
        others = list(pids)
        others.remove(winner)
        for pid in others:
            assert pid in faulty, f"{iid} {step} ran again in healthy worker {pid}: {pids}"
            assert iid in faulty[pid], f"{iid} {step}: pid {pid} did not hold it when it stopped"
            extra[(iid, pid)] += 1
        assert len(others) == len(set(others)), f"{iid} {step} ran {pids}"
    over = {key: n for key, n in extra.items() if n > 1}
    assert over == {}, f"more than the one step in flight ran again: {over}"
    twice = sum(extra.values())
    assert twice <= 2 * CONCURRENCY
    share = Counter(p for pids in runs.values() for p in pids)
    print(f"steps run per worker pid: {dict(share)}; steps run twice: {twice}")
    assert set(share) == worker_pids, "every worker ran steps"
    took = time.monotonic() - began
    print(f"took {took:.1f}s")


async def test_renew_never_waits_behind_a_commit_in_flight(schema_url: tuple[str, str]) -> None:
    """A heartbeat must not wait for the rows a grouped commit of its owner has locked.

    A commit transaction locks the instance rows of its batch in its own order; a renew
    that waited for them while holding others deadlocked against it (PostgreSQL breaks
    the cycle after ``deadlock_timeout``, failing the renew or the whole batch).
    """
    dsn, schema = schema_url
    host = PostgresHost(dsn, schema=schema, clock=ManualClock(1_000))
    await host.open()
    tx = await psycopg.AsyncConnection.connect(dsn)
    try:
        for iid in ("a", "b"):  # two instances Running under this owner's lease
            status = {"tag": "Running", "running_at": 1_000}
            runtime = host.runtime(iid, LeaseHold("me", 10_000, held=False))
            ok(await runtime.storage.put_batch({"workflow:name": "wf", "workflow:status": status}))
        instances = sql.SQL("{}.instances").format(sql.Identifier(schema))
        lock = sql.SQL("UPDATE {} SET updated_at = 2 WHERE id = %s AND lease_owner = 'me'")
        await tx.execute(lock.format(instances), ("b",))  # a batch in flight holds b
        await asyncio.wait_for(host.renew("me", 5_000, 10_000), timeout=0.5)
        await tx.execute(lock.format(instances), ("a",))  # ... and goes on to a: no deadlock
        await tx.commit()
        expiry = sql.SQL("SELECT id, lease_expires_at FROM {} ORDER BY id").format(instances)
        async with await psycopg.AsyncConnection.connect(dsn) as conn:
            rows = await (await conn.execute(expiry)).fetchall()
            assert rows == [("a", 15_000), ("b", 11_000)]  # b, locked, was skipped
            await host.renew("me", 6_000, 10_000)  # and is extended at the next beat
            rows = await (await conn.execute(expiry)).fetchall()
            assert rows == [("a", 16_000), ("b", 16_000)]
    finally:
        await tx.close()
        await host.close()


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "worker":
        sys.exit(asyncio.run(_worker(sys.argv[2])))
    sys.exit(f"usage: {sys.argv[0]} worker URL")
