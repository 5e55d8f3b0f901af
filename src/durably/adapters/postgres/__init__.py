"""The PostgreSQL backend (psycopg 3, async, pooled): many workers over one database."""

from durably.adapters.postgres.adapters import PostgresScheduler, PostgresStorage, postgres_runtime
from durably.adapters.postgres.host import InstanceExists, LeaseLost, PostgresHost

__all__ = [
    "PostgresHost",
    "PostgresStorage",
    "PostgresScheduler",
    "postgres_runtime",
    "LeaseLost",
    "InstanceExists",
]
