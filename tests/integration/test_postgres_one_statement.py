"""A unit committed alone is one statement on PostgreSQL: it must do what the transaction does.

Every commit of a workflow run alone (its start, its end, a pause) is committed by one
statement (``adapters/postgres/single.py``) instead of a transaction of several. Each
shape of unit is committed both ways, on two instances in the same state, and the rows
that result (instance, key-value, alarm) must be the same; a refused unit (an instance
that exists, a lease that is gone) must write nothing either way.

When nothing else is ready to run, such a statement is run on a blocking connection,
without leaving the event loop: not for long (a timer still fires during a long run of
fast steps), and never waiting for a row lock (it goes back through the loop).
"""

from __future__ import annotations

import asyncio
import functools
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import psycopg
import pytest
from tests.integration.pg_support import (
    acquire_database,
    drop_schema,
    engine_url,
    postgres_host,
    release_database,
)

import durably
from durably.adapters.clock import ManualClock
from durably.adapters.commit_group import Waiting
from durably.adapters.postgres import PostgresHost
from durably.adapters.postgres.host import CHANNEL
from durably.adapters.postgres.single import fits_one_statement
from durably.adapters.unit_of_work import UNCHANGED, Unchanged, UnitOfWork
from durably.domain import keys
from durably.domain.errors import StorageError
from durably.engine import Engine

pytestmark = pytest.mark.timeout(60)

OWNER, OTHER = "host:1:owner", "host:2:other"
LEASE_MS = 30_000


def _status(tag: str) -> str:
    return json.dumps({"tag": tag, "at": 1})


@pytest.fixture
async def host(request: pytest.FixtureRequest) -> AsyncIterator[PostgresHost]:
    async with postgres_host(f"single_{id(request)}", clock=ManualClock(1_000)) as postgres:
        yield postgres


def _unit(writes: dict[str, str | None], alarm: int | Unchanged | None = UNCHANGED) -> UnitOfWork:
    return UnitOfWork(owner=object(), writes=dict(writes), alarm=alarm)


async def _commit(
    host: PostgresHost, iid: str, unit: UnitOfWork, owner: str | None, *, single: bool
) -> Waiting:
    """Commit ``unit`` by the one statement or by the transaction, as the host would."""
    waiting = Waiting(iid, unit, owner, LEASE_MS, None)
    errors: list[BaseException | None] = [None]
    if single:
        assert fits_one_statement(waiting)
        await host._commit_single([waiting], errors)
    else:
        await host._transaction([waiting], errors)
    return waiting


async def _state(host: PostgresHost, iid: str) -> dict[str, Any]:
    """Every row of instance ``iid``, with its id left out (to compare two instances)."""
    async with host._pool.connection() as conn:
        cur = await conn.execute(
            f"SELECT workflow, status, created_at, updated_at, lease_owner, lease_expires_at"
            f" FROM {host.instances} WHERE id = %s",
            (iid,),
        )
        row = await cur.fetchone()
        cur = await conn.execute(
            f"SELECT key, value FROM {host.kv} WHERE instance_id = %s ORDER BY key", (iid,)
        )
        kv = await cur.fetchall()
        cur = await conn.execute(f"SELECT due_at FROM {host.alarms} WHERE instance_id = %s", (iid,))
        alarm = await cur.fetchone()
    return {"row": row, "kv": kv, "alarm": alarm}


def _create(tag: str) -> UnitOfWork:
    return _unit(
        {
            keys.NAME: json.dumps("wf"),
            keys.INPUT: json.dumps({"n": 1}),
            keys.STATUS: _status(tag),
        },
        alarm=5_000 if tag == "Queued" else UNCHANGED,
    )


# Each case: the units that set the instance up (committed by the transaction), then
# the unit under test, with its owner.
CASES: dict[str, tuple[list[tuple[UnitOfWork, str | None]], UnitOfWork, str | None]] = {
    "create running under a lease": ([], _create("Running"), OWNER),
    "create queued with an alarm": ([], _create("Queued"), None),
    "end: completed, result written, alarm deleted, lease released": (
        [(_create("Running"), OWNER)],
        _unit(
            {keys.STATUS: _status("Completed"), "result": json.dumps(45), "scratch": None},
            alarm=None,
        ),
        OWNER,
    ),
    "pause: sleeping with an alarm, lease released": (
        [(_create("Running"), OWNER)],
        _unit({keys.STATUS: _status("Sleeping"), "sleep:a": json.dumps(1)}, alarm=9_000),
        OWNER,
    ),
    "fenced rows without a status, a key deleted": (
        [(_create("Running"), OWNER), (_unit({"scratch": json.dumps([1])}), OWNER)],
        _unit({"scratch": None, "other": json.dumps({"a": "b"})}),
        OWNER,
    ),
    "still running: the alarm follows the lease": (
        [(_create("Running"), OWNER)],
        _unit({keys.STATUS: _status("Running"), "x": json.dumps(1)}),
        OWNER,
    ),
}


