"""semantics.md section 10 through the Engine on SQLite: bad input gets a clear error,
and nothing is lost or half-written.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from returns.result import Failure

import durably
from durably.adapters.clock import ManualClock
from durably.adapters.sqlite import SqliteHost
from durably.domain.errors import (
    InvalidDurationError,
    OrchestratorError,
    SerializationError,
    StorageError,
    WorkflowFailedError,
    WorkflowNotFoundError,
)
from durably.domain.status import Completed, Failed, Paused, Running
from durably.engine import Engine, Lease
from tests.integration.support import db_url, stranded_problems

pytestmark = pytest.mark.timeout(30)

calls: Counter[str] = Counter()
LEASE = Lease(duration="1s", renew_every="250ms")


class Opaque:
    """A value no converter knows how to store."""


def _count(name: str, value: Any) -> Any:
    calls[name] += 1
    return value


@durably.workflow(name="plain")
async def plain(n: int) -> int:
    """One step."""
    return int(await durably.step("a", lambda: _count("plain.a", n)))


@durably.workflow(name="other")
async def other(n: int) -> int:
    """Another workflow, for the name clash."""
    return int(await durably.step("a", lambda: _count("other.a", n)))


@durably.workflow(name="bad_sleep")
async def bad_sleep(n: int) -> int:
    """A committed step, then a sleep with a malformed duration."""
    await durably.step("a", lambda: _count("bad_sleep.a", n))
    await durably.sleep("5x")
    return n


@durably.workflow(name="bad_timeout")
async def bad_timeout(n: int) -> int:
    """A step with a malformed timeout."""
    return int(await durably.step("a", lambda: _count("bad_timeout.a", n), timeout="5x"))


@durably.workflow(name="bad_result")
async def bad_result(n: int) -> int:
    """A good step, then a step whose result cannot be stored."""
    await durably.step("fine", lambda: _count("bad_result.fine", n))
    await durably.step("opaque", lambda: _count("bad_result.opaque", Opaque()))
    return n


@durably.workflow(name="bad_output")
async def bad_output(n: int) -> Opaque:
    """A good step, then an output that cannot be stored."""
    await durably.step("fine", lambda: _count("bad_output.fine", n))
    return Opaque()


@durably.workflow(name="napper")
async def napper(n: int) -> int:
    """A step, then a one-minute sleep."""
    await durably.step("a", lambda: _count("napper.a", n))
    await durably.sleep("1 minute")
    return n


WORKFLOWS: list[durably.WorkflowDefinition[Any, Any]] = [
    plain,
    other,
    bad_sleep,
    bad_timeout,
    bad_result,
    bad_output,
    napper,
]
NAMES = tuple(w.name for w in WORKFLOWS)


def _rows(db: Path, instance_id: str) -> dict[str, Any]:
    """Everything stored about ``instance_id``, read behind the engine's back."""
    conn = sqlite3.connect(str(db))
    try:
        kv = dict(
            conn.execute(
                "SELECT key, value FROM kv WHERE instance_id = ? ORDER BY key", (instance_id,)
            ).fetchall()
        )
        instance = conn.execute("SELECT * FROM instances WHERE id = ?", (instance_id,)).fetchall()
        alarm = conn.execute(
            "SELECT due_at FROM alarms WHERE instance_id = ?", (instance_id,)
        ).fetchall()
    finally:
        conn.close()
    return {"kv": kv, "instance": instance, "alarm": alarm}


def _nothing_stored(db: Path, instance_id: str) -> None:
    assert _rows(db, instance_id) == {"kv": {}, "instance": [], "alarm": []}


@pytest.fixture
def db(tmp_path: Path) -> Path:
    calls.clear()
    return tmp_path / "bad.db"


async def test_unknown_workflow_name_lists_the_registered_ones(db: Path) -> None:
    async with Engine(WORKFLOWS, backend=db_url(db), lease=LEASE) as engine:
        for call in (engine.start, engine.queue):
            result = await call("no_such_workflow", 1, id="nf")
            assert isinstance(result, Failure)
            error = result.failure()
            assert isinstance(error, OrchestratorError)
            cause = error.cause
            assert isinstance(cause, WorkflowNotFoundError)
            assert cause.workflow_name == "no_such_workflow"
            assert set(cause.available_workflows) == set(NAMES)
            for name in NAMES:
                assert name in str(error)
        status = (await engine.status("nf")).unwrap()
        assert not status.exists
        assert (await engine.list()).unwrap() == []
    _nothing_stored(db, "nf")


