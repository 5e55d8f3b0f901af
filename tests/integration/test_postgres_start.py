"""50 concurrent ``start`` calls with one id, from 5 processes, give one instance.

architecture.md, "Scale-out": ``start`` from any process is idempotent per instance
id (a unique key). 5 worker processes each run 10 ``engine.start`` coroutines at once
with the same id (and each its own input); the workflow body logs every entry to a
side file and has one slow step. Then: the instances table has one row, the body and
its step ran once, and all 50 callers got the same answer: completed, with the output
of the one run.

This file is also the child: ``python test_postgres_start.py starter URL ID LOG``.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import attrs
import psycopg
import pytest
from psycopg import sql
from returns.result import Success

import durably
from durably.engine import Engine, Lease
from tests.integration.pg_support import (
    acquire_database,
    drop_schema,
    engine_url,
    release_database,
)
from tests.integration.support import append_line, read_lines, spawn

pytestmark = pytest.mark.timeout(90)

PROCESSES = 5
CALLS = 10
LEASE = Lease(duration="5s", renew_every="1s")
SLOW_STEP_S = 0.5


@attrs.frozen
class Caller:
    """The input of one caller: who it is, and the side file."""

    tag: str
    log: str


async def _slow_step(log: str) -> int:
    append_line(log, f"step {os.getpid()}\n")
    await asyncio.sleep(SLOW_STEP_S)
    return os.getpid()


@durably.workflow(name="pg_start_once")
async def once(caller: Caller) -> str:
    """Logs each entry of its body; one slow step; returns who created it."""
    append_line(caller.log, f"body {os.getpid()}\n")
    pid = await durably.step("slow", lambda: _slow_step(caller.log))
    return f"{caller.tag} ran in {pid}"


# -- the child process ------------------------------------------------------------------------


async def _starter(url: str, instance_id: str, log: str) -> int:
    """Say ``ready``, wait for ``go``, start ``instance_id`` 10 times at once, print answers."""
    loop = asyncio.get_running_loop()
    async with Engine([once], backend=url, lease=LEASE) as engine:
        print("ready", flush=True)
        if (await loop.run_in_executor(None, sys.stdin.readline)).strip() != "go":
            return 3
        results = await asyncio.gather(
            *(
                engine.start(once, Caller(f"{os.getpid()}-{k}", log), id=instance_id)
                for k in range(CALLS)
            )
        )
        for result in results:
            if isinstance(result, Success):
                answer = result.unwrap()
                status = answer.status.tag if answer.status is not None else None
                text = [answer.id, answer.completed, answer.output, status]
            else:
                text = ["error", str(result.failure())]
            print("answer " + json.dumps(text), flush=True)
    print("done", flush=True)
    return 0


# -- the test ---------------------------------------------------------------------------------


@pytest.fixture
def schema_url() -> Iterator[tuple[str, str]]:
    """A fresh schema in the test database: ``(dsn, schema)``, dropped after."""
    dsn = acquire_database()
    schema = f"st_{os.urandom(6).hex()}"
    try:
        yield dsn, schema
    finally:
        try:
            drop_schema(dsn, schema)
        finally:
            release_database()


async def test_fifty_concurrent_starts_of_one_id_make_one_instance_and_one_answer(
    tmp_path: Path, schema_url: tuple[str, str]
) -> None:
    dsn, schema = schema_url
    url, log, iid = engine_url(dsn, schema), tmp_path / "side.log", "the-one"
    async with Engine([once], backend=url, lease=LEASE):
        pass  # creates the schema once, before the children race
    children = [
        spawn(Path(__file__).name, ["starter", url, iid, str(log)], tmp_path)
        for _ in range(PROCESSES)
    ]
    try:
        for child in children:
            child.expect("ready")
        for child in children:
            child.send("go")
        for child in children:
            child.expect("done", timeout=60)
    finally:
        codes = [child.wait(timeout=30) for child in children]
    errors = [c.stderr_path.read_text(errors="replace") for c in children]
    assert codes == [0] * PROCESSES, errors

    answers = [
        tuple(json.loads(line.removeprefix("answer ")))
        for child in children
        for line in child.lines
        if line.startswith("answer ")
    ]
    assert len(answers) == PROCESSES * CALLS
    distinct = Counter(answers)
    assert len(distinct) == 1, f"different answers: {distinct}"
    ((answer_id, completed, output, status),) = distinct
    assert (answer_id, completed, status) == (iid, True, "Completed")

    # One instance, one run of the body and of its step, by the process that created it.
    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = conn.execute(
            sql.SQL("SELECT id, status, lease_owner FROM {}.instances").format(
                sql.Identifier(schema)
            )
        ).fetchall()
    assert rows == [(iid, "Completed", None)]
    lines = read_lines(log)
    bodies = [line for line in lines if line.startswith("body ")]
    steps = [line for line in lines if line.startswith("step ")]
    assert len(bodies) == 1, lines
    assert len(steps) == 1, lines
    runner = int(steps[0].split()[1])
    assert bodies == [f"body {runner}"]
    assert runner in {c.pid for c in children}
    assert output.startswith(f"{runner}-"), output
    assert output.endswith(f" ran in {runner}"), output


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "starter":
        sys.exit(asyncio.run(_starter(sys.argv[2], sys.argv[3], sys.argv[4])))
    sys.exit(f"usage: {sys.argv[0]} starter URL ID LOG")