@pytest.mark.parametrize("case", list(CASES))
async def test_one_statement_writes_what_the_transaction_writes(
    host: PostgresHost, case: str
) -> None:
    setup, unit, owner = CASES[case]
    for iid, single in (("by-transaction", False), ("by-statement", True)):
        for setup_unit, setup_owner in setup:
            copy = _unit(setup_unit.writes, setup_unit.alarm)
            await _commit(host, iid, copy, setup_owner, single=False)
        waiting = await _commit(host, iid, _unit(unit.writes, unit.alarm), owner, single=single)
        assert waiting.observed is not None or owner is None
    by_transaction = await _state(host, "by-transaction")
    by_statement = await _state(host, "by-statement")
    assert by_statement == by_transaction
    assert by_statement["row"] is not None


@pytest.mark.parametrize("single", [False, True], ids=["transaction", "statement"])
async def test_a_second_creation_is_refused_and_changes_nothing(
    host: PostgresHost, single: bool
) -> None:
    await _commit(host, "taken", _create("Running"), OWNER, single=False)
    before = await _state(host, "taken")
    second = _unit({keys.NAME: json.dumps("other"), keys.INPUT: json.dumps("x")}, alarm=1)
    with pytest.raises(StorageError, match="already exists"):
        await _commit(host, "taken", second, OTHER, single=single)
    assert await _state(host, "taken") == before


@pytest.mark.parametrize("single", [False, True], ids=["transaction", "statement"])
async def test_a_unit_whose_lease_is_gone_writes_nothing(host: PostgresHost, single: bool) -> None:
    await _commit(host, "lost", _create("Running"), OWNER, single=False)
    before = await _state(host, "lost")
    late = _unit({keys.STATUS: _status("Completed"), "result": json.dumps(1)}, alarm=None)
    with pytest.raises(StorageError, match="no longer held"):
        await _commit(host, "lost", late, OTHER, single=single)
    assert await _state(host, "lost") == before


async def test_the_fenced_statement_reads_back_a_cancel_from_elsewhere(host: PostgresHost) -> None:
    await _commit(host, "c", _create("Running"), OWNER, single=False)
    await _commit(host, "c", _unit({keys.CANCELLED: json.dumps(True)}), None, single=False)
    waiting = await _commit(host, "c", _unit({"step": json.dumps(1)}), OWNER, single=True)
    assert waiting.observed is not None
    assert waiting.observed[keys.CANCELLED] == "true"


async def test_an_alarm_set_by_one_statement_is_announced(host: PostgresHost) -> None:
    async with await psycopg.AsyncConnection.connect(host.dsn, autocommit=True) as listener:
        await listener.execute(f"LISTEN {CHANNEL}")
        await _commit(host, "q", _create("Queued"), None, single=True)
        heard = [n async for n in listener.notifies(timeout=5, stop_after=1)]
    assert [n.channel for n in heard] == [CHANNEL]


async def test_a_unit_alone_is_committed_by_one_statement(host: PostgresHost) -> None:
    """Through the host's own commit: a start and an end alone take the statement path."""
    used: list[str] = []
    for name in ("_commit_single", "_transaction"):
        real = getattr(host, name)

        async def spy(*args: Any, real: Any = real, name: str = name) -> None:
            used.append(name)
            await real(*args)

        setattr(host, name, spy)
    await host.commit("alone", _create("Running"), OWNER, LEASE_MS)
    end = _unit({keys.STATUS: _status("Completed")}, alarm=None)
    await host.commit("alone", end, OWNER, LEASE_MS)
    assert used == ["_commit_single", "_commit_single"]
    # Two units at once are one transaction (a savepoint each), as before.
    await asyncio.gather(
        host.commit("a", _create("Running"), OWNER, LEASE_MS),
        host.commit("b", _create("Running"), OWNER, LEASE_MS),
    )
    assert used[2:] == ["_transaction"]
    row = await host.instance("alone")
    assert row is not None
    assert (row.status, row.lease_owner) == ("Completed", None)


async def test_units_that_arrive_during_an_inline_commit_wait_and_then_form_one_group(
    host: PostgresHost,
) -> None:
    """A unit committed when nothing else is ready runs in its caller's task; others
    that arrive meanwhile are not committed beside it but together, right after."""
    batches: list[list[str]] = []
    in_flight = [0, 0]  # now, most at once
    real = host._commit_batch
    late: list[asyncio.Task[Any]] = []

    async def spy(batch: list[Waiting], **kwargs: Any) -> list[BaseException | None]:
        batches.append([w.instance_id for w in batch])
        if not late:  # the first (inline) commit: two more units arrive while it runs
            late.extend(
                asyncio.create_task(host.commit(iid, _create("Running"), OWNER, LEASE_MS))
                for iid in ("b", "c")
            )
        in_flight[0] += 1
        in_flight[1] = max(in_flight)
        try:
            return await real(batch, **kwargs)
        finally:
            in_flight[0] -= 1

    host._commit_batch = spy  # type: ignore[method-assign]
    await host.commit("a", _create("Running"), OWNER, LEASE_MS)
    await asyncio.gather(*late)
    assert batches == [["a"], ["b", "c"]]
    assert in_flight[1] == 1
    for iid in ("a", "b", "c"):
        row = await host.instance(iid)
        assert row is not None
        assert row.lease_owner == OWNER


