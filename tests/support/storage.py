"""Reading an instance back through the ``StorageAdapter`` port."""

from __future__ import annotations

from durably.domain.records import JsonValue
from durably.ports import StorageAdapter

__all__ = ["contents"]


async def contents(storage: StorageAdapter) -> dict[str, JsonValue]:
    """Every key and value of an instance."""
    return (await storage.list("")).unwrap()
