"""The PostgreSQL schema (the SQLite tables, values as ``jsonb``), by versioned migrations."""

from __future__ import annotations

from psycopg import AsyncConnection, sql

from durably.domain.errors import StorageError

__all__ = ["SCHEMA_VERSION", "migrate", "check_schema"]

_MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE {schema}.kv (
            instance_id text NOT NULL,
            key text NOT NULL,
            value jsonb NOT NULL,
            PRIMARY KEY (instance_id, key)
        )""",
        """CREATE TABLE {schema}.alarms (
            instance_id text PRIMARY KEY,
            due_at bigint NOT NULL
        )""",
        "CREATE INDEX alarms_due ON {schema}.alarms (due_at)",
        """CREATE TABLE {schema}.instances (
            id text PRIMARY KEY,
            workflow text NOT NULL,
            status text NOT NULL,
            created_at bigint NOT NULL,
            updated_at bigint NOT NULL,
            lease_owner text,
            lease_expires_at bigint
        )""",
        "CREATE INDEX instances_status ON {schema}.instances (status, updated_at)",
        "CREATE INDEX instances_workflow ON {schema}.instances (workflow, updated_at)",
        "CREATE INDEX instances_lease ON {schema}.instances (lease_owner)",
    ),
    (
        # Keys compare byte by byte whatever the database's default collation:
        # ``read_prefix`` reads the range [prefix, next prefix), which a linguistic
        # collation (en_US, ICU) breaks, since it ignores punctuation such as ':'.
        'ALTER TABLE {schema}.kv ALTER COLUMN key TYPE text COLLATE "C"',
    ),
    (
        # The inbox (domain/inbox.py): messages from outside the lease, numbered per
        # instance by ``instances.inbox_seq``; consumed ones stay until the purge.
        "ALTER TABLE {schema}.instances ADD COLUMN inbox_seq bigint NOT NULL DEFAULT 0",
        """CREATE TABLE {schema}.inbox (
            instance_id text NOT NULL,
            seq bigint NOT NULL,
            kind text NOT NULL,
            name text,
            payload jsonb NOT NULL,
            dedupe_key text,
            sent_at bigint NOT NULL,
            consumed boolean NOT NULL DEFAULT false,
            PRIMARY KEY (instance_id, seq)
        )""",
        "CREATE UNIQUE INDEX inbox_dedupe ON {schema}.inbox (instance_id, dedupe_key)"
        " WHERE dedupe_key IS NOT NULL",
    ),
    (
        # Queues (domain/queues.py), as SQLite's migration 3.
        "ALTER TABLE {schema}.instances ADD COLUMN queue text NOT NULL DEFAULT 'default',"
        " ADD COLUMN priority integer NOT NULL DEFAULT 0, ADD COLUMN partition_key text,"
        " ADD COLUMN dedupe_id text, ADD COLUMN slot boolean NOT NULL DEFAULT false,"
        " ADD COLUMN slot_at bigint",
        "CREATE INDEX instances_slots ON {schema}.instances (queue, partition_key) WHERE slot",
        "CREATE INDEX instances_starts ON {schema}.instances (queue, slot_at)"
        " WHERE slot_at IS NOT NULL",
        "CREATE UNIQUE INDEX instances_dedupe ON {schema}.instances (queue, dedupe_id)"
        " WHERE dedupe_id IS NOT NULL AND status NOT IN ('Completed', 'Failed', 'Cancelled')",
        """CREATE TABLE {schema}.queues (
            name text PRIMARY KEY,
            concurrency integer,
            worker_concurrency integer,
            rate text,
            partition_concurrency integer,
            updated_at bigint NOT NULL
        )""",
    ),
    (
        # Schedules (domain/schedules.py), as SQLite's migration 4.
        """CREATE TABLE {schema}.schedules (
            id text PRIMARY KEY,
            workflow text NOT NULL,
            cron text,
            every_ms bigint,
            timezone text NOT NULL,
            catch_up text NOT NULL,
            queue text NOT NULL,
            next_at bigint NOT NULL,
            pending jsonb NOT NULL DEFAULT '[]',
            last_at bigint,
            seen_at bigint NOT NULL,
            paused boolean NOT NULL DEFAULT false,
            version bigint NOT NULL DEFAULT 0,
            created_at bigint NOT NULL
        )""",
    ),
    (
        # The order of creation, as SQLite's migration 5 (numbered by a sequence here).
        "ALTER TABLE {schema}.instances ADD COLUMN seq bigserial",
    ),
)

SCHEMA_VERSION = len(_MIGRATIONS)
_LOCK_KEY = 0x64757261626C79  # "durably": serializes migrations of concurrent processes


async def migrate(conn: AsyncConnection[object], schema: str) -> int:
    """Bring ``schema`` to ``SCHEMA_VERSION``; returns the version found before."""
    name = sql.Identifier(schema)
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
        await conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(name))
        await conn.execute(
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {}.schema_version (version integer NOT NULL)"
            ).format(name)
        )
        cur = await conn.execute(sql.SQL("SELECT version FROM {}.schema_version").format(name))
        row = await cur.fetchone()
        found = int(row[0]) if row else 0  # type: ignore[index]
        if found > SCHEMA_VERSION:
            raise StorageError(
                "migrate",
                None,
                f"the database schema {schema!r} has version {found}, newer than this durably "
                f"({SCHEMA_VERSION}); upgrade durably to open it",
            )
        for version in range(found, SCHEMA_VERSION):
            for statement in _MIGRATIONS[version]:
                await conn.execute(sql.SQL(statement).format(schema=name))
        if row is None:
            await conn.execute(
                sql.SQL("INSERT INTO {}.schema_version VALUES (%s)").format(name), (SCHEMA_VERSION,)
            )
        else:
            await conn.execute(
                sql.SQL("UPDATE {}.schema_version SET version = %s").format(name), (SCHEMA_VERSION,)
            )
    return found


async def check_schema(conn: AsyncConnection[object], schema: str) -> int:
    """For a read-only open: ``schema`` must hold durably's tables at ``SCHEMA_VERSION``.

    Nothing is created or changed (no ``CREATE SCHEMA``, no migration); its version.
    """
    cur = await conn.execute("SELECT to_regclass(%s)", (f"{schema}.schema_version",))
    row = await cur.fetchone()
    if row is None or row[0] is None:  # type: ignore[index]
        raise StorageError(
            "open",
            None,
            f"no durably schema {schema!r} in this database (nothing was created; "
            "a worker or `durably start` creates it)",
        )
    cur = await conn.execute(
        sql.SQL("SELECT version FROM {}.schema_version").format(sql.Identifier(schema))
    )
    found_row = await cur.fetchone()
    found = int(found_row[0]) if found_row else 0  # type: ignore[index]
    if found > SCHEMA_VERSION:
        raise StorageError(
            "open",
            None,
            f"the database schema {schema!r} has version {found}, newer than this durably "
            f"({SCHEMA_VERSION}); upgrade durably to open it",
        )
    if found < SCHEMA_VERSION:
        raise StorageError(
            "open",
            None,
            f"the database schema {schema!r} has version {found}, older than this durably "
            f"({SCHEMA_VERSION}); a command that writes (`durably worker`) upgrades it",
        )
    return found
