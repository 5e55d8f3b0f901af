"""Runtimes of one instance, with the handle that drives them, over each backend under test.

A test asks for the ``runtimes`` fixture (``tests.support.fixtures``) and calls it as it
would call ``durably.testing.create_in_memory_runtime``: ``runtimes("i1", 1000)`` gives a
runtime and its handle over the backend of the test's parameter. Every handle moves the
same kind of virtual clock and reads the instance's alarm and keys, whatever the backend.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol

from durably.adapters.clock import ManualClock
from durably.adapters.memory import MemoryBackend
from durably.adapters.sqlite import SqliteHost
from durably.domain.records import JsonValue
from durably.ports import InstanceRuntime
from durably.testing import create_in_memory_runtime
from durably.testing.sqlite import create_sqlite_runtime

__all__ = [
    "BACKENDS",
    "MemoryRuntimes",
    "RuntimeFactory",
    "RuntimeHandle",
    "SqliteRuntimes",
    "sqlite_runtimes",
]

BACKENDS = ("memory", "sqlite", "postgres")
"""The backends every engine test runs on, in the order of their test ids."""


class RuntimeHandle(Protocol):
    """The test's grip on one instance's runtime: its virtual clock, alarm, keys and commits."""

    @property
    def clock(self) -> ManualClock:
        """The virtual clock of the runtime."""
        ...

    @property
    def instance_id(self) -> str:
        """The instance the handle looks at."""
        ...

    @property
    def backend(self) -> object:
        """The store under the runtime; pass it as ``backend=`` to share it."""
        ...

    @property
    def commits(self) -> int:
        """How many commits the store has applied (to count durability points)."""
        ...

    def now(self) -> int:
        """The virtual clock's time (ms)."""
        ...

    def advance_time(self, ms: int) -> int:
        """Move the clock forward by ``ms``; returns the new time."""
        ...

    def set_time(self, ms: int) -> None:
        """Set the clock to ``ms``."""
        ...

    def scheduled_time(self) -> int | None:
        """When the instance's alarm is set for, or ``None``."""
        ...

    def should_alarm_fire(self) -> bool:
        """Whether an alarm is set and due at the clock's time."""
        ...

    def clear_alarm(self) -> None:
        """Clear the alarm (as the host does before it fires one)."""
        ...

    def storage_snapshot(self) -> dict[str, JsonValue]:
        """A copy of every stored key and value of the instance."""
        ...


class RuntimeFactory(Protocol):
    """``create_in_memory_runtime``'s signature, over one backend under test."""

    @property
    def name(self) -> str:
        """The backend's name (one of ``BACKENDS``)."""
        ...

    def __call__(
        self,
        instance_id: str | None = None,
        initial_time: int | None = None,
        *,
        backend: object = None,
    ) -> tuple[InstanceRuntime, RuntimeHandle]:
        """The runtime of ``instance_id`` and its handle.

        Args:
            instance_id: the instance's id (a new UUID when omitted).
            initial_time: the clock's start in epoch ms (0 for a new store when omitted).
            backend: the ``backend`` of another handle of this factory, to share its
                store (and clock) instead of opening a new one.
        """
        ...


class MemoryRuntimes:
    """In-memory runtimes: ``create_in_memory_runtime`` itself."""

    name = "memory"

    def __call__(
        self,
        instance_id: str | None = None,
        initial_time: int | None = None,
        *,
        backend: object = None,
    ) -> tuple[InstanceRuntime, RuntimeHandle]:
        """A runtime over a new ``MemoryBackend``, or over ``backend``."""
        if backend is not None and not isinstance(backend, MemoryBackend):
            raise TypeError(f"not a store of the memory backend: {backend!r}")
        return create_in_memory_runtime(instance_id, initial_time, backend=backend)


class SqliteRuntimes:
    """SQLite runtimes: one database file per store, in ``folder``."""

    name = "sqlite"

    def __init__(self, folder: str) -> None:
        self.folder = folder
        self.opened: list[SqliteHost] = []

    def __call__(
        self,
        instance_id: str | None = None,
        initial_time: int | None = None,
        *,
        backend: object = None,
    ) -> tuple[InstanceRuntime, RuntimeHandle]:
        """A runtime over a new database file, or over ``backend``'s."""
        if backend is not None:
            if not isinstance(backend, SqliteHost):
                raise TypeError(f"not a store of the sqlite backend: {backend!r}")
            return create_sqlite_runtime("", instance_id, initial_time, backend=backend)
        path = f"{self.folder}/db{len(self.opened)}.sqlite"
        runtime, handle = create_sqlite_runtime(path, instance_id, initial_time)
        self.opened.append(handle.backend)
        return runtime, handle

    def close(self) -> None:
        """Close every database this factory opened."""
        for host in self.opened:
            host.db.close_blocking()


@contextmanager
def sqlite_runtimes() -> Iterator[SqliteRuntimes]:
    """SQLite runtimes in a temporary folder, removed (databases closed) afterwards."""
    folder = tempfile.mkdtemp(prefix="durably-runtimes-")
    factory = SqliteRuntimes(folder)
    try:
        yield factory
    finally:
        try:
            factory.close()
        finally:
            shutil.rmtree(folder, ignore_errors=True)
