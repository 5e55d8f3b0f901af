"""The SQLite schema, created and upgraded by versioned migrations (``PRAGMA user_version``)."""

from __future__ import annotations

import sqlite3

from durably.domain.errors import StorageError

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "TABLES", "migrate", "check_schema"]

MIGRATIONS: tuple[tuple[str, ...], ...] = (
    # 1: the key-value namespace, the alarms and the instances of architecture.md.
    (
        """CREATE TABLE kv (
            instance_id TEXT NOT NULL,
            key TEXT NOT NULL,
            value TEXT NOT NULL,
            PRIMARY KEY (instance_id, key)
        ) WITHOUT ROWID""",
        """CREATE TABLE alarms (
            instance_id TEXT PRIMARY KEY,
            due_at INTEGER NOT NULL
        ) WITHOUT ROWID""",
        "CREATE INDEX alarms_due ON alarms (due_at)",
        """CREATE TABLE instances (
            id TEXT PRIMARY KEY,
            workflow TEXT NOT NULL,
            status TEXT NOT NULL,
            created_at INTEGER NOT NULL,
            updated_at INTEGER NOT NULL,
            lease_owner TEXT,
            lease_expires_at INTEGER
        ) WITHOUT ROWID""",
        "CREATE INDEX instances_status ON instances (status, updated_at)",
        "CREATE INDEX instances_workflow ON instances (workflow, updated_at)",
        "CREATE INDEX instances_lease ON instances (lease_owner)",
    ),
    # 2: the inbox (domain/inbox.py): messages from outside the lease, numbered per
    # instance by ``instances.inbox_seq``; consumed ones stay until the purge.
    (
        "ALTER TABLE instances ADD COLUMN inbox_seq INTEGER NOT NULL DEFAULT 0",
        """CREATE TABLE inbox (
            instance_id TEXT NOT NULL,
            seq INTEGER NOT NULL,
            kind TEXT NOT NULL,
            name TEXT,
            payload TEXT NOT NULL,
            dedupe_key TEXT,
            sent_at INTEGER NOT NULL,
            consumed INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (instance_id, seq)
        ) WITHOUT ROWID""",
        "CREATE UNIQUE INDEX inbox_dedupe ON inbox (instance_id, dedupe_key)"
        " WHERE dedupe_key IS NOT NULL",
    ),
    # 3: queues (domain/queues.py): an instance's queue, priority, partition and dedupe
    # id; the slot it holds (taken by the claim that starts it, given back when it ends)
    # and when it took it (the rate's window); the queues' limits, for `durably queues`.
    (
        "ALTER TABLE instances ADD COLUMN queue TEXT NOT NULL DEFAULT 'default'",
        "ALTER TABLE instances ADD COLUMN priority INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE instances ADD COLUMN partition_key TEXT",
        "ALTER TABLE instances ADD COLUMN dedupe_id TEXT",
        "ALTER TABLE instances ADD COLUMN slot INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE instances ADD COLUMN slot_at INTEGER",
        "CREATE INDEX instances_slots ON instances (queue, slot, partition_key)",
        "CREATE INDEX instances_starts ON instances (queue, slot_at) WHERE slot_at IS NOT NULL",
        "CREATE UNIQUE INDEX instances_dedupe ON instances (queue, dedupe_id)"
        " WHERE dedupe_id IS NOT NULL AND status NOT IN ('Completed', 'Failed', 'Cancelled')",
        """CREATE TABLE queues (
            name TEXT PRIMARY KEY,
            concurrency INTEGER,
            worker_concurrency INTEGER,
            rate TEXT,
            partition_concurrency INTEGER,
            updated_at INTEGER NOT NULL
        ) WITHOUT ROWID""",
    ),
    # 4: schedules (domain/schedules.py): each schedule as its engines last declared it,
    # its cursor (the first regular tick not fired), the explicit ticks still to fire
    # (a JSON list of epoch ms), the heartbeat of the engines that declare it, and a
    # version that every writer compares and sets.
    (
        """CREATE TABLE schedules (
            id TEXT PRIMARY KEY,
            workflow TEXT NOT NULL,
            cron TEXT,
            every_ms INTEGER,
            timezone TEXT NOT NULL,
            catch_up TEXT NOT NULL,
            queue TEXT NOT NULL,
            next_at INTEGER NOT NULL,
            pending TEXT NOT NULL DEFAULT '[]',
            last_at INTEGER,
            seen_at INTEGER NOT NULL,
            paused INTEGER NOT NULL DEFAULT 0,
            version INTEGER NOT NULL DEFAULT 0,
            created_at INTEGER NOT NULL
        ) WITHOUT ROWID""",
    ),
    # 5: the order of creation, for first in first out among instances created in the
    # same millisecond (0 for the instances created before: their times order them).
    (
        "ALTER TABLE instances ADD COLUMN seq INTEGER NOT NULL DEFAULT 0",
        "CREATE INDEX instances_seq ON instances (seq)",
    ),
)

SCHEMA_VERSION = len(MIGRATIONS)
TABLES = frozenset({"kv", "alarms", "instances", "inbox", "queues", "schedules"})
"""The tables of ``SCHEMA_VERSION``."""


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the schema to ``SCHEMA_VERSION``; returns the version found before."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        found = int(conn.execute("PRAGMA user_version").fetchone()[0])
        if found > SCHEMA_VERSION:
            raise StorageError(
                "migrate",
                None,
                f"the database has schema version {found}, newer than this durably "
                f"({SCHEMA_VERSION}); upgrade durably to open it",
            )
        for version in range(found, SCHEMA_VERSION):
            for statement in MIGRATIONS[version]:
                conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        # SQLite rolls back by itself after some errors (a full disk at COMMIT): a
        # ROLLBACK then would fail, and its "no transaction is active" hide the cause.
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return found


def check_schema(conn: sqlite3.Connection, path: str) -> int:
    """For a read-only open: the file must be a durably database at ``SCHEMA_VERSION``.

    Nothing is written; its version.
    """
    found = int(conn.execute("PRAGMA user_version").fetchone()[0])
    tables = {str(r[0]) for r in conn.execute("SELECT name FROM sqlite_master")}
    if found > SCHEMA_VERSION:
        raise StorageError(
            "open",
            None,
            f"{path}: the database has schema version {found}, newer than this durably "
            f"({SCHEMA_VERSION}); upgrade durably to open it",
        )
    if found == 0 or not {"kv", "alarms", "instances"} <= tables:
        raise StorageError("open", None, f"not a durably database: {path}")
    if found < SCHEMA_VERSION or not tables >= TABLES:
        raise StorageError(
            "open",
            None,
            f"{path}: the database has schema version {found}, older than this durably "
            f"({SCHEMA_VERSION}); a command that writes (`durably worker`) upgrades it",
        )
    return found
