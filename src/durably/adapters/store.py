"""The small protocol every backend implements, and the grouped commit of the SQL backends.

A backend (memory, SQLite, PostgreSQL) is an ``InstanceStore``: a few reads of one
instance's rows, ``commit`` of a ``CommitPlan`` and ``append`` to an inbox. The
storage, scheduler and inbox adapters of an instance (``runtime.py``) are written once
over it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

from durably.adapters.clock import Clock
from durably.adapters.plan import CommitOutcome, CommitPlan
from durably.domain.errors import StorageError
from durably.domain.inbox import AppendOutcome, InboxMessage, Outgoing

__all__ = ["InstanceStore", "GroupCommit", "BatchWriter", "ImmediateWriter"]


class InstanceStore(Protocol):
    """What the instance adapters need from a backend (JSON values as text)."""

    clock: Clock
    commits_renew_lease: bool

    async def read(self, instance_id: str, key: str) -> str | None:
        """The JSON text under ``key``."""
        ...

    async def read_many(self, instance_id: str, keys: Sequence[str]) -> dict[str, str]:
        """The JSON text of those of ``keys`` that exist."""
        ...

    async def read_prefix(self, instance_id: str, prefix: str) -> dict[str, str]:
        """Every key under ``prefix`` with its JSON text."""
        ...

    async def read_alarm(self, instance_id: str) -> int | None:
        """The instance's alarm time."""
        ...

    async def pending_inbox(self, instance_id: str) -> tuple[list[InboxMessage], int]:
        """The unconsumed messages in order, and the number of the last message (0: none)."""
        ...

    async def commit(self, plan: CommitPlan) -> CommitOutcome:
        """Execute ``plan`` durably; ``StorageError`` (its cause ``LeaseLost`` or
        ``InstanceExists`` when refused) when it did not commit."""
        ...

    async def append(self, message: Outgoing, now: int) -> AppendOutcome:
        """Append ``message`` to its instance's inbox (domain/inbox.py), one commit."""
        ...


BatchWriter = Callable[[list[CommitPlan]], Awaitable[list[CommitOutcome | StorageError]]]
"""Commits a batch of plans in one transaction: an outcome, or the error, per plan."""

ImmediateWriter = Callable[[list[CommitPlan]], list[CommitOutcome | StorageError] | None]
"""Commits a batch at once if it can do so without waiting (``None``: it would wait)."""

_Batch = list[tuple[CommitPlan, "asyncio.Future[CommitOutcome]"]]


def _settle(batch: _Batch, outcomes: list[CommitOutcome | StorageError]) -> None:
    for (_, future), outcome in zip(batch, outcomes, strict=True):
        if future.done():
            continue
        if isinstance(outcome, StorageError):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)


class GroupCommit:
    """Plans wait here and are committed together: one transaction for all that wait.

    The first plan that finds nothing forming or in flight leads a batch: its task lets
    the event loop run the tasks that are ready (one turn), so that their plans join,
    and then commits the batch at once when the backend can do so without waiting
    (``immediate``: SQLite when nobody else holds the lock). Otherwise the batch goes to
    a writer task (``write``: SQLite waiting for the lock in its thread, or a PostgreSQL
    round trip), and plans that arrive while it is in flight form its next batch. So
    concurrent workflows share commits (one fsync or one round trip for many), and a
    workflow run alone pays one turn of the loop. A leader cancelled during its turn
    still commits the batch it formed; a workflow cancelled while its plan waits for the
    writer task cannot strand the plans of others.
    """

    def __init__(self, write: BatchWriter, immediate: ImmediateWriter | None = None) -> None:
        self._write = write
        self._immediate = immediate
        self._waiting: _Batch = []
        self._forming = False
        self._writer: asyncio.Task[None] | None = None

    async def commit(self, plan: CommitPlan) -> CommitOutcome:
        """Commit ``plan`` with whatever else waits; its outcome once durable."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[CommitOutcome] = loop.create_future()
        self._waiting.append((plan, future))
        writer = self._writer
        if self._forming or (writer is not None and not writer.done()):
            return await future  # a batch is forming, or the writer will take it next
        if self._immediate is None:
            # No commit without waiting: the writer task runs after the ready tasks anyway.
            self._writer = loop.create_task(self._write_all())
            return await future
        self._forming = True
        try:
            await asyncio.sleep(0)  # the plans of the tasks that are ready join the batch
        finally:
            self._forming = False
            batch, self._waiting = self._waiting, []
            try:
                outcomes = self._immediate([p for p, _ in batch])
            except Exception as e:
                outcomes = [StorageError("commit", None, e)] * len(batch)
            if outcomes is None:
                self._waiting = batch + self._waiting
                self._writer = loop.create_task(self._write_all())
            else:
                _settle(batch, outcomes)
        return await future

    async def _write_all(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting, []
            try:
                outcomes = await self._write([plan for plan, _ in batch])
            except BaseException as e:  # cancelled, or a bug: nothing is known to be durable
                error = e if isinstance(e, StorageError) else StorageError("commit", None, e)
                _settle(batch, [error] * len(batch))
                if not isinstance(e, Exception):
                    raise
                continue
            _settle(batch, outcomes)

    async def drain(self) -> None:
        """Wait until every waiting plan is committed (or failed)."""
        writer = self._writer
        if writer is not None and not writer.done():
            await asyncio.wait({writer})
