"""An instance's keys, alarm and inbox as the services use them: errors raised.

The ports answer with ``returns`` containers (``Result``); inside the services, code
raises. ``Namespace`` is the one place where a port's ``Failure`` becomes the exception
it carries, so the services read like ordinary code, and each service turns exceptions
back into a ``Result`` once, at its public operations (``results.operation``).
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import TypeVar

from returns.result import Result, Success

from durably.domain.inbox import AppendOutcome, InboxMessage, Outgoing
from durably.domain.records import JsonValue
from durably.ports import InboxAdapter, SchedulerAdapter, StorageAdapter

__all__ = ["Namespace"]

T = TypeVar("T")


def _raising(result: Result[T, BaseException]) -> T:
    if isinstance(result, Success):
        return result.unwrap()  # type: ignore[no-any-return]
    raise result.failure()


class Namespace:
    """One instance's storage, scheduler and inbox, raising their errors."""

    __slots__ = ("_inbox", "_scheduler", "_storage")

    def __init__(
        self,
        storage: StorageAdapter,
        scheduler: SchedulerAdapter | None = None,
        inbox: InboxAdapter | None = None,
    ) -> None:
        self._storage = storage
        self._scheduler = scheduler
        self._inbox = inbox

    # -- keys -----------------------------------------------------------------------------

    async def get(self, key: str) -> JsonValue | None:
        """The value under ``key``, or ``None``."""
        return _raising(await self._storage.get(key))

    async def get_many(self, keys: Sequence[str]) -> dict[str, JsonValue]:
        """The values of those of ``keys`` that exist."""
        return _raising(await self._storage.get_many(keys))

    async def put(self, key: str, value: JsonValue) -> None:
        """Store ``value`` under ``key``."""
        _raising(await self._storage.put(key, value))

    async def put_batch(self, entries: Mapping[str, JsonValue]) -> None:
        """Store every entry."""
        _raising(await self._storage.put_batch(entries))

    async def delete(self, key: str) -> bool:
        """Remove ``key``; whether it existed."""
        return _raising(await self._storage.delete(key))

    async def delete_all(self) -> None:
        """Remove every key."""
        _raising(await self._storage.delete_all())

    async def list(self, prefix: str) -> dict[str, JsonValue]:
        """The entries under ``prefix``, in key order."""
        return _raising(await self._storage.list(prefix))

    def transaction(self) -> AbstractAsyncContextManager[None]:
        """One atomic unit of work (the alarm and the inbox join it)."""
        return self._storage.transaction()

    # -- the alarm ------------------------------------------------------------------------

    def _alarm(self) -> SchedulerAdapter:
        if self._scheduler is None:  # pragma: no cover - a wiring mistake
            raise RuntimeError("this namespace was built without its scheduler")
        return self._scheduler

    async def schedule(self, at: int) -> None:
        """Set the alarm to ``at``."""
        _raising(await self._alarm().schedule(at))

    async def clear_alarm(self) -> None:
        """Clear the alarm."""
        _raising(await self._alarm().cancel())

    async def alarm(self) -> int | None:
        """When the alarm is set for."""
        return _raising(await self._alarm().get_scheduled())

    # -- the inbox ------------------------------------------------------------------------

    def _messages(self) -> InboxAdapter:
        if self._inbox is None:  # pragma: no cover - a wiring mistake
            raise RuntimeError("this namespace was built without its inbox")
        return self._inbox

    async def pending(self) -> builtins.list[InboxMessage]:
        """The messages not consumed yet, in delivery order."""
        return _raising(await self._messages().pending())

    async def consume(self, seqs: Iterable[int]) -> None:
        """Mark messages consumed (with the open unit of work)."""
        _raising(await self._messages().consume(seqs))

    async def append(self, message: Outgoing) -> AppendOutcome:
        """Append ``message`` to its instance's inbox."""
        return _raising(await self._messages().append(message))

    async def send(self, message: Outgoing) -> None:
        """Append ``message`` to another instance's inbox, in this instance's open commit."""
        _raising(await self._messages().send(message))

    def has_news(self) -> bool:
        """Whether a commit saw messages beyond the last read."""
        return self._messages().has_news()
