"""The fixtures of ``tests.support`` (a pytest plugin, registered by ``tests/conftest.py``)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.integration.pg_support import pg_database
from tests.support.postgres_runtimes import PostgresRuntimes
from tests.support.runtimes import BACKENDS, MemoryRuntimes, RuntimeFactory, sqlite_runtimes

__all__ = ["pg_database", "runtimes"]


@pytest.fixture(params=BACKENDS)
async def runtimes(request: pytest.FixtureRequest) -> AsyncIterator[RuntimeFactory]:
    """Runtimes over each backend in turn: a test that takes it runs once per backend.

    Every store the test opens is closed (and its files or schema removed) afterwards;
    the PostgreSQL ones live in the session's test database (``pg_database``).
    """
    match request.param:
        case "memory":
            yield MemoryRuntimes()
        case "sqlite":
            with sqlite_runtimes() as factory:
                yield factory
        case "postgres":
            postgres = PostgresRuntimes(request.getfixturevalue("pg_database"))
            try:
                yield postgres
            finally:
                await postgres.close()
        case other:
            raise AssertionError(f"no such backend: {other}")
