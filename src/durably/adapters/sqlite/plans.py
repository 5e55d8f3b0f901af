"""The SQLite statements of a commit plan (``adapters/plan.py``) and of an inbox append.

``write_batch`` is the one place where SQLite commits a unit of work: every plan of a
grouped commit, in one transaction (one fsync). A plan that is refused (its lease is
gone, its instance exists) is refused before it writes anything, so it fails alone
and the others commit.
"""

from __future__ import annotations

import functools
import json
import sqlite3

from durably.adapters.plan import CommitOutcome, CommitPlan, Create, Fenced, woken_by_news
from durably.adapters.sqlite.database import transaction
from durably.adapters.unit_of_work import AlarmChange, ClearAlarm, SetAlarm
from durably.domain.errors import DuplicateWorkflowError, InstanceExists, LeaseLost, StorageError
from durably.domain.inbox import AppendOutcome, InboxMessage, Outgoing, wakes
from durably.domain.status import TERMINAL_TAGS

__all__ = ["write_batch", "execute", "append", "pending_inbox", "read_inbox"]

_ROWS_PER_INSERT = 100


@functools.lru_cache(maxsize=_ROWS_PER_INSERT)
def _upsert(rows: int) -> str:
    """One statement writing ``rows`` key-value rows (cheaper than ``executemany``)."""
    values = ", ".join(["(?, ?, ?)"] * rows)
    return (
        f"INSERT INTO kv (instance_id, key, value) VALUES {values}"
        " ON CONFLICT (instance_id, key) DO UPDATE SET value = excluded.value"
    )


def write_batch(
    conn: sqlite3.Connection, plans: list[CommitPlan]
) -> list[CommitOutcome | StorageError]:
    """Commit ``plans`` in one transaction: each plan's outcome, or why it was refused."""
    results: list[CommitOutcome | StorageError] = []
    with transaction(conn):
        for plan in plans:
            try:
                results.append(execute(conn, plan))
            except (LeaseLost, InstanceExists, DuplicateWorkflowError) as e:
                results.append(StorageError("commit", None, e))
    return results


def _instance_row(conn: sqlite3.Connection, plan: CommitPlan) -> tuple[int, str] | None:
    """Check and write the instance's row; the number of its last inbox message and its
    status after the plan (``None``: no row, for an unfenced plan)."""
    iid, write = plan.instance_id, plan.write
    if isinstance(write, Create):
        try:
            conn.execute(
                "INSERT INTO instances (id, workflow, status, created_at, updated_at,"
                " lease_owner, lease_expires_at, queue, priority, partition_key, dedupe_id, seq)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?,"
                " (SELECT ifnull(max(seq), 0) + 1 FROM instances))",
                (
                    iid,
                    write.workflow,
                    plan.status or "Pending",
                    plan.now,
                    plan.now,
                    write.lease_owner,
                    write.lease_expires_at,
                    write.queue,
                    write.priority,
                    write.partition_key,
                    write.dedupe_id,
                ),
            )
        except sqlite3.IntegrityError:
            if (
                write.dedupe_id is not None
                and not conn.execute("SELECT 1 FROM instances WHERE id = ?", (iid,)).fetchone()
            ):
                holder = dedupe_holder(conn, write.queue, write.dedupe_id)
                raise DuplicateWorkflowError(write.queue, write.dedupe_id, holder) from None
            raise InstanceExists(iid) from None
        return 0, plan.status or "Pending"
    if isinstance(write, Fenced):
        if plan.status is None:
            # A step: fencing is a read (the heartbeat extends the lease), so the commit
            # writes the step's row only: one page of the file.
            row = conn.execute(
                "SELECT lease_owner, inbox_seq, status FROM instances WHERE id = ?", (iid,)
            ).fetchone()
            if row is None or row[0] != write.owner:
                raise LeaseLost(iid, write.owner)
            return int(row[1]), str(row[2])
        row = conn.execute(
            "UPDATE instances SET status = ?, updated_at = ?,"
            " lease_owner = CASE WHEN ? THEN NULL ELSE lease_owner END,"
            " lease_expires_at = CASE WHEN ? THEN NULL ELSE ? END,"
            " slot = CASE WHEN ? THEN 0 ELSE slot END"
            " WHERE id = ? AND lease_owner = ? RETURNING inbox_seq",
            (
                plan.status,
                plan.now,
                write.release,
                write.release,
                write.lease_expires_at,
                plan.status in TERMINAL_TAGS,
                iid,
                write.owner,
            ),
        ).fetchone()
        if row is None:
            raise LeaseLost(iid, write.owner)
        return int(row[0]), plan.status
    if plan.status is not None:
        row = conn.execute(
            "UPDATE instances SET status = ?, updated_at = ?,"
            " slot = CASE WHEN ? THEN 0 ELSE slot END WHERE id = ?"
            " RETURNING inbox_seq, status",
            (plan.status, plan.now, plan.status in TERMINAL_TAGS, iid),
        ).fetchone()
    else:
        row = conn.execute(
            "SELECT inbox_seq, status FROM instances WHERE id = ?", (iid,)
        ).fetchone()
    return None if row is None else (int(row[0]), str(row[1]))


