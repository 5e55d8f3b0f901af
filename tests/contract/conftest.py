"""The backends every contract test runs against.

A backend plugs in with one ``BackendHarness`` class and one entry in
``HARNESS_FACTORIES``; the contract tests themselves never change.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable
from typing import Protocol

import pytest

from durably.adapters.clock import ManualClock
from durably.adapters.memory import MemoryBackend
from durably.adapters.postgres import PostgresHost
from durably.adapters.sqlite import SqliteHost
from durably.ports import InstanceHost, InstanceRuntime
from durably.testing import TestRuntimeHandle, create_in_memory_runtime
from tests.integration.pg_support import (
    acquire_database,
    drop_schema,
    pg_database,  # noqa: F401 - the session's database, requested by PostgresHarness
    release_database,
)

INSTANCE_A = "instance-a"
INSTANCE_B = "instance-b"
START_TIME = 1_700_000_000_000


class BackendHarness(Protocol):
    """One backend under test: runtimes of any instance over one shared store.

    A harness may also have an ``async def open()`` (awaited before the test, for a
    backend that opens asynchronously), and its class a ``session_fixtures`` tuple of
    fixture names that ``backend_factory`` requests before making it.
    """

    @property
    def controls_clock(self) -> bool:
        """Whether ``set_time``/``advance_time`` work (a virtual clock)."""
        ...

    @property
    def host(self) -> InstanceHost:
        """The backend itself, as the engine sees it."""
        ...

    def runtime(self, instance_id: str) -> InstanceRuntime:
        """The runtime of ``instance_id`` over the harness's shared backend."""
        ...

    def set_time(self, ms: int) -> None:
        """Set every runtime's clock to ``ms`` (only when ``controls_clock``)."""
        ...

    def advance_time(self, ms: int) -> None:
        """Move every runtime's clock forward by ``ms`` (only when ``controls_clock``)."""
        ...

    async def close(self) -> None:
        """Release the backend's resources."""
        ...


class MemoryHarness:
    """The in-memory backend, with a virtual clock shared by its runtimes."""

    def __init__(self) -> None:
        self.backend = MemoryBackend(clock=ManualClock(START_TIME))
        self._time = START_TIME
        self._handles: list[TestRuntimeHandle] = []

    @property
    def host(self) -> InstanceHost:
        """The ``MemoryBackend``."""
        return self.backend

    @property
    def controls_clock(self) -> bool:
        """The memory backend runs on a virtual clock."""
        return True

    def runtime(self, instance_id: str) -> InstanceRuntime:
        """A new runtime of ``instance_id`` over the shared ``MemoryBackend``."""
        runtime, handle = create_in_memory_runtime(instance_id, self._time, backend=self.backend)
        self._handles.append(handle)
        return runtime

    def set_time(self, ms: int) -> None:
        """Set every runtime's virtual clock."""
        self._time = ms
        assert isinstance(self.backend.clock, ManualClock)
        self.backend.clock.time_ms = ms
        for handle in self._handles:
            handle.set_time(ms)

    def advance_time(self, ms: int) -> None:
        """Advance every runtime's virtual clock."""
        self.set_time(self._time + ms)

    async def close(self) -> None:
        """Nothing to release."""


class SqliteHarness:
    """A SQLite database file in a temporary folder, with a virtual clock."""

    def __init__(self) -> None:
        self._dir = tempfile.mkdtemp(prefix="durably-contract-")
        self.backend = SqliteHost(
            os.path.join(self._dir, "contract.db"), clock=ManualClock(START_TIME)
        )

    async def open(self) -> None:
        """Open the database (inside the test's event loop)."""
        await self.backend.open()

    @property
    def host(self) -> InstanceHost:
        """The ``SqliteHost``."""
        return self.backend

    @property
    def controls_clock(self) -> bool:
        """The backend's clock is a ``ManualClock``."""
        return True

    def runtime(self, instance_id: str) -> InstanceRuntime:
        """The runtime of ``instance_id`` over the shared database."""
        return self.backend.runtime(instance_id)

    def set_time(self, ms: int) -> None:
        """Set the backend's clock."""
        assert isinstance(self.backend.clock, ManualClock)
        self.backend.clock.time_ms = ms

    def advance_time(self, ms: int) -> None:
        """Advance the backend's clock."""
        assert isinstance(self.backend.clock, ManualClock)
        self.backend.clock.time_ms += ms

    async def close(self) -> None:
        """Close the database and remove its folder."""
        await self.backend.close()
        shutil.rmtree(self._dir, ignore_errors=True)


