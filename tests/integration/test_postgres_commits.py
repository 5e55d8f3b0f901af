"""How PostgreSQL commits plans: grouped into one transaction, announced, isolated.

Every plan is one prepared statement (``adapters/postgres/plans.py``); the plans that
wait are executed together, pipelined in one transaction. A new due alarm and a message
that wakes an instance are announced with ``NOTIFY``. A plan the database refuses for
its values fails alone: the others of its batch are committed.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import psycopg
import pytest
from returns.result import Failure

from durably.adapters.clock import ManualClock
from durably.adapters.postgres import PostgresHost
from durably.adapters.postgres.host import CHANNEL
from durably.domain import keys
from durably.domain.inbox import CANCEL, Outgoing
from durably.domain.lease import LeaseHold
from durably.domain.results import ok
from tests.integration.pg_support import postgres_host

pytestmark = pytest.mark.timeout(60)

OWNER = "host:1:owner"


@pytest.fixture
async def host(request: pytest.FixtureRequest) -> AsyncIterator[PostgresHost]:
    async with postgres_host(f"commits_{id(request) % 10**8}", clock=ManualClock(1_000)) as pg:
        yield pg


def status(tag: str) -> dict[str, Any]:
    return {"tag": tag}


async def test_plans_that_wait_together_are_one_transaction(host: PostgresHost) -> None:
    before = host.commits
    runtimes = [host.runtime(f"g{i}", LeaseHold(OWNER, 30_000, held=False)) for i in range(20)]
    results = await asyncio.gather(
        *(
            r.storage.put_batch({keys.NAME: "wf", keys.STATUS: status("Running"), "x": i})
            for i, r in enumerate(runtimes)
        )
    )
    for result in results:
        ok(result)
    assert host.commits - before < 20  # grouped (the first may go alone, the rest together)
    rows = [await host.instance(f"g{i}") for i in range(20)]
    assert all(row is not None and row.lease_owner == OWNER for row in rows)


async def test_a_due_alarm_and_a_waking_message_are_announced(host: PostgresHost) -> None:
    async with await psycopg.AsyncConnection.connect(host.dsn, autocommit=True) as listener:
        await listener.execute(f"LISTEN {CHANNEL}")
        queued = host.runtime("q", None)
        async with queued.storage.transaction():
            ok(await queued.storage.put_batch({keys.NAME: "wf", keys.STATUS: status("Queued")}))
            ok(await queued.scheduler.schedule(1_000))
        heard = [n async for n in listener.notifies(timeout=5, stop_after=1)]
        assert [n.channel for n in heard] == [CHANNEL]
        message = Outgoing("q", CANCEL, payload=json.dumps({"reason": None}))
        assert (await host.append(message, host.now())).seq == 1
        heard = [n async for n in listener.notifies(timeout=5, stop_after=1)]
        assert [n.channel for n in heard] == [CHANNEL]


async def test_a_plan_the_database_refuses_fails_alone(host: PostgresHost) -> None:
    runtimes = [host.runtime(f"v{i}", None) for i in range(4)]
    values: list[Any] = ["fine", "bad \x00 nul", "fine", "fine"]
    results = await asyncio.gather(
        *(
            r.storage.put_batch({keys.NAME: "wf", keys.STATUS: status("Queued"), "v": v})
            for r, v in zip(runtimes, values, strict=True)
        )
    )
    refused = [i for i, r in enumerate(results) if isinstance(r, Failure)]
    assert refused == [1]
    for i in (0, 2, 3):
        assert ok(await host.runtime(f"v{i}", None).storage.get("v")) == "fine"
    assert await host.instance("v1") is None
