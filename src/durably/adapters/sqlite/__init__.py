"""The SQLite backend (stdlib ``sqlite3``, WAL): the embedded default."""

from durably.adapters.owner import owner_token
from durably.adapters.sqlite.adapters import SqliteScheduler, SqliteStorage, sqlite_runtime
from durably.adapters.sqlite.backend import (
    InstanceExists,
    LeaseLost,
    SqliteBackend,
)
from durably.adapters.sqlite.host import SqliteHost
from durably.ports.host import InstanceRow

__all__ = [
    "SqliteBackend",
    "SqliteHost",
    "SqliteStorage",
    "SqliteScheduler",
    "sqlite_runtime",
    "InstanceRow",
    "LeaseLost",
    "InstanceExists",
    "owner_token",
]