class PostgresHarness:
    """A schema of its own in the session's PostgreSQL database, with a virtual clock."""

    session_fixtures = ("pg_database",)

    def __init__(self) -> None:
        self.dsn = acquire_database()
        self.schema = f"c_{os.urandom(6).hex()}"
        self.clock = ManualClock(START_TIME)
        self.pg = PostgresHost(self.dsn, schema=self.schema, clock=self.clock, max_size=4)
        self._opened = False

    async def open(self) -> None:
        """Open the pool and create the schema (inside the test's event loop)."""
        await self.pg.open()
        self._opened = True

    @property
    def host(self) -> InstanceHost:
        """The ``PostgresHost``."""
        return self.pg

    @property
    def controls_clock(self) -> bool:
        """The host's clock is a ``ManualClock``."""
        return True

    def runtime(self, instance_id: str) -> InstanceRuntime:
        """The runtime of ``instance_id`` over the shared schema (not fenced)."""
        return self.pg.runtime(instance_id)

    def set_time(self, ms: int) -> None:
        """Set the host's clock."""
        self.clock.time_ms = ms

    def advance_time(self, ms: int) -> None:
        """Advance the host's clock."""
        self.clock.time_ms += ms

    async def close(self) -> None:
        """Close the pool, drop the schema and let go of the database."""
        try:
            if self._opened:
                await self.pg.close()
            await asyncio.to_thread(drop_schema, self.dsn, self.schema)
        finally:
            release_database()


HARNESS_FACTORIES: dict[str, Callable[[], BackendHarness]] = {
    "memory": MemoryHarness,
    "sqlite": SqliteHarness,
    "postgres": PostgresHarness,
}


@pytest.fixture(params=list(HARNESS_FACTORIES), ids=list(HARNESS_FACTORIES))
async def backend_factory(request: pytest.FixtureRequest) -> AsyncIterator[BackendHarness]:
    """A fresh backend of each kind under test (opened, when it opens asynchronously)."""
    factory = HARNESS_FACTORIES[request.param]
    for name in getattr(factory, "session_fixtures", ()):
        request.getfixturevalue(name)
    harness = factory()
    try:
        opener = getattr(harness, "open", None)
        if opener is not None:
            await opener()
        yield harness
    finally:
        await harness.close()


# Tests take these fixtures rather than the harness, so that they need no import of
# this module (two conftest modules cannot both be imported as ``conftest``).


@pytest.fixture
def make_runtime(backend_factory: BackendHarness) -> Callable[[str], InstanceRuntime]:
    """Make the runtime of any instance over the backend under test."""
    return backend_factory.runtime


@pytest.fixture
def runtime_a(backend_factory: BackendHarness) -> InstanceRuntime:
    """The runtime of one instance."""
    return backend_factory.runtime(INSTANCE_A)


@pytest.fixture
def runtime_b(backend_factory: BackendHarness) -> InstanceRuntime:
    """The runtime of another instance on the same backend."""
    return backend_factory.runtime(INSTANCE_B)


@pytest.fixture
def host(backend_factory: BackendHarness) -> InstanceHost:
    """The backend under test, as the engine sees it (an ``InstanceHost``)."""
    return backend_factory.host


@pytest.fixture
def advance_clock(backend_factory: BackendHarness) -> Callable[[int], None]:
    """Advance the backend's clock (every harness runs its backend on a virtual clock)."""
    assert backend_factory.controls_clock, "a contract harness must use a virtual clock"
    return backend_factory.advance_time
