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

__all__ = ["InstanceStore", "GroupCommit", "BatchWriter"]


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


class GroupCommit:
    """Plans wait here; one flusher task commits all that wait, in one transaction.

    The flusher lets every task that is ready to run add its plan first (one turn of
    the event loop), then hands the batch to ``write``; plans that arrive while a batch
    is being written form the next one. So concurrent workflows share commits (one
    fsync or one round trip for many), and a workflow run alone waits one turn of the
    loop. The flusher is a task of its own: a workflow that is cancelled while its
    plan waits cannot strand the plans of others.
    """

    def __init__(self, write: BatchWriter) -> None:
        self._write = write
        self._waiting: list[tuple[CommitPlan, asyncio.Future[CommitOutcome]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def commit(self, plan: CommitPlan) -> CommitOutcome:
        """Commit ``plan`` with whatever else waits; its outcome once durable."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[CommitOutcome] = loop.create_future()
        self._waiting.append((plan, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = loop.create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        await asyncio.sleep(0)  # the plans of the tasks that are ready join this batch
        while self._waiting:
            batch, self._waiting = self._waiting, []
            try:
                outcomes = await self._write([plan for plan, _ in batch])
            except BaseException as e:  # cancelled, or a bug: nothing is known to be durable
                error = e if isinstance(e, StorageError) else StorageError("commit", None, e)
                for _, future in batch:
                    if not future.done():
                        future.set_exception(error)
                if not isinstance(e, Exception):
                    raise
                continue
            for (_, future), outcome in zip(batch, outcomes, strict=True):
                if future.done():
                    continue
                if isinstance(outcome, StorageError):
                    future.set_exception(outcome)
                else:
                    future.set_result(outcome)

    async def drain(self) -> None:
        """Wait until every waiting plan is committed (or failed)."""
        flusher = self._flusher
        if flusher is not None and not flusher.done():
            await asyncio.wait({flusher})
