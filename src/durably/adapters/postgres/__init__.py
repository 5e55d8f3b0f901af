"""The PostgreSQL backend (psycopg 3, async, pooled): many workers over one database."""

from durably.adapters.postgres.host import PostgresHost, safe_dsn

__all__ = ["PostgresHost", "safe_dsn"]
