"""The host port: what the engine needs from a backend beyond one instance's ports.

Listing instances, finding due alarms, delivering messages to inboxes, and leases:
claiming, renewing, releasing.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Protocol

import attrs

from durably.domain.inbox import AppendOutcome, InboxMessage, Outgoing
from durably.domain.lease import LeaseHold
from durably.domain.queues import DEFAULT_QUEUE, ClaimScope, Queue, QueueStats
from durably.domain.schedules import StoredSchedule
from durably.ports.runtime import InstanceRuntime

__all__ = ["InstanceRow", "Claimed", "InstanceHost"]


@attrs.frozen
class InstanceRow:
    """A row of the instances table."""

    id: str
    workflow: str
    status: str
    created_at: int
    updated_at: int
    lease_owner: str | None = None
    lease_expires_at: int | None = None
    due_at: int | None = None
    """Its alarm (filled by ``list_instances`` only): when a worker should take it up."""


@attrs.frozen
class Claimed:
    """An instance a claim leased, with the number of its last inbox message then."""

    instance_id: str
    inbox_seq: int
    queue: str = DEFAULT_QUEUE


class InstanceHost(Protocol):
    """A backend hosting many instances: their runtimes, alarms, inboxes and leases."""

    commits_renew_lease: bool
    """Whether every fenced commit extends its lease (else only the heartbeat and the
    commits that write a status do)."""

    def now(self) -> int:
        """The host's clock (epoch ms); leases and alarms are read against it."""
        ...

    async def open(self) -> None:
        """Connect and migrate."""
        ...

    async def close(self) -> None:
        """Flush waiting commits and disconnect."""
        ...

    def runtime(self, instance_id: str, lease: LeaseHold | None) -> InstanceRuntime:
        """The runtime of one instance; with ``lease``, every commit is fenced by it."""
        ...

    async def instance(self, instance_id: str) -> InstanceRow | None:
        """The row of one instance."""
        ...

    async def list_instances(
        self, status: str | None, workflow: str | None, limit: int
    ) -> list[InstanceRow]:
        """Instances by status and/or workflow, most recently updated first."""
        ...

    async def read(self, instance_id: str, key: str) -> str | None:
        """One stored value as JSON text."""
        ...

    async def read_prefix(self, instance_id: str, prefix: str) -> dict[str, str]:
        """Stored values under a key prefix, as JSON text."""
        ...

    async def read_inbox(self, instance_id: str) -> list[InboxMessage]:
        """Every message of an instance's inbox, consumed or not, in delivery order."""
        ...

    async def append(self, message: Outgoing, now: int) -> AppendOutcome:
        """Append a message to an instance's inbox (not to a terminal one), and make the
        instance due at ``now`` if it waits (``domain/inbox.py``), in one commit."""
        ...

    async def next_due(
        self, queues: Collection[str] | None = None, workflows: Collection[str] | None = None
    ) -> tuple[int | None, int | None]:
        """In one statement: the earliest alarm of the instances of ``queues`` (all, when
        ``None``) whose workflow is one of ``workflows`` (any, when ``None``), and the
        earliest of the other workflows' (``None`` when ``workflows`` is): what a worker
        without their workflow leaves alone."""
        ...

    async def due_elsewhere(
        self, now: int, queues: Collection[str], workflows: Collection[str], limit: int
    ) -> list[InstanceRow]:
        """Up to ``limit`` due instances of ``queues``, not leased, whose workflow is none
        of ``workflows`` (what a worker without their workflow leaves alone)."""
        ...

    async def claim_due(
        self, owner: str, now: int, lease_ms: int, limit: int, scope: ClaimScope | None = None
    ) -> list[Claimed]:
        """Lease up to ``limit`` due instances of the queues ``scope`` serves whose lease is
        free or expired: first those that need no new slot, in due order, then starts of
        its limited queues, by priority then FIFO, as their limits allow (``admit``),
        counted and taken in the same transaction (serialized per queue). ``None``: the
        default queue only, without limits."""
        ...

    async def save_queues(self, queues: Sequence[Queue], now: int) -> None:
        """Store the queues' limits (``durably queues`` shows them)."""
        ...

    async def queue_stats(self) -> list[QueueStats]:
        """Per queue with instances or stored limits: waiting, running, limits."""
        ...

    async def read_schedules(self) -> list[StoredSchedule]:
        """Every stored schedule (``domain/schedules.py``), by id."""
        ...

    async def write_schedule(
        self, row: StoredSchedule, expected: int | None, seen_at: int | None = None
    ) -> bool:
        """Store ``row``: when ``expected`` is ``None``, only if no schedule has its id;
        else only if the stored one is at version ``expected`` (and, when given, was last
        seen at ``seen_at``). Whether it was written (a compare-and-set). An update never
        moves the stored ``seen_at`` back."""
        ...

    async def touch_schedules(self, ids: Collection[str], now: int) -> None:
        """The heartbeat of an open engine: its schedules were seen at ``now`` (their
        version is not bumped: it never fails another writer's compare-and-set)."""
        ...

    async def acquire(self, instance_id: str, owner: str, now: int, lease_ms: int) -> bool:
        """Lease one instance if it is free, expired or already ``owner``'s."""
        ...

    async def release(self, instance_id: str, owner: str, wake_at: int | None = None) -> None:
        """Give a lease back (a no-op if it is not ``owner``'s); with ``wake_at``, a running
        instance comes due then (else at its lease's old expiry, a back-off)."""
        ...

    async def release_all(self, owner: str, now: int) -> int:
        """Give back every lease of ``owner``; its running instances come due at ``now``."""
        ...

    async def renew(self, owner: str, now: int, lease_ms: int) -> list[str]:
        """Extend every lease of ``owner``; the ids of the instances whose lease it extended."""
        ...

    async def expire_dead_local_owners(self, now: int) -> int:
        """Expire at once the leases of dead processes of this host."""
        ...

    async def check(self) -> None:
        """``StorageError`` when the backend can no longer be trusted (a SQLite file that
        was deleted or replaced while open); the worker checks at each poll."""
        ...

    async def wait_for_alarm(self, timeout_s: float) -> None:
        """Wait up to ``timeout_s`` for another process to set an alarm (or just wait)."""
        ...