@pytest.mark.parametrize(
    ("workflow", "field", "committed"),
    [(bad_sleep, "duration", ["a"]), (bad_timeout, "timeout", [])],
)
async def test_an_invalid_duration_fails_the_workflow_naming_the_input(
    db: Path, workflow: durably.WorkflowDefinition[int, int], field: str, committed: list[str]
) -> None:
    async with Engine(WORKFLOWS, backend=db_url(db), lease=LEASE) as engine:
        started = (await engine.start(workflow, 1, id="d1")).unwrap()
        assert not started.completed
        assert isinstance(started.status, Failed)
        error = started.status.error
        assert error.type == "InvalidDurationError"
        assert "'5x'" in error.message
        assert field in error.message
        result = await engine.result("d1", timeout="5s")
        assert isinstance(result, Failure)
        assert isinstance(result.failure(), WorkflowFailedError)
        assert "'5x'" in str(result.failure())
        assert [r.name for r in (await engine.steps("d1")).unwrap()] == committed
        assert [s.status for s in (await engine.list()).unwrap()] == ["Failed"]
    assert stranded_problems(db) == []


@pytest.mark.parametrize(
    ("make", "names"),
    [
        (lambda: durably.Retry(max_attempts=-1), ["max_attempts", "-1"]),
        (lambda: durably.Retry(2, delay="5x"), ["Retry.delay", "'5x'"]),
        (lambda: durably.Retry(2, max_duration="-1s"), ["Retry.max_duration", "'-1s'"]),
        (lambda: Lease(duration="5x"), ["Lease.duration", "'5x'"]),
        (lambda: Lease(duration="1s", renew_every="2s"), ["renew_every", "duration"]),
        (lambda: durably.Purge(delay="soon"), ["Purge.delay", "'soon'"]),
        (lambda: durably.Purge(delay="-1s"), ["Purge.delay", "'-1s'"]),
        (lambda: Engine(WORKFLOWS, backend="sqlite:///x.db", poll_interval="5x"), ["'5x'"]),
        (lambda: Engine([plain, durably.make(plain.fn)], backend="sqlite:///x.db"), ["'plain'"]),
    ],
)
def test_bad_definitions_fail_at_definition_time(
    make: Callable[[], object], names: list[str]
) -> None:
    with pytest.raises(ValueError) as caught:  # noqa: PT011 - the message is checked below
        make()
    for name in names:
        assert name in str(caught.value)
    if {"'5x'", "'-1s'", "'soon'"} & set(names):
        assert isinstance(caught.value, InvalidDurationError)


async def test_input_that_cannot_be_serialized_stores_nothing(db: Path) -> None:
    async with Engine(WORKFLOWS, backend=db_url(db), lease=LEASE) as engine:
        for call in (engine.start, engine.queue):
            result = await call(plain, Opaque(), id="in1")
            assert isinstance(result, Failure)
            error = result.failure()
            cause = error.cause if isinstance(error, OrchestratorError) else error
            assert isinstance(cause, SerializationError), error
            assert "Opaque" in str(error)
            assert cause.type_name is not None
            assert cause.type_name.endswith("Opaque")
        assert (await engine.list()).unwrap() == []
        assert not (await engine.status("in1")).unwrap().exists
        assert await engine.run_until_idle() == 0
    assert calls == Counter()
    _nothing_stored(db, "in1")


async def test_a_step_result_that_cannot_be_serialized_fails_naming_step_and_type(
    db: Path,
) -> None:
    async with Engine(WORKFLOWS, backend=db_url(db), lease=LEASE) as engine:
        started = (await engine.start(bad_result, 3, id="r1")).unwrap()
        assert isinstance(started.status, Failed)
        error = started.status.error
        assert error.type == "SerializationError"
        assert error.step_name == "opaque"
        assert "Opaque" in error.message
        assert "'opaque'" in error.message
        records = (await engine.steps("r1")).unwrap()
        assert [(r.name, r.completed_at is not None) for r in records] == [
            ("fine", True),
            ("opaque", False),  # its failed attempt, with the error
        ]
        assert (records[1].error or "").startswith("SerializationError: ")
        assert (await engine.status("r1")).unwrap().completed_steps == ("fine",)
    stored = _rows(db, "r1")["kv"]
    assert "step:fine:result" in stored
    # No value of it is stored: only the history of its attempt.
    assert [key for key in stored if "opaque" in key] == ["step:opaque:attempt"]
    assert calls == Counter({"bad_result.fine": 1, "bad_result.opaque": 1})
    assert stranded_problems(db) == []


