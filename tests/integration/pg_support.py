"""PostgreSQL helpers shared by the tests: a fresh database per test session.

The server is ``postgresql://postgres@127.0.0.1:5432`` unless ``DURABLY_TEST_POSTGRES``
names another (a libpq URL without a database name). CI starts it: when it cannot be
reached the tests that need it fail with a message that says so; they never skip.

``acquire_database()`` creates ``durably_test_<random hex>`` (once per process) and
``release_database()`` drops it (``WITH (FORCE)``) when its last user lets it go; the
session-scoped fixture ``pg_database`` holds it for the whole session. Import the
fixture into a conftest (or a test module) to use it there.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import psycopg
import pytest
from psycopg import sql

__all__ = [
    "SERVER_ENV",
    "acquire_database",
    "create_database",
    "drop_database",
    "drop_schema",
    "dsn_of",
    "engine_url",
    "pg_database",
    "postgres_host",
    "release_database",
    "server_url",
]

SERVER_ENV = "DURABLY_TEST_POSTGRES"
_DEFAULT_SERVER = "postgresql://postgres@127.0.0.1:5432"
_CONNECT_TIMEOUT_S = 5


class _Shared:
    """This process's test database and how many users hold it."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.name: str | None = None
        self.users = 0
        self.error: str | None = None


_shared = _Shared()


def server_url() -> str:
    """The server's URL, without a database name."""
    return os.environ.get(SERVER_ENV, _DEFAULT_SERVER).rstrip("/")


def dsn_of(database: str) -> str:
    """The libpq URL of ``database`` on the test server."""
    return f"{server_url()}/{database}"


def engine_url(dsn: str, schema: str) -> str:
    """The ``Engine`` backend URL of ``schema`` in the database at ``dsn``."""
    return f"{dsn}{'&' if '?' in dsn else '?'}schema={schema}"


def _admin() -> psycopg.Connection[tuple[object, ...]]:
    """An autocommit connection to a maintenance database (``postgres``, else ``test``)."""
    errors: list[str] = []
    for database in ("postgres", "test"):
        try:
            return psycopg.connect(
                dsn_of(database), autocommit=True, connect_timeout=_CONNECT_TIMEOUT_S
            )
        except psycopg.Error as e:
            errors.append(f"{database}: {str(e).strip()}")
    raise ConnectionError(
        f"the PostgreSQL server of the tests is unreachable at {server_url()} "
        f"(set {SERVER_ENV} to use another; CI starts it before the tests): " + "; ".join(errors)
    )


def create_database(prefix: str = "durably_test") -> str:
    """Create a fresh database ``<prefix>_<random hex>``; returns its name.

    Its default collation is ICU ``en-US`` where the server has ICU (else the server's
    default): a linguistic collation, as many installations have, so that nothing in
    the backend may rely on the byte order of the ``C`` collation by accident.
    """
    name = f"{prefix}_{os.urandom(6).hex()}"
    ident = sql.Identifier(name)
    with _admin() as conn:
        try:
            conn.execute(
                sql.SQL(
                    "CREATE DATABASE {} TEMPLATE template0 ENCODING 'UTF8'"
                    " LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C.UTF-8'"
                ).format(ident)
            )
        except psycopg.Error:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(ident))
    return name


def drop_database(name: str) -> None:
    """Drop database ``name``, closing whatever connections it still has."""
    with _admin() as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def drop_schema(dsn: str, schema: str) -> None:
    """Drop ``schema`` (and everything in it) from the database at ``dsn``."""
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", schema):
        raise ValueError(f"bad schema name {schema!r}")
    with psycopg.connect(dsn, autocommit=True, connect_timeout=_CONNECT_TIMEOUT_S) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def acquire_database() -> str:
    """The DSN of this process's test database, created by its first user.

    Fails the calling test (``pytest.fail``, not a skip) when the server is unreachable;
    the failure is remembered, so later tests fail at once instead of waiting again.
    """
    with _shared.lock:
        if _shared.error is not None:
            pytest.fail(_shared.error, pytrace=False)
        if _shared.name is None:
            try:
                _shared.name = create_database()
            except (ConnectionError, psycopg.Error) as e:
                _shared.error = str(e)
                pytest.fail(_shared.error, pytrace=False)
        _shared.users += 1
        return dsn_of(_shared.name)


def release_database() -> None:
    """Let go of the test database; the last user drops it."""
    with _shared.lock:
        _shared.users = max(_shared.users - 1, 0)
        name = _shared.name
        if _shared.users > 0 or name is None:
            return
        _shared.name = None
    with contextlib.suppress(ConnectionError, psycopg.Error):
        drop_database(name)


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """The DSN of a fresh database on the test server, dropped at the end of the session."""
    dsn = acquire_database()
    try:
        yield dsn
    finally:
        release_database()


@contextlib.asynccontextmanager
async def postgres_host(schema: str, **options: Any) -> AsyncIterator[Any]:
    """An open ``PostgresHost`` on ``schema`` of the test database; dropped afterwards."""
    from durably.adapters.postgres import PostgresHost

    dsn = acquire_database()
    host = PostgresHost(dsn, schema=schema, **options)
    await host.open()
    try:
        yield host
    finally:
        await host.close()
        drop_schema(dsn, schema)
        release_database()