def execute(conn: sqlite3.Connection, plan: CommitPlan) -> CommitOutcome:
    """Execute one plan inside the caller's transaction (the instance row first: what may
    refuse the plan comes before any write)."""
    found = _instance_row(conn, plan)
    inbox_seq = None if found is None else found[0]
    if found is not None and woken_by_news(plan, found[1], found[0]):
        alarm: AlarmChange = SetAlarm(plan.now)  # a message came while it ran: look at it
    else:
        alarm = plan.alarm
    iid = plan.instance_id
    if plan.clear:  # a purge: the inbox goes with the keys
        conn.execute("DELETE FROM kv WHERE instance_id = ?", (iid,))
        conn.execute("DELETE FROM inbox WHERE instance_id = ?", (iid,))
    puts = plan.upserts
    for start in range(0, len(puts), _ROWS_PER_INSERT):
        rows = puts[start : start + _ROWS_PER_INSERT]
        params: list[object] = []
        for key, value in rows:
            params += (iid, key, value)
        conn.execute(_upsert(len(rows)), params)
    if plan.deletes:
        conn.executemany(
            "DELETE FROM kv WHERE instance_id = ? AND key = ?", [(iid, k) for k in plan.deletes]
        )
    if isinstance(alarm, SetAlarm):
        conn.execute(
            "INSERT INTO alarms (instance_id, due_at) VALUES (?, ?)"
            " ON CONFLICT (instance_id) DO UPDATE SET due_at = excluded.due_at",
            (iid, alarm.at),
        )
    elif isinstance(alarm, ClearAlarm):
        conn.execute("DELETE FROM alarms WHERE instance_id = ?", (iid,))
    if plan.consume:
        conn.executemany(
            "UPDATE inbox SET consumed = 1 WHERE instance_id = ? AND seq = ?",
            [(iid, seq) for seq in plan.consume],
        )
    for message in plan.sends:
        append_rows(conn, message, plan.now)
    return CommitOutcome(inbox_seq)


def dedupe_holder(conn: sqlite3.Connection, queue: str, dedupe_id: str) -> str | None:
    """The instance of ``queue``, not final, that holds ``dedupe_id``."""
    row = conn.execute(
        "SELECT id FROM instances WHERE queue = ? AND dedupe_id = ?"
        " AND status NOT IN ('Completed', 'Failed', 'Cancelled')",
        (queue, dedupe_id),
    ).fetchone()
    return None if row is None else str(row[0])


def append(conn: sqlite3.Connection, message: Outgoing, now: int) -> AppendOutcome:
    """Append ``message`` to its instance's inbox and wake the instance if it waits."""
    with transaction(conn):
        return append_rows(conn, message, now)


def append_rows(conn: sqlite3.Connection, message: Outgoing, now: int) -> AppendOutcome:
    """``append``, inside the caller's transaction."""
    iid = message.instance_id
    row = conn.execute(
        "SELECT status, inbox_seq, workflow FROM instances WHERE id = ?", (iid,)
    ).fetchone()
    if row is None:
        return AppendOutcome(None)
    status, seq, workflow = str(row[0]), int(row[1]), str(row[2])
    if (
        message.dedupe_key is not None
        and conn.execute(
            "SELECT 1 FROM inbox WHERE instance_id = ? AND dedupe_key = ?",
            (iid, message.dedupe_key),
        ).fetchone()
    ):
        return AppendOutcome(status, duplicate=True, workflow=workflow)
    if status in TERMINAL_TAGS:
        return AppendOutcome(status, workflow=workflow)
    seq += 1
    conn.execute("UPDATE instances SET inbox_seq = ? WHERE id = ?", (seq, iid))
    conn.execute(
        "INSERT INTO inbox (instance_id, seq, kind, name, payload, dedupe_key, sent_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        (iid, seq, message.kind, message.name, message.payload, message.dedupe_key, now),
    )
    if wakes(message.kind, status):
        conn.execute(
            "INSERT INTO alarms (instance_id, due_at) VALUES (?, ?) ON CONFLICT (instance_id)"
            " DO UPDATE SET due_at = min(due_at, excluded.due_at)",
            (iid, now),
        )
    return AppendOutcome(status, seq, workflow=workflow)


_MESSAGE = "seq, kind, name, payload, sent_at, dedupe_key, consumed"


def _message(row: tuple[object, ...]) -> InboxMessage:
    seq, kind, name, payload, sent_at, dedupe_key, consumed = row
    return InboxMessage(
        int(seq),  # type: ignore[call-overload]
        str(kind),
        None if name is None else str(name),
        json.loads(str(payload)),
        int(sent_at),  # type: ignore[call-overload]
        None if dedupe_key is None else str(dedupe_key),
        bool(consumed),
    )


def pending_inbox(conn: sqlite3.Connection, instance_id: str) -> tuple[list[InboxMessage], int]:
    """The unconsumed messages and the number of the last message (one statement, so one
    snapshot: no message numbered up to that number is missed)."""
    rows = conn.execute(
        "SELECT i.inbox_seq, m.seq, m.kind, m.name, m.payload, m.sent_at, m.dedupe_key,"
        " m.consumed FROM instances AS i LEFT JOIN inbox AS m"
        " ON m.instance_id = i.id AND m.consumed = 0 WHERE i.id = ? ORDER BY m.seq",
        (instance_id,),
    ).fetchall()
    if not rows:
        return [], 0
    last = int(rows[0][0])
    return [_message(row[1:]) for row in rows if row[1] is not None], last


def read_inbox(conn: sqlite3.Connection, instance_id: str) -> list[InboxMessage]:
    """Every message of an instance, consumed or not, in delivery order."""
    rows = conn.execute(
        f"SELECT {_MESSAGE} FROM inbox WHERE instance_id = ? ORDER BY seq", (instance_id,)
    ).fetchall()
    return [_message(row) for row in rows]