async def test_an_output_that_cannot_be_serialized_fails_and_stores_no_output(db: Path) -> None:
    async with Engine(WORKFLOWS, backend=db_url(db), lease=LEASE) as engine:
        started = (await engine.start(bad_output, 3, id="o1")).unwrap()
        assert not started.completed
        assert isinstance(started.status, Failed)
        assert started.status.error.type == "SerializationError"
        assert "Opaque" in started.status.error.message
        assert [r.name for r in (await engine.steps("o1")).unwrap()] == ["fine"]
    assert "workflow:output" not in _rows(db, "o1")["kv"]
    assert stranded_problems(db) == []


async def test_start_on_an_existing_id_with_another_workflow_touches_nothing(db: Path) -> None:
    async with Engine(WORKFLOWS, backend=db_url(db), lease=LEASE) as engine:
        assert (await engine.start(plain, 5, id="x1")).unwrap().output == 5
        (await engine.start(napper, 6, id="x2")).unwrap()
        before = {iid: _rows(db, iid) for iid in ("x1", "x2")}
        for iid in ("x1", "x2"):
            for call in (engine.start, engine.queue):
                result = await call(other, 7, id=iid)
                assert isinstance(result, Failure)
                error = result.failure()
                assert isinstance(error, OrchestratorError)
                text = str(error)
                assert iid in text
                assert "'other'" in text
                assert ("'plain'" if iid == "x1" else "'napper'") in text
        assert {iid: _rows(db, iid) for iid in ("x1", "x2")} == before
        assert (await engine.result("x1")).unwrap() == 5
    assert calls == Counter({"plain.a": 1, "napper.a": 1})


def _overwrite(db: Path, instance_id: str, key: str, value: str) -> None:
    conn = sqlite3.connect(str(db))
    try:
        with conn:
            conn.execute(
                "UPDATE kv SET value = ? WHERE instance_id = ? AND key = ?",
                (value, instance_id, key),
            )
    finally:
        conn.close()


FUTURE_STATUS = '{"tag":"FutureStatus"}'


async def test_a_status_written_by_a_newer_schema_is_a_clear_error(db: Path) -> None:
    now = time.time_ns() // 1_000_000
    clock = ManualClock(now)
    async with Engine(WORKFLOWS, backend=db_url(db), lease=LEASE, clock=clock) as engine:
        (await engine.start(plain, 1, id="done")).unwrap()
        paused = (await engine.start(napper, 2, id="napping")).unwrap()
        assert isinstance(paused.status, Paused)
    for iid in ("done", "napping"):
        _overwrite(db, iid, "workflow:status", FUTURE_STATUS)
    before = {iid: _rows(db, iid) for iid in ("done", "napping")}

    clock.time_ms = now + 120_000  # the nap is over: its alarm is due
    async with Engine(WORKFLOWS, backend=db_url(db), lease=LEASE, clock=clock) as engine:
        for iid in ("done", "napping"):
            status = await engine.status(iid)
            assert isinstance(status, Failure), f"a silent default: {status}"
            assert "workflow:status" in str(status.failure())
            assert "FutureStatus" in str(status.failure())
            result = await engine.result(iid, timeout="1s")
            assert isinstance(result, Failure)
            assert "workflow:status" in str(result.failure())
            started = await engine.start(plain if iid == "done" else napper, 3, id=iid)
            assert isinstance(started, Failure), f"a silent default: {started}"
            assert "workflow:status" in str(started.failure())
            cancelled = await engine.cancel(iid, reason="stop")
            assert isinstance(cancelled, Failure), f"a silent default: {cancelled}"
            assert "workflow:status" in str(cancelled.failure())
        # The worker fires the due alarm: it fails (logged, and recorded for `durably
        # show`), it does not reset the instance.
        await engine.run_until_idle()
    after = {iid: _rows(db, iid)["kv"] for iid in ("done", "napping")}
    alarm_error = json.loads(after["napping"].pop("workflow:lastAlarmError"))
    assert alarm_error["error"]["type"] == "SerializationError"
    assert "FutureStatus" in alarm_error["error"]["message"]
    assert after == {iid: rows["kv"] for iid, rows in before.items()}
    assert calls == Counter({"plain.a": 1, "napper.a": 1})


def _set_user_version(db: Path, version: int) -> None:
    conn = sqlite3.connect(str(db))
    try:
        conn.execute(f"PRAGMA user_version = {version}")
        conn.commit()
    finally:
        conn.close()


