"""The in-memory backend: every instance's rows in dicts, in one process (``memory://``).

It is a whole backend, not a mock: it executes the same commit plans as SQLite and
PostgreSQL (``execute`` is the reference executor of ``plan.py``), with the same
fencing, leases, alarms and inboxes, so tests of the engine need no database. Values
are kept as JSON text, so a caller that mutates an object after ``put`` does not
change what is stored, and a value the SQL backends would refuse is refused here too.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Callable, Collection, Sequence

import attrs

from durably.adapters.clock import Clock, ClockRuntime, ManualClock, SystemClock
from durably.adapters.plan import CommitOutcome, CommitPlan, Create, Fenced, woken_by_news
from durably.adapters.runtime import instance_runtime
from durably.adapters.unit_of_work import ClearAlarm, SetAlarm
from durably.domain.errors import DuplicateWorkflowError, InstanceExists, LeaseLost, StorageError
from durably.domain.inbox import AppendOutcome, InboxMessage, Outgoing, wakes
from durably.domain.lease import LeaseHold
from durably.domain.queues import (
    DEFAULT_QUEUE,
    ClaimScope,
    Queue,
    QueueStats,
    admit,
    stats_of_queues,
)
from durably.domain.schedules import StoredSchedule
from durably.domain.serialization import loads
from durably.domain.status import TERMINAL_TAGS
from durably.ports import Claimed, InstanceRow, InstanceRuntime

__all__ = ["MemoryBackend", "MemoryRuntime", "ManualClock", "SystemClock", "Clock"]


@attrs.define
class _Row:
    workflow: str
    status: str
    created_at: int
    updated_at: int
    lease_owner: str | None = None
    lease_expires_at: int | None = None
    inbox_seq: int = 0
    queue: str = DEFAULT_QUEUE
    priority: int = 0
    partition_key: str | None = None
    dedupe_id: str | None = None
    slot: bool = False
    """It holds a slot of its queue (taken by the claim that started it)."""
    slot_at: int | None = None
    seq: int = 0
    """Its place in the order of creation (first in first out within a priority)."""

    def frozen(self, instance_id: str) -> InstanceRow:
        return InstanceRow(
            instance_id,
            self.workflow,
            self.status,
            self.created_at,
            self.updated_at,
            self.lease_owner,
            self.lease_expires_at,
        )


@attrs.define(eq=False, slots=False)
class MemoryBackend:
    """Every instance's keys, alarm, inbox and lease, in dicts (an ``InstanceHost``)."""

    clock: Clock = attrs.field(factory=ManualClock)
    data: dict[str, dict[str, str]] = attrs.field(factory=dict)
    alarms: dict[str, int] = attrs.field(factory=dict)
    rows: dict[str, _Row] = attrs.field(factory=dict)
    inboxes: dict[str, list[InboxMessage]] = attrs.field(factory=dict)
    commits: int = 0
    created: int = 0
    """How many instances were created (the ``seq`` of the last)."""
    commits_renew_lease: bool = False
    queues: dict[str, Queue] = attrs.field(factory=dict)
    schedules: dict[str, StoredSchedule] = attrs.field(factory=dict)
    commit_observers: list[Callable[[CommitPlan], None]] = attrs.field(factory=list)
    """Called with each plan once it is applied, before its committer goes on: what may
    happen right after a commit (``durably.testing.crash_after`` crashes there)."""
    _alarm_set: asyncio.Event | None = None

    # -- the plan executor ----------------------------------------------------------------

    def execute(self, plan: CommitPlan) -> CommitOutcome:
        """Apply ``plan`` (atomically: every check comes before the first change)."""
        iid, write = plan.instance_id, plan.write
        row = self.rows.get(iid)
        if isinstance(write, Create):
            if row is not None:
                raise InstanceExists(iid)
            if write.dedupe_id is not None:
                holder = self._dedupe_holder(write.queue, write.dedupe_id)
                if holder is not None:
                    raise DuplicateWorkflowError(write.queue, write.dedupe_id, holder)
            self.created += 1
            row = self.rows[iid] = _Row(
                write.workflow,
                plan.status or "Pending",
                plan.now,
                plan.now,
                write.lease_owner,
                write.lease_expires_at,
                queue=write.queue,
                priority=write.priority,
                partition_key=write.partition_key,
                dedupe_id=write.dedupe_id,
                seq=self.created,
            )
        elif isinstance(write, Fenced):
            if row is None or row.lease_owner != write.owner:
                raise LeaseLost(iid, write.owner)
            if write.release:
                row.lease_owner = row.lease_expires_at = None
            elif plan.renews or self.commits_renew_lease:
                row.lease_expires_at = write.lease_expires_at
        if row is not None and plan.status is not None and not isinstance(write, Create):
            row.status, row.updated_at = plan.status, plan.now
            if plan.status in TERMINAL_TAGS:
                row.slot = False  # a final status gives the slot back
        keys = self.data.setdefault(iid, {})
        if plan.clear:  # a purge: the inbox goes with the keys
            keys.clear()
            self.inboxes.pop(iid, None)
        keys.update(plan.upserts)
        for key in plan.deletes:
            keys.pop(key, None)
        if not keys:
            self.data.pop(iid, None)
        if isinstance(plan.alarm, SetAlarm):
            self.alarms[iid] = plan.alarm.at
            self._wake()
        elif isinstance(plan.alarm, ClearAlarm):
            self.alarms.pop(iid, None)
        if row is not None and woken_by_news(plan, row.status, row.inbox_seq):
            self.alarms[iid] = plan.now
            self._wake()
        if plan.consume:
            consumed = set(plan.consume)
            self.inboxes[iid] = [
                attrs.evolve(m, consumed=True) if m.seq in consumed else m
                for m in self.inboxes.get(iid, [])
            ]
        for message in plan.sends:
            self._append(message, plan.now)
        self.commits += 1
        return CommitOutcome(None if row is None else row.inbox_seq)

    def _wake(self) -> None:
        if self._alarm_set is not None:
            self._alarm_set.set()

    # -- InstanceStore ------------------------------------------------------------------

    async def commit(self, plan: CommitPlan) -> CommitOutcome:
        """Execute ``plan``; a refusal is a ``StorageError`` like the SQL backends'.

        A commit gives the event loop a turn, as the SQL backends' commits do: a long run
        of fast steps must never keep the loop's other tasks and timers waiting.
        """
        await asyncio.sleep(0)
        try:
            outcome = self.execute(plan)
        except (LeaseLost, InstanceExists, DuplicateWorkflowError) as e:
            raise StorageError("commit", None, e) from e
        for observer in self.commit_observers:
            observer(plan)
        return outcome

    async def read(self, instance_id: str, key: str) -> str | None:
        """The JSON text under ``key``."""
        return self.data.get(instance_id, {}).get(key)

    async def read_many(self, instance_id: str, keys: Sequence[str]) -> dict[str, str]:
        """The JSON text of those of ``keys`` that exist."""
        stored = self.data.get(instance_id, {})
        return {key: stored[key] for key in keys if key in stored}

    async def read_prefix(self, instance_id: str, prefix: str) -> dict[str, str]:
        """Every key under ``prefix`` with its JSON text."""
        stored = self.data.get(instance_id, {})
        return {k: v for k, v in stored.items() if k.startswith(prefix)}

    async def read_alarm(self, instance_id: str) -> int | None:
        """The instance's alarm."""
        return self.alarms.get(instance_id)

    async def pending_inbox(self, instance_id: str) -> tuple[list[InboxMessage], int]:
        """The unconsumed messages, and the number of the last one."""
        messages = self.inboxes.get(instance_id, [])
        row = self.rows.get(instance_id)
        return [m for m in messages if not m.consumed], 0 if row is None else row.inbox_seq

    async def append(self, message: Outgoing, now: int) -> AppendOutcome:
        """Append ``message`` and wake its instance if it waits (domain/inbox.py)."""
        outcome = self._append(message, now)
        if outcome.seq is not None:
            self.commits += 1
        return outcome

    def _append(self, message: Outgoing, now: int) -> AppendOutcome:
        iid = message.instance_id
        row = self.rows.get(iid)
        if row is None:
            return AppendOutcome(None)
        messages = self.inboxes.setdefault(iid, [])
        if message.dedupe_key is not None and any(
            m.dedupe_key == message.dedupe_key for m in messages
        ):
            return AppendOutcome(row.status, duplicate=True, workflow=row.workflow)
        if row.status in TERMINAL_TAGS:
            return AppendOutcome(row.status, workflow=row.workflow)
        row.inbox_seq += 1
        messages.append(
            InboxMessage(
                row.inbox_seq,
                message.kind,
                message.name,
                loads(message.payload),
                now,
                message.dedupe_key,
            )
        )
        if wakes(message.kind, row.status):
            due = self.alarms.get(iid)
            self.alarms[iid] = now if due is None else min(due, now)
            self._wake()
        return AppendOutcome(row.status, row.inbox_seq, workflow=row.workflow)

    # -- InstanceHost ---------------------------------------------------------------------

    def now(self) -> int:
        """The backend's clock."""
        return self.clock.now()

    async def open(self) -> None:
        """Nothing to connect."""

    async def close(self) -> None:
        """Nothing to disconnect."""

    def runtime(self, instance_id: str, lease: LeaseHold | None = None) -> InstanceRuntime:
        """The runtime of one instance (fenced by ``lease`` when given)."""
        return instance_runtime(self, instance_id, lease)

    async def instance(self, instance_id: str) -> InstanceRow | None:
        """The row of one instance."""
        row = self.rows.get(instance_id)
        return None if row is None else row.frozen(instance_id)

    async def list_instances(
        self, status: str | None, workflow: str | None, limit: int
    ) -> list[InstanceRow]:
        """Instances by status and/or workflow, most recently updated first."""
        found = [
            attrs.evolve(row.frozen(iid), due_at=self.alarms.get(iid))
            for iid, row in self.rows.items()
            if (status is None or row.status == status)
            and (workflow is None or row.workflow == workflow)
        ]
        found.sort(key=lambda r: (-r.updated_at, r.id))
        return found[:limit]

    async def read_inbox(self, instance_id: str) -> list[InboxMessage]:
        """Every message of the instance, in delivery order."""
        return list(self.inboxes.get(instance_id, []))

    async def next_due(
        self, queues: Collection[str] | None = None, workflows: Collection[str] | None = None
    ) -> tuple[int | None, int | None]:
        """The earliest alarm of ``queues``' instances of ``workflows``, and of the others'
        (``InstanceHost.next_due``)."""
        mine: int | None = None
        other: int | None = None
        for iid, at in self.alarms.items():
            row = self.rows.get(iid)
            if row is None or (queues is not None and row.queue not in queues):
                continue
            if workflows is None or row.workflow in workflows:
                mine = at if mine is None else min(mine, at)
            else:
                other = at if other is None else min(other, at)
        return mine, other

    async def due_elsewhere(
        self, now: int, queues: Collection[str], workflows: Collection[str], limit: int
    ) -> list[InstanceRow]:
        """Due, free instances of ``queues`` whose workflow is none of ``workflows``."""
        found = [
            row.frozen(iid)
            for iid, at in sorted(self.alarms.items(), key=lambda item: item[1])
            if at <= now
            and (row := self.rows.get(iid)) is not None
            and self._free(row, now)
            and row.queue in queues
            and row.workflow not in workflows
        ]
        return found[:limit]

    def _free(self, row: _Row, now: int) -> bool:
        return row.lease_owner is None or (
            row.lease_expires_at is not None and row.lease_expires_at <= now
        )

    def _dedupe_holder(self, queue: str, dedupe_id: str) -> str | None:
        for iid, row in self.rows.items():
            if (
                row.queue == queue
                and row.dedupe_id == dedupe_id
                and row.status not in TERMINAL_TAGS
            ):
                return iid
        return None

    async def claim_due(
        self, owner: str, now: int, lease_ms: int, limit: int, scope: ClaimScope | None = None
    ) -> list[Claimed]:
        """Lease due instances (``InstanceHost.claim_due``); their alarms move to the
        lease's expiry."""
        scope = scope if scope is not None else ClaimScope()
        limited = {q.name: q for q in scope.limits}
        room = dict(scope.room)
        due = sorted((at, iid) for iid, at in self.alarms.items() if at <= now)
        claimed: list[Claimed] = []

        def take(iid: str, row: _Row, slot: bool) -> None:
            row.lease_owner, row.lease_expires_at = owner, now + lease_ms
            if slot:
                row.slot, row.slot_at = True, now
            self.alarms[iid] = now + lease_ms
            claimed.append(Claimed(iid, row.inbox_seq, row.queue))
            if row.queue in room:
                room[row.queue] -= 1

        starts: dict[str, list[tuple[str, _Row]]] = {}
        for _, iid in due:
            row = self.rows.get(iid)
            if row is None or not self._free(row, now) or not _serves(scope, row):
                continue
            if row.queue in limited and row.status == "Queued" and not row.slot:
                starts.setdefault(row.queue, []).append((iid, row))
            elif len(claimed) < limit and room.get(row.queue, 1) > 0:
                take(iid, row, slot=False)
        for name, waiting in starts.items():
            queue = limited[name]
            holders = [r for r in self.rows.values() if r.queue == name and r.slot]
            window = queue.rate_limit
            recent = sum(
                1
                for r in self.rows.values()
                if window is not None
                and r.queue == name
                and r.slot_at is not None
                and r.slot_at > now - window[1]
            )
            by_partition: dict[str | None, int] = {}
            for r in holders:
                by_partition[r.partition_key] = by_partition.get(r.partition_key, 0) + 1
            waiting.sort(key=lambda c: (c[1].priority, c[1].seq))
            budget = min(limit - len(claimed), room.get(name, limit))
            chosen = admit(
                queue,
                [(iid, r.partition_key) for iid, r in waiting],
                len(holders),
                recent,
                by_partition,
                budget,
            )
            rows = dict(waiting)
            for iid in chosen:
                take(iid, rows[iid], slot=True)
        return claimed

    async def save_queues(self, queues: Sequence[Queue], now: int) -> None:
        """Keep the queues' limits."""
        for queue in queues:
            self.queues[queue.name] = queue

    async def queue_stats(self) -> list[QueueStats]:
        """Waiting and running instances per queue, with the stored limits."""
        counts = Counter((row.queue, row.status) for row in self.rows.values())
        limits = [
            (q.name, q.concurrency, q.worker_concurrency, q.rate, q.partition_concurrency)
            for q in self.queues.values()
        ]
        return stats_of_queues(((q, s, n) for (q, s), n in counts.items()), limits)

    async def read_schedules(self) -> list[StoredSchedule]:
        """Every stored schedule, by id."""
        return [self.schedules[iid] for iid in sorted(self.schedules)]

    async def write_schedule(
        self, row: StoredSchedule, expected: int | None, seen_at: int | None = None
    ) -> bool:
        """Store a schedule (a compare-and-set on its version)."""
        stored = self.schedules.get(row.id)
        if expected is None:
            if stored is not None:
                return False
        elif (
            stored is None
            or stored.version != expected
            or (seen_at is not None and stored.seen_at != seen_at)
        ):
            return False
        if stored is not None and stored.seen_at > row.seen_at:
            row = attrs.evolve(row, seen_at=stored.seen_at)  # the heartbeat never goes back
        self.schedules[row.id] = row
        return True

    async def touch_schedules(self, ids: Collection[str], now: int) -> None:
        """Mark ``ids`` seen at ``now`` (never back)."""
        for iid in ids:
            stored = self.schedules.get(iid)
            if stored is not None and stored.seen_at < now:
                self.schedules[iid] = attrs.evolve(stored, seen_at=now)

    async def acquire(self, instance_id: str, owner: str, now: int, lease_ms: int) -> bool:
        """Lease one instance if it is free, expired or already ours."""
        row = self.rows.get(instance_id)
        if row is None or not (row.lease_owner == owner or self._free(row, now)):
            return False
        row.lease_owner, row.lease_expires_at = owner, now + lease_ms
        return True

    async def release(self, instance_id: str, owner: str, wake_at: int | None = None) -> None:
        """Give the lease back (a no-op when it is not ours)."""
        row = self.rows.get(instance_id)
        if row is not None and row.lease_owner == owner:
            row.lease_owner = row.lease_expires_at = None
            if wake_at is not None and row.status == "Running" and instance_id in self.alarms:
                self.alarms[instance_id] = min(self.alarms[instance_id], wake_at)
                self._wake()

    async def release_all(self, owner: str, now: int) -> int:
        """Give back every lease of ``owner``; its instances come due now (a claim moved
        their alarms to the lease's expiry)."""
        released = 0
        for iid, row in self.rows.items():
            if row.lease_owner != owner:
                continue
            row.lease_owner = row.lease_expires_at = None
            if iid in self.alarms:
                self.alarms[iid] = min(self.alarms[iid], now)
            released += 1
        if released:
            self._wake()
        return released

    async def renew(self, owner: str, now: int, lease_ms: int) -> list[str]:
        """Extend every lease of ``owner``, and the alarms behind its running instances."""
        expires = now + lease_ms
        renewed = []
        for iid, row in self.rows.items():
            if row.lease_owner == owner:
                row.lease_expires_at = expires
                renewed.append(iid)
                if row.status == "Running" and self.alarms.get(iid, expires) < expires:
                    self.alarms[iid] = expires
        return renewed

    async def expire_dead_local_owners(self, now: int) -> int:
        """Nothing outlives this process here."""
        return 0

    async def check(self) -> None:
        """Nothing can go away under a dict."""

    async def wait_for_alarm(self, timeout_s: float) -> None:
        """Wait for an alarm set by this backend (or ``timeout_s``)."""
        event = self._alarm_set
        if event is None:
            event = self._alarm_set = asyncio.Event()
        event.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), timeout_s)


def _serves(scope: ClaimScope, row: _Row) -> bool:
    """Whether a claim of ``scope`` may take an instance in ``row``."""
    known = scope.workflows is None or row.workflow in scope.workflows
    return known and row.queue in scope.served


MemoryRuntime = ClockRuntime
"""The in-memory runtime adapter is the shared one: an instance id and a clock."""
