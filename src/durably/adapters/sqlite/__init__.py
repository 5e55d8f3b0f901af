"""The SQLite backend (stdlib ``sqlite3``, WAL): the embedded default."""

from durably.adapters.sqlite.database import SqliteDatabase, Synchronous
from durably.adapters.sqlite.host import SqliteHost

__all__ = ["SqliteHost", "SqliteDatabase", "Synchronous"]