def _user_version_and_tables(db: Path) -> tuple[int, list[str]]:
    conn = sqlite3.connect(str(db))
    try:
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        tables = [
            str(r[0])
            for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
            ).fetchall()
        ]
    finally:
        conn.close()
    return version, tables


@pytest.mark.parametrize("existing", [True, False])
async def test_a_database_with_a_newer_schema_version_is_refused(db: Path, existing: bool) -> None:
    if existing:
        async with Engine(WORKFLOWS, backend=db_url(db), lease=LEASE) as engine:
            (await engine.start(plain, 1, id="kept")).unwrap()
    _set_user_version(db, 99)
    before = _user_version_and_tables(db)
    engine = Engine(WORKFLOWS, backend=db_url(db), lease=LEASE)
    with pytest.raises(StorageError) as caught:
        async with engine:
            pytest.fail("opened a database of a newer schema")
    message = str(caught.value)
    assert "99" in message
    assert "newer" in message
    assert str(db) in message or "schema version" in message
    assert _user_version_and_tables(db) == before
    if existing:
        assert _rows(db, "kept")["instance"] != []


async def test_an_unreachable_database_is_a_storage_error(tmp_path: Path) -> None:
    path = tmp_path / "no" / "such" / "dir" / "x.db"
    with pytest.raises(StorageError) as caught:
        async with Engine(WORKFLOWS, backend=db_url(path), lease=LEASE):
            pytest.fail("opened a database in a directory that does not exist")
    assert str(path) in str(caught.value)


@contextmanager
def _locked(db: Path, hold: float) -> Iterator[threading.Thread]:
    """Another connection holds ``BEGIN EXCLUSIVE`` for ``hold`` seconds (in a thread)."""
    taken = threading.Event()

    def hold_lock() -> None:
        conn = sqlite3.connect(str(db), isolation_level=None)
        try:
            conn.execute("BEGIN EXCLUSIVE")
            taken.set()
            time.sleep(hold)
            conn.execute("COMMIT")
        finally:
            conn.close()

    thread = threading.Thread(target=hold_lock, daemon=True)
    thread.start()
    assert taken.wait(5), "could not take the lock"
    try:
        yield thread
    finally:
        thread.join(hold + 5)


async def _create_schema(db: Path) -> None:
    async with Engine(WORKFLOWS, backend=db_url(db), lease=LEASE):
        pass


async def test_a_briefly_locked_database_is_retried(db: Path) -> None:
    await _create_schema(db)
    async with Engine(WORKFLOWS, backend=db_url(db), lease=LEASE) as engine:
        with _locked(db, 0.3):
            started = time.monotonic()
            result = (await engine.start(plain, 4, id="patient")).unwrap()
            waited = time.monotonic() - started
        assert result.completed
        assert result.output == 4
        assert waited >= 0.2, f"did not wait for the lock ({waited:.3f}s)"
    assert stranded_problems(db) == []


def _short_busy_timeout(engine: Engine, ms: int) -> Engine:
    # The Engine does not take a busy timeout; its backend does (read when it opens).
    host = engine.host
    assert isinstance(host, SqliteHost)
    host.db.busy_timeout_ms = ms
    return engine


async def test_a_database_locked_too_long_is_a_storage_error_and_nothing_is_half_applied(
    db: Path,
) -> None:
    await _create_schema(db)
    engine = _short_busy_timeout(Engine(WORKFLOWS, backend=db_url(db), lease=LEASE), 100)
    async with engine:
        with _locked(db, 2.5):
            started = time.monotonic()
            result = await engine.start(plain, 4, id="impatient")
            waited = time.monotonic() - started
        assert isinstance(result, Failure), result
        error = result.failure()
        assert isinstance(error, OrchestratorError)
        assert isinstance(error.cause, StorageError), error
        assert "locked" in str(error)
        assert waited < 2.0, f"gave up only after {waited:.2f}s with a 100 ms busy timeout"
        # Lock released: nothing of the failed start exists, and a new start works.
        assert not (await engine.status("impatient")).unwrap().exists
        assert (await engine.list()).unwrap() == []
        _nothing_stored(db, "impatient")
        assert (await engine.start(plain, 4, id="impatient")).unwrap().output == 4
    assert calls == Counter({"plain.a": 1})


LOCK_DB: list[Path] = []


