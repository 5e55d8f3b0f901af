"""What a PostgreSQL connection string says, for messages: where, and why it failed.

No message of the backend quotes a password: it names the server, the port, the
database and the user, as libpq would resolve them, and the cause in a few words.
"""

from __future__ import annotations

import getpass
import os

import psycopg
from psycopg.conninfo import conninfo_to_dict

from durably.domain.redaction import mask_passwords, url_secrets

__all__ = ["safe_dsn", "target", "connect_failure"]


def safe_dsn(dsn: str) -> str:
    """``dsn`` with its password masked.

    >>> safe_dsn("postgresql://me:s3cret@db/app")
    'postgresql://me:***@db/app'
    """
    return mask_passwords(dsn, url_secrets(dsn))


def target(dsn: str) -> str:
    """Where ``dsn`` connects: ``PostgreSQL at HOST:PORT, database "DB" (user U)``, with
    libpq's defaults (``PGHOST``, ``PGPORT``...) for what the URL leaves out.

    >>> target("postgresql://me:s3cret@db.internal:6432/app")
    'PostgreSQL at db.internal:6432, database "app" (user me)'
    """
    try:
        info = conninfo_to_dict(dsn)
    except psycopg.Error:
        return f"PostgreSQL at {safe_dsn(dsn)}"
    env = os.environ

    def setting(key: str, variable: str, default: str) -> str:
        return str(info.get(key) or env.get(variable) or default)

    try:
        default_user = getpass.getuser()
    except (KeyError, OSError):  # pragma: no cover - a user without a name
        default_user = "postgres"
    user = setting("user", "PGUSER", default_user)
    host = setting("host", "PGHOST", "localhost")
    port = setting("port", "PGPORT", "5432")
    database = setting("dbname", "PGDATABASE", user)
    where = f"socket {host}/.s.PGSQL.{port}" if host.startswith("/") else f"{host}:{port}"
    return f'PostgreSQL at {where}, database "{database}" (user {user})'


def connect_failure(dsn: str, error: BaseException) -> str:
    """One line: where the connection went, and why it failed (libpq's cause, without
    its repetition of the address and without its multi-line hints).

    >>> connect_failure(
    ...     "postgresql://me@127.0.0.1:1/app",
    ...     psycopg.OperationalError(
    ...         'connection failed: connection to server at "127.0.0.1", port 1 failed: '
    ...         "Connection refused\\n\\tIs the server running on that host?"
    ...     ),
    ... )
    'cannot connect to PostgreSQL at 127.0.0.1:1, database "app" (user me): connection refused'
    """
    text = str(error).strip()
    cause = text.splitlines()[0].strip() if text else type(error).__name__
    # "connection failed: connection to server at "h", port p failed: FATAL:  the cause"
    marker = " failed: "
    if marker in cause:
        cause = cause.rsplit(marker, 1)[1]
    for prefix in ("FATAL:", "ERROR:"):
        if cause.startswith(prefix):
            cause = cause[len(prefix) :].strip()
    cause = cause[:1].lower() + cause[1:]
    return mask_passwords(f"cannot connect to {target(dsn)}: {cause}", url_secrets(dsn))
