"""The inbox port: one instance's messages from outside its lease (domain/inbox.py)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from returns.result import Result

from durably.domain.errors import StorageError
from durably.domain.inbox import AppendOutcome, InboxMessage, Outgoing

__all__ = ["InboxAdapter"]


class InboxAdapter(Protocol):
    """Reads, consumes and appends the messages of one instance.

    ``consume`` joins the open transaction of the instance's storage, so a message is
    consumed in the commit that records what was done with it.
    """

    async def pending(self) -> Result[list[InboxMessage], StorageError]:
        """The messages not consumed yet, in delivery order."""
        ...

    def has_news(self) -> bool:
        """Whether a commit saw messages that arrived after the last ``pending`` (no query)."""
        ...

    async def consume(self, seqs: Iterable[int]) -> Result[None, StorageError]:
        """Mark messages consumed (in the open transaction, or as a commit of its own)."""
        ...

    async def append(self, message: Outgoing) -> Result[AppendOutcome, StorageError]:
        """Append ``message`` (for this instance or another), in a commit of its own."""
        ...

    async def send(self, message: Outgoing) -> Result[None, StorageError]:
        """Append ``message`` to another instance's inbox with this instance's open unit
        of work (in its commit, and only if that commit applies), or in a commit of its
        own."""
        ...