def _count_blocking(host: PostgresHost) -> list[bool]:
    """Record each commit tried on the blocking connection (True: it ran there)."""
    calls: list[bool] = []
    real = host._statements.run_blocking

    def spy(query: str, params: Any, operation: str = "commit") -> Any:
        rows = real(query, params, operation=operation)
        if operation == "commit":
            calls.append(rows is not None)
        return rows

    host._statements.run_blocking = spy  # type: ignore[method-assign]
    return calls


async def test_a_statement_that_waits_for_a_row_lock_goes_back_through_the_loop(
    host: PostgresHost,
) -> None:
    await host.commit("locked", _create("Running"), OWNER, LEASE_MS)
    calls = _count_blocking(host)
    ticks: list[float] = []

    async def ticker() -> None:
        while True:
            await asyncio.sleep(0.005)
            ticks.append(time.monotonic())

    async with await psycopg.AsyncConnection.connect(host.dsn) as other:
        # Another transaction holds the instance's row lock for a while.
        await other.execute(f"SELECT 1 FROM {host.instances} WHERE id = 'locked' FOR UPDATE")
        ticking = asyncio.create_task(ticker())
        await asyncio.sleep(0.02)
        host._statements.last_turn = time.monotonic()  # so that the next commit is made blocking
        commit = asyncio.create_task(
            host.commit("locked", _unit({"step": json.dumps(1)}), OWNER, LEASE_MS)
        )
        await asyncio.sleep(0.4)
        assert not commit.done()  # still waiting for the lock, through the loop
        during = len(ticks)
        await other.rollback()
        await commit
        ticking.cancel()
    assert calls == [False]  # tried blocking once, gave up at the lock timeout
    assert during >= 20  # the loop kept running while the commit waited (0.4 s / 5 ms)
    async with host._pool.connection() as conn:
        cur = await conn.execute(
            f"SELECT value FROM {host.kv} WHERE instance_id = 'locked' AND key = 'step'"
        )
        assert await cur.fetchall() == [(1,)]


async def test_a_long_run_of_fast_steps_lets_a_timer_fire(request: pytest.FixtureRequest) -> None:
    steps = 300
    fired: list[int] = []
    seen: dict[int, int] = {}

    def done(i: int) -> int:
        if i in (20, steps - 1):
            seen[i] = len(fired)  # how often the timer fired before this step
        return i

    @durably.workflow
    async def fast(_: None) -> int:
        for i in range(steps):
            await durably.step(f"s{i}", functools.partial(done, i))
        return steps

    async def ticker() -> None:
        while True:
            await asyncio.sleep(0.001)
            fired.append(1)

    dsn = acquire_database()
    schema = f"loop_{id(request)}"
    try:
        async with Engine([fast], backend=engine_url(dsn, schema)) as engine:
            host = engine._host
            assert isinstance(host, PostgresHost)
            calls = _count_blocking(host)
            ticks = asyncio.create_task(ticker())
            await asyncio.sleep(0)
            result = (await engine.start(fast, None, id="fast")).unwrap()
            ticks.cancel()
    finally:
        drop_schema(dsn, schema)
        release_database()
    assert result.output == steps
    assert sum(calls) > steps // 2  # most commits were made without leaving the loop...
    assert seen[steps - 1] > seen[20]  # ...and yet the timer fired while the steps ran


async def test_a_read_of_one_instance_is_blocking_only_when_nothing_else_is_ready(
    host: PostgresHost,
) -> None:
    await host.commit("r", _create("Running"), OWNER, LEASE_MS)
    operations: list[str] = []
    real = host._statements.run_blocking

    def spy(query: str, params: Any, operation: str = "commit") -> Any:
        operations.append(operation)
        return real(query, params, operation=operation)

    host._statements.run_blocking = spy  # type: ignore[method-assign]
    await asyncio.sleep(0.05)  # what the commit left ready (the pool's tasks) has run
    host._statements.last_turn = time.monotonic()
    assert await host.read("r", keys.INPUT) == '{"n": 1}'
    assert operations == ["read"]  # nothing else was ready: without leaving the loop
    other = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().call_soon(other.set_result, None)  # something is ready
    row = await host.instance("r")
    await other
    assert row is not None
    assert row.status == "Running"
    assert operations == ["read"]  # through the loop, not blocking
