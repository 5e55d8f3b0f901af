"""``ExecutionScope.read_inbox``: the branches of a ``gather`` that ask at the same time
share one read of the inbox, and a caller that saw news the shared read may have missed
reads again."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any, cast

from returns.result import Result, Success

from durably.domain.errors import StorageError
from durably.domain.inbox import CANCEL, EVENT, AppendOutcome, InboxMessage, Outgoing
from durably.services.context import ExecutionScope
from durably.services.namespace import Namespace


class GatedInbox:
    """An inbox whose reads wait for ``gate``, each returning the messages there when it
    started (as a database snapshot would), and counting themselves."""

    def __init__(self) -> None:
        self.messages: list[InboxMessage] = []
        self.seen = 0  # the last number a commit brought back
        self.read = 0  # the last number a read returned
        self.reads = 0
        self.gate = asyncio.Event()

    def deliver(self, kind: str, name: str) -> None:
        seq = len(self.messages) + 1
        self.messages.append(InboxMessage(seq, kind, name, None, 0))
        self.seen = seq

    async def pending(self) -> Result[list[InboxMessage], StorageError]:
        self.reads += 1
        snapshot = list(self.messages)
        await self.gate.wait()
        self.read = max(self.read, len(snapshot))
        return Success(snapshot)

    def has_news(self) -> bool:
        return self.seen > self.read

    async def consume(self, seqs: Iterable[int]) -> Result[None, StorageError]:
        raise NotImplementedError

    async def append(self, message: Outgoing) -> Result[AppendOutcome, StorageError]:
        raise NotImplementedError

    async def send(self, message: Outgoing) -> Result[None, StorageError]:
        raise NotImplementedError


def scope_over(inbox: GatedInbox) -> ExecutionScope:
    unused = cast(Any, None)
    return ExecutionScope(
        workflow_id="p",
        workflow_name="parent",
        execution_id=None,
        input=None,
        mode="resume",
        keys=Namespace(unused, None, inbox),
        runtime=unused,
        state_machine=unused,
        events=unused,
    )


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_callers_at_the_same_time_share_one_read() -> None:
    inbox = GatedInbox()
    inbox.deliver(EVENT, "a")
    inbox.deliver(CANCEL, None)  # type: ignore[arg-type]
    scope = scope_over(inbox)
    callers = [asyncio.create_task(scope.read_inbox()) for _ in range(50)]
    await settle()
    inbox.gate.set()
    await asyncio.gather(*callers)
    assert inbox.reads == 1
    assert [m.seq for m in scope.messages or []] == [1, 2]
    assert [m.seq for m in scope.cancels] == [2]
    await scope.read_inbox()  # nothing in flight any more: a read of its own
    assert inbox.reads == 2


async def test_news_that_came_after_the_shared_read_began_is_read_again() -> None:
    inbox = GatedInbox()
    inbox.deliver(EVENT, "a")
    scope = scope_over(inbox)
    first = asyncio.create_task(scope.read_inbox())
    await settle()
    inbox.deliver(EVENT, "b")  # a commit saw it; the read in flight did not
    late = [asyncio.create_task(scope.read_inbox()) for _ in range(10)]
    await settle()
    inbox.gate.set()
    await asyncio.gather(first, *late)
    # The first read, then one more shared by every late caller.
    assert inbox.reads == 2
    assert [m.name for m in scope.messages or []] == ["a", "b"]
    assert not inbox.has_news()


async def test_a_caller_that_leaves_does_not_cancel_the_read_of_the_others() -> None:
    inbox = GatedInbox()
    inbox.deliver(EVENT, "a")
    scope = scope_over(inbox)
    starter = asyncio.create_task(scope.read_inbox())
    await settle()
    joiner = asyncio.create_task(scope.read_inbox())
    await settle()
    starter.cancel()
    await asyncio.gather(starter, return_exceptions=True)
    inbox.gate.set()
    await asyncio.wait_for(joiner, 10)
    assert inbox.reads == 1
    assert [m.name for m in scope.messages or []] == ["a"]
