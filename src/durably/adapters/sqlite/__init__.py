"""The SQLite backend (stdlib ``sqlite3``, WAL): the embedded default."""

from durably.adapters.sqlite.adapters import SqliteScheduler, SqliteStorage, sqlite_runtime
from durably.adapters.sqlite.backend import (
    InstanceExists,
    InstanceRow,
    LeaseLost,
    SqliteBackend,
    owner_token,
)

__all__ = [
    "SqliteBackend",
    "SqliteStorage",
    "SqliteScheduler",
    "sqlite_runtime",
    "InstanceRow",
    "LeaseLost",
    "InstanceExists",
    "owner_token",
]