def _lock_then_return(value: int) -> int:
    """A step that leaves the database locked (by another connection) for its commit."""
    calls["locker.b"] += 1
    if calls["locker.b"] == 1:
        taken = threading.Event()

        def hold_lock() -> None:
            conn = sqlite3.connect(str(LOCK_DB[0]), isolation_level=None)
            try:
                conn.execute("BEGIN EXCLUSIVE")
                taken.set()
                time.sleep(1.5)
                conn.execute("COMMIT")
            finally:
                conn.close()

        threading.Thread(target=hold_lock, daemon=True).start()
        assert taken.wait(5)
    return value


@durably.workflow(name="locker")
async def locker(n: int) -> int:
    """Step ``b``'s commit meets a locked database (the first time)."""
    a = await durably.step("a", lambda: _count("locker.a", n))
    b = await durably.step("b", lambda: _lock_then_return(a + 1))
    c = await durably.step("c", lambda: _count("locker.c", b + 1))
    return int(c)


async def test_a_step_commit_on_a_locked_database_leaves_the_last_committed_state(
    db: Path,
) -> None:
    await _create_schema(db)
    LOCK_DB[:] = [db]
    engine = _short_busy_timeout(Engine([*WORKFLOWS, locker], backend=db_url(db), lease=LEASE), 100)
    async with engine:
        result = await engine.start(locker, 1, id="mid")
        assert isinstance(result, Failure), result
        error = result.failure()
        assert isinstance(error, OrchestratorError)
        assert "locked" in str(error)
        await asyncio.sleep(1.6)  # the lock is gone
        status = (await engine.status("mid")).unwrap()
        assert isinstance(status.status, Running)
        assert status.completed_steps == ("a",)
        stored = _rows(db, "mid")
        assert not any(k.startswith(("step:b:", "completed:b", "step:c:")) for k in stored["kv"])
        assert stranded_problems(db) == []
        # The lease runs out, the instance is recovered: b runs again (at least once).
        deadline = time.monotonic() + 10
        while not isinstance((await engine.status("mid")).unwrap().status, Completed):
            assert time.monotonic() < deadline, "never recovered"
            await engine.run_until_idle()
            await asyncio.sleep(0.05)
        assert (await engine.result("mid")).unwrap() == 3
        assert [r.name for r in (await engine.steps("mid")).unwrap()] == ["a", "b", "c"]
    assert calls == Counter({"locker.a": 1, "locker.b": 2, "locker.c": 1})
    assert stranded_problems(db) == []


async def test_an_alarm_on_a_locked_database_is_not_half_applied(db: Path) -> None:
    """A due sleep whose resume meets a locked database stays Paused and resumes later."""
    now = time.time_ns() // 1_000_000
    clock = ManualClock(now)
    async with Engine(WORKFLOWS, backend=db_url(db), lease=LEASE, clock=clock) as engine:
        (await engine.start(napper, 9, id="nap")).unwrap()
    before = _rows(db, "nap")
    clock.time_ms = now + 61_000
    engine = _short_busy_timeout(
        Engine(WORKFLOWS, backend=db_url(db), lease=LEASE, clock=clock), 100
    )
    async with engine:
        with _locked(db, 1.0):
            try:
                fired = await engine.run_until_idle()
            except StorageError:
                fired = 0
            assert fired == 0
        assert _rows(db, "nap") == before, "a claim or a transition was half-applied"
        assert isinstance((await engine.status("nap")).unwrap().status, Paused)
        assert await engine.run_until_idle() == 1
        assert (await engine.result("nap")).unwrap() == 9
    assert calls == Counter({"napper.a": 1})


async def test_a_worker_survives_a_database_locked_longer_than_its_busy_timeout(
    db: Path,
) -> None:
    """A lock longer than the busy timeout fails one claim; the worker retries, never dies."""
    await _create_schema(db)
    engine = _short_busy_timeout(
        Engine(WORKFLOWS, backend=db_url(db), lease=LEASE, poll_interval="50ms"), 100
    )
    async with engine:
        stop = asyncio.Event()
        worker = asyncio.get_running_loop().create_task(engine.run_worker(stop=stop))
        try:
            await asyncio.sleep(0.1)
            with _locked(db, 0.6):
                await asyncio.sleep(0.7)
            assert not worker.done(), f"the worker died: {worker.exception()}"
            (await engine.queue(plain, 8, id="after-lock")).unwrap()
            assert (await engine.result("after-lock", timeout="5s")).unwrap() == 8
        finally:
            stop.set()
            await asyncio.wait_for(worker, 5)
    assert calls == Counter({"plain.a": 1})
