"""The ``InstanceHost`` contract, run against every backend (memory, SQLite, PostgreSQL).

Claims, leases, renewals, fencing, release and expiry; the inbox (append, wake, read,
consume); and what a lease holder reads: the same answers on every backend, since
every backend executes the same commit plans (``adapters/plan.py``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from returns.result import Failure

from durably.domain import keys
from durably.domain.errors import InstanceExists, LeaseLost, StorageError
from durably.domain.inbox import CANCEL, EVENT, AppendOutcome, Outgoing
from durably.domain.lease import LeaseHold
from durably.domain.results import ok
from durably.domain.serialization import dumps
from durably.ports import Claimed, InstanceHost, InstanceRuntime

OWNER, OTHER = "host:1:owner", "host:2:other"
LEASE_MS = 30_000
RUNNING = {"tag": "Running", "running_at": 1}
PAUSED = {"tag": "Paused", "reason": "sleep", "resume_at": 5, "step_name": None}
QUEUED = {"tag": "Queued", "queued_at": 1}


def hold(owner: str = OWNER, *, held: bool = False) -> LeaseHold:
    """A lease hold (not held yet: a creation commit takes it)."""
    return LeaseHold(owner, LEASE_MS, held=held)


async def create(
    host: InstanceHost,
    iid: str,
    status: dict[str, Any] = RUNNING,
    owner: str = OWNER,
    alarm: int | None = None,
) -> InstanceRuntime:
    """Create instance ``iid`` as ``owner`` would (Running takes the lease); its runtime."""
    runtime = host.runtime(iid, hold(owner))
    async with runtime.storage.transaction():
        ok(await runtime.storage.put_batch({keys.NAME: "wf", keys.STATUS: status, "step:a:r": 1}))
        if alarm is not None:
            ok(await runtime.scheduler.schedule(alarm))
    return runtime


def refusal(result: Any) -> object:
    """The cause of a refused commit."""
    assert isinstance(result, Failure)
    error = result.failure()
    while not isinstance(error, StorageError):  # a scheduler error wraps the storage's
        error = error.cause
    return error.cause


class Spy:
    """Counts the reads a host answers (its ``InstanceStore`` methods)."""

    def __init__(self, host: Any) -> None:
        self.calls: list[str] = []
        for name in ("read", "read_many", "read_prefix", "pending_inbox"):
            self._wrap(host, name)

    def _wrap(self, host: Any, name: str) -> None:
        real = getattr(host, name)

        async def counted(*args: Any) -> Any:
            self.calls.append(name)
            return await real(*args)

        setattr(host, name, counted)


def cancel(iid: str, reason: str = "stop", dedupe: str | None = None) -> Outgoing:
    return Outgoing(iid, CANCEL, payload=dumps({"reason": reason}), dedupe_key=dedupe)


# -- creation and fencing ------------------------------------------------------------------


async def test_a_running_creation_takes_the_lease_and_arms_its_expiry(host: InstanceHost) -> None:
    now = host.now()
    runtime = await create(host, "c1")
    assert runtime.lease is not None
    assert runtime.lease.held
    assert runtime.lease.remaining_s() > 0
    row = await host.instance("c1")
    assert row is not None
    assert (row.workflow, row.status, row.lease_owner) == ("wf", "Running", OWNER)
    assert row.lease_expires_at == now + LEASE_MS
    assert ok(await runtime.scheduler.get_scheduled()) == now + LEASE_MS


async def test_a_queued_creation_is_nobodys(host: InstanceHost) -> None:
    runtime = await create(host, "c2", QUEUED)
    assert runtime.lease is not None
    assert not runtime.lease.held
    row = await host.instance("c2")
    assert row is not None
    assert (row.status, row.lease_owner, row.lease_expires_at) == ("Queued", None, None)


async def test_a_second_creation_of_one_id_writes_nothing(host: InstanceHost) -> None:
    await create(host, "c3")
    second = host.runtime("c3", hold(OTHER))
    refused = await second.storage.put_batch({keys.NAME: "other", keys.STATUS: RUNNING, "x": 1})
    assert isinstance(refusal(refused), InstanceExists)
    reader = host.runtime("c3", None).storage
    assert ok(await reader.get(keys.NAME)) == "wf"
    assert ok(await reader.get("x")) is None
    row = await host.instance("c3")
    assert row is not None
    assert row.lease_owner == OWNER


async def test_a_commit_after_the_lease_moved_writes_nothing(
    host: InstanceHost, advance_clock: Callable[[int], None]
) -> None:
    holder = await create(host, "f1")
    advance_clock(LEASE_MS + 1)  # the lease expires and another owner takes it over
    assert await host.acquire("f1", OTHER, host.now(), LEASE_MS)
    refused = await holder.storage.put("step:b:r", 2)
    assert isinstance(refusal(refused), LeaseLost)
    assert holder.lease is not None
    assert not holder.lease.held
    assert ok(await host.runtime("f1", None).storage.get("step:b:r")) is None
    paused = await holder.storage.put_batch({keys.STATUS: PAUSED, "sleep:s": 1})
    assert isinstance(refusal(paused), LeaseLost)
    row = await host.instance("f1")
    assert row is not None
    assert (row.status, row.lease_owner) == ("Running", OTHER)


async def test_a_grouped_commit_refuses_only_the_plan_whose_lease_moved(
    host: InstanceHost, advance_clock: Callable[[int], None]
) -> None:
    kept = [await create(host, f"g{i}") for i in range(3)]
    lost = await create(host, "g-lost")
    advance_clock(1)
    assert await host.acquire("g-lost", OTHER, host.now() + LEASE_MS, LEASE_MS)
    results = await asyncio.gather(*(r.storage.put("step:b:r", 2) for r in [*kept, lost]))
    assert isinstance(refusal(results[3]), LeaseLost)
    for runtime, result in zip(kept, results[:3], strict=True):
        ok(result)
        assert ok(await host.runtime(runtime.instance_id, None).storage.get("step:b:r")) == 2
    assert ok(await host.runtime("g-lost", None).storage.get("step:b:r")) is None


async def test_a_status_that_ends_the_run_gives_the_lease_back(host: InstanceHost) -> None:
    runtime = await create(host, "r1")
    async with runtime.storage.transaction():
        ok(await runtime.storage.put(keys.STATUS, PAUSED))
        ok(await runtime.scheduler.schedule(host.now() + 5_000))
    assert runtime.lease is not None
    assert not runtime.lease.held
    row = await host.instance("r1")
    assert row is not None
    assert (row.status, row.lease_owner, row.lease_expires_at) == ("Paused", None, None)
    assert ok(await runtime.scheduler.get_scheduled()) == host.now() + 5_000


# -- claims, renewals, release and expiry --------------------------------------------------


async def test_a_claim_takes_due_free_instances_in_due_order_up_to_the_limit(
    host: InstanceHost, advance_clock: Callable[[int], None]
) -> None:
    now = host.now()
    for iid, due in (("q3", now + 30), ("q1", now + 10), ("q2", now + 20), ("later", now + 99)):
        await create(host, iid, QUEUED, alarm=due)
    advance_clock(50)
    claimed = await host.claim_due(OWNER, host.now(), LEASE_MS, 2)
    assert claimed == [Claimed("q1", 0), Claimed("q2", 0)]
    assert await host.claim_due(OTHER, host.now(), LEASE_MS, 10) == [Claimed("q3", 0)]
    assert await host.claim_due(OTHER, host.now(), LEASE_MS, 10) == []  # held, not due
    for iid in ("q1", "q2"):
        row = await host.instance(iid)
        assert row is not None
        assert row.lease_owner == OWNER
        # Its alarm moved to the lease's expiry: due again only if this owner dies.
        scheduled = ok(await host.runtime(iid, None).scheduler.get_scheduled())
        assert scheduled == host.now() + LEASE_MS


async def test_an_expired_lease_is_claimable_again(
    host: InstanceHost, advance_clock: Callable[[int], None]
) -> None:
    await create(host, "e1")  # Running, alarm at the lease's expiry
    assert await host.claim_due(OTHER, host.now(), LEASE_MS, 10) == []
    advance_clock(LEASE_MS)
    await host.append(cancel("e1"), host.now())  # the claim tells the last message's number
    assert await host.claim_due(OTHER, host.now(), LEASE_MS, 10) == [Claimed("e1", 1)]
    row = await host.instance("e1")
    assert row is not None
    assert row.lease_owner == OTHER


async def test_acquire_takes_a_free_expired_or_own_lease_only(
    host: InstanceHost, advance_clock: Callable[[int], None]
) -> None:
    await create(host, "a1")
    assert await host.acquire("a1", OWNER, host.now(), LEASE_MS)  # own
    assert not await host.acquire("a1", OTHER, host.now(), LEASE_MS)  # held by another
    assert not await host.acquire("missing", OTHER, host.now(), LEASE_MS)
    advance_clock(LEASE_MS)
    assert await host.acquire("a1", OTHER, host.now(), LEASE_MS)  # expired
    await host.release("a1", OTHER)
    assert await host.acquire("a1", OWNER, host.now(), LEASE_MS)  # free


async def test_release_is_a_no_op_for_others_and_can_wake_a_running_instance(
    host: InstanceHost,
) -> None:
    runtime = await create(host, "l1")
    await host.release("l1", OTHER, host.now())
    row = await host.instance("l1")
    assert row is not None
    assert row.lease_owner == OWNER
    await host.release("l1", OWNER)  # no wake: the alarm stays at the lease's expiry
    assert ok(await runtime.scheduler.get_scheduled()) == host.now() + LEASE_MS
    assert await host.acquire("l1", OWNER, host.now(), LEASE_MS)
    await host.release("l1", OWNER, host.now())
    assert ok(await runtime.scheduler.get_scheduled()) == host.now()
    row = await host.instance("l1")
    assert row is not None
    assert row.lease_owner is None


async def test_release_all_gives_back_every_lease_of_one_owner(
    host: InstanceHost, advance_clock: Callable[[int], None]
) -> None:
    mine = [await create(host, f"m{i}") for i in range(2)]
    theirs = await create(host, "t1", owner=OTHER)
    advance_clock(5)
    assert await host.release_all(OWNER, host.now()) == 2
    for runtime in mine:
        row = await host.instance(runtime.instance_id)
        assert row is not None
        assert row.lease_owner is None
        assert ok(await runtime.scheduler.get_scheduled()) == host.now()  # due at once
    row = await host.instance("t1")
    assert row is not None
    assert row.lease_owner == OTHER
    assert ok(await theirs.scheduler.get_scheduled()) == host.now() - 5 + LEASE_MS


async def test_renew_extends_the_owners_leases_and_says_which(
    host: InstanceHost, advance_clock: Callable[[int], None]
) -> None:
    await create(host, "n1")
    await create(host, "n2", owner=OTHER)
    advance_clock(10_000)
    assert await host.renew(OWNER, host.now(), LEASE_MS) == ["n1"]
    row = await host.instance("n1")
    assert row is not None
    assert row.lease_expires_at == host.now() + LEASE_MS
    assert ok(await host.runtime("n1", None).scheduler.get_scheduled()) == host.now() + LEASE_MS
    other = await host.instance("n2")
    assert other is not None
    assert other.lease_expires_at == host.now() - 10_000 + LEASE_MS


# -- the inbox -----------------------------------------------------------------------------


async def test_an_append_to_nothing_or_a_finished_instance_appends_nothing(
    host: InstanceHost,
) -> None:
    assert await host.append(cancel("nobody"), host.now()) == AppendOutcome(None)
    runtime = await create(host, "x1")
    ok(await runtime.storage.put(keys.STATUS, {"tag": "Completed", "completed_at": 1}))
    outcome = await host.append(cancel("x1"), host.now())
    assert outcome == AppendOutcome("Completed", workflow="wf")
    assert not outcome.delivered
    assert await host.read_inbox("x1") == []


async def test_an_append_wakes_a_waiting_instance_not_a_running_one(
    host: InstanceHost, advance_clock: Callable[[int], None]
) -> None:
    paused = await create(host, "w1")
    async with paused.storage.transaction():
        ok(await paused.storage.put(keys.STATUS, PAUSED))
        ok(await paused.scheduler.schedule(host.now() + 60_000))
    running = await create(host, "w2")
    advance_clock(7)
    assert await host.append(cancel("w1"), host.now()) == AppendOutcome("Paused", 1, workflow="wf")
    assert ok(await paused.scheduler.get_scheduled()) == host.now()
    assert await host.append(cancel("w2"), host.now()) == AppendOutcome("Running", 1, workflow="wf")
    assert ok(await running.scheduler.get_scheduled()) == host.now() - 7 + LEASE_MS


def event(iid: str, name: str) -> Outgoing:
    return Outgoing(iid, EVENT, name=name, payload=dumps({"for": name}))


async def test_an_event_wakes_only_a_paused_instance(
    host: InstanceHost, advance_clock: Callable[[int], None]
) -> None:
    queued = await create(host, "q1", QUEUED, alarm=host.now() + 60_000)
    paused = await create(host, "p1")
    async with paused.storage.transaction():
        ok(await paused.storage.put(keys.STATUS, PAUSED))
        ok(await paused.scheduler.cancel())  # a wait without a deadline: no alarm
    advance_clock(5)
    assert (await host.append(event("q1", "go"), host.now())).seq == 1
    assert ok(await queued.scheduler.get_scheduled()) == host.now() - 5 + 60_000  # kept
    assert (await host.append(event("p1", "go"), host.now())).seq == 1
    assert ok(await paused.scheduler.get_scheduled()) == host.now()


async def test_a_message_that_came_while_running_makes_the_pause_due(
    host: InstanceHost, advance_clock: Callable[[int], None]
) -> None:
    """The news rule (plan.py): the append saw Running and could not wake the instance;
    the commit that pauses it, made by a holder that had not read that message, sets
    its alarm to now instead, whatever the pause asked for."""
    for pause_alarm in ("set", "clear"):
        iid = f"n-{pause_alarm}"
        runtime = await create(host, iid)
        assert ok(await runtime.inbox.pending()) == []  # read up to nothing
        advance_clock(3)
        assert (await host.append(event(iid, "go"), host.now())).seq == 1  # while running
        advance_clock(4)
        async with runtime.storage.transaction():
            ok(await runtime.storage.put(keys.STATUS, PAUSED))
            if pause_alarm == "set":
                ok(await runtime.scheduler.schedule(host.now() + 60_000))
            else:
                ok(await runtime.scheduler.cancel())
        assert ok(await runtime.scheduler.get_scheduled()) == host.now(), pause_alarm
    # A holder that has read the message pauses as it asked.
    runtime = await create(host, "n-read")
    await host.append(event("n-read", "go"), host.now())
    assert [m.name for m in ok(await runtime.inbox.pending())] == ["go"]
    async with runtime.storage.transaction():
        ok(await runtime.storage.put(keys.STATUS, PAUSED))
        ok(await runtime.scheduler.schedule(host.now() + 60_000))
    assert ok(await runtime.scheduler.get_scheduled()) == host.now() + 60_000


async def test_messages_are_numbered_per_instance_and_deduplicated(host: InstanceHost) -> None:
    await create(host, "d1")
    await create(host, "d2")
    assert (await host.append(cancel("d1", "a", dedupe="k"), host.now())).seq == 1
    assert (await host.append(cancel("d2", "b"), host.now())).seq == 1
    assert (await host.append(cancel("d1", "c"), host.now())).seq == 2
    again = await host.append(cancel("d1", "ignored", dedupe="k"), host.now())
    assert again == AppendOutcome("Running", None, duplicate=True, workflow="wf")
    assert again.delivered
    messages = await host.read_inbox("d1")
    assert [(m.seq, m.payload["reason"], m.dedupe_key) for m in messages] == [
        (1, "a", "k"),
        (2, "c", None),
    ]


async def test_a_holder_learns_of_a_message_from_its_next_commit_and_consumes_it(
    host: InstanceHost,
) -> None:
    holder = await create(host, "h1")
    assert not holder.inbox.has_news()
    await host.append(cancel("h1", "first"), host.now())
    assert not holder.inbox.has_news()  # not before a commit brings its number back
    ok(await holder.storage.put("step:b:r", 2))
    assert holder.inbox.has_news()
    pending = ok(await holder.inbox.pending())
    assert [m.payload["reason"] for m in pending] == ["first"]
    assert not holder.inbox.has_news()  # read: no news until another arrives
    async with holder.storage.transaction():
        ok(await holder.storage.put("step:c:r", 3))
        ok(await holder.inbox.consume([pending[0].seq]))
    assert ok(await holder.inbox.pending()) == []
    (message,) = await host.read_inbox("h1")
    assert message.consumed
    ok(await holder.storage.put("step:d:r", 4))
    assert not holder.inbox.has_news()


async def test_a_purge_deletes_the_inbox_with_the_keys(host: InstanceHost) -> None:
    runtime = await create(host, "p1")
    await host.append(cancel("p1", dedupe="once"), host.now())
    async with runtime.storage.transaction():
        ok(await runtime.storage.delete_all())
        ok(await runtime.storage.put(keys.STATUS, {"tag": "Cancelled", "cancelled_at": 1}))
    assert await host.read_inbox("p1") == []


# -- what a lease holder reads -------------------------------------------------------------


async def test_the_creator_reads_nothing_back(host: InstanceHost) -> None:
    runtime = await create(host, "i1")
    spy = Spy(host)
    storage = runtime.storage
    ok(await storage.put("step:b:r", 2))
    assert ok(await storage.get("step:a:r")) == 1
    assert ok(await storage.get("step:zz:r")) is None
    assert ok(await storage.get_many(("step:a:r", "step:b:r"))) == {"step:a:r": 1, "step:b:r": 2}
    assert ok(await storage.list("step:")) == {"step:a:r": 1, "step:b:r": 2}
    assert ok(await storage.get(keys.STATUS)) == RUNNING
    assert spy.calls == []


async def test_a_new_segment_reads_the_instance_once(host: InstanceHost) -> None:
    await create(host, "i2")
    assert await host.acquire("i2", OWNER, host.now(), LEASE_MS)
    storage = host.runtime("i2", hold(held=True)).storage
    spy = Spy(host)
    for _ in range(3):
        assert ok(await storage.get("step:a:r")) == 1
        assert ok(await storage.get("step:b:r")) is None
    assert spy.calls == ["read_prefix"]


async def test_a_reader_without_the_lease_always_reads_the_backend(host: InstanceHost) -> None:
    await create(host, "i3")
    storage = host.runtime("i3", None).storage
    spy = Spy(host)
    ok(await storage.get("step:a:r"))
    ok(await storage.get("step:a:r"))
    assert len(spy.calls) == 2


async def test_a_lease_hold_counts_from_the_start_of_what_extended_it(host: InstanceHost) -> None:
    runtime = await create(host, "v1")
    lease = runtime.lease
    assert lease is not None
    assert 0 < lease.remaining_s() <= LEASE_MS / 1000
    assert lease.usable()
    lease.stopping = True
    assert not lease.usable()
