"""The storage port: one instance's key-value namespace."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Protocol

from returns.result import Result

from durably.domain.errors import StorageError
from durably.domain.records import JsonValue

__all__ = ["StorageAdapter"]


class StorageAdapter(Protocol):
    """Reads and writes one instance's keys; values are JSON data (stored as copies).

    ``transaction()`` opens an atomic unit of work: every read inside it sees the
    writes made inside it, and every write made inside it through this storage (and
    through the scheduler of the same runtime) is committed together when the block
    exits normally, or discarded when it raises. A commit that fails raises
    ``StorageError``. Transactions nest by joining the outermost one.
    """

    async def get(self, key: str) -> Result[JsonValue | None, StorageError]:
        """The value stored under ``key``, or ``None`` when there is none."""
        ...

    async def get_many(self, keys: Sequence[str]) -> Result[dict[str, JsonValue], StorageError]:
        """The values stored under ``keys`` (missing keys are absent from the answer)."""
        ...

    async def put(self, key: str, value: JsonValue) -> Result[None, StorageError]:
        """Store ``value`` under ``key``."""
        ...

    async def put_batch(self, entries: Mapping[str, JsonValue]) -> Result[None, StorageError]:
        """Store every entry, atomically."""
        ...

    async def delete(self, key: str) -> Result[bool, StorageError]:
        """Remove ``key``; ``True`` when it existed."""
        ...

    async def delete_all(self) -> Result[None, StorageError]:
        """Remove every key of the instance."""
        ...

    async def list(self, prefix: str) -> Result[dict[str, JsonValue], StorageError]:
        """Every entry whose key starts with ``prefix``, in key order."""
        ...

    def transaction(self) -> AbstractAsyncContextManager[None]:
        """An atomic unit of work (see the class docstring)."""
        ...
