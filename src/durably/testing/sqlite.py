"""The SQLite runtime for tests: the same handle as the in-memory one, over a real database file."""

from __future__ import annotations

import uuid

import attrs

from durably.adapters.clock import ManualClock
from durably.adapters.sqlite import SqliteHost
from durably.domain.records import JsonValue
from durably.domain.serialization import loads
from durably.ports import InstanceRuntime
from durably.testing.runtime import VirtualClockHandle

__all__ = ["SqliteRuntimeHandle", "create_sqlite_runtime"]


@attrs.define(eq=False)
class SqliteRuntimeHandle(VirtualClockHandle):
    """Drives a SQLite-backed runtime like ``TestRuntimeHandle`` drives the in-memory one."""

    __test__ = False

    backend: SqliteHost
    instance_id: str

    def scheduled_time(self) -> int | None:
        """When the instance's alarm is set for, or ``None``."""
        rows = self.backend.db.run_now(
            lambda conn: conn.execute(
                "SELECT due_at FROM alarms WHERE instance_id = ?", (self.instance_id,)
            ).fetchall()
        )
        return int(rows[0][0]) if rows else None

    def should_alarm_fire(self) -> bool:
        """Whether an alarm is set and due at the clock's time."""
        at = self.scheduled_time()
        return at is not None and at <= self.clock.time_ms

    def clear_alarm(self) -> None:
        """Clear the alarm."""
        # Like the in-memory handle, this is the host's bookkeeping, not a counted commit.
        self.backend.db.run_now(
            lambda conn: conn.execute(
                "DELETE FROM alarms WHERE instance_id = ?", (self.instance_id,)
            )
        )

    def storage_snapshot(self) -> dict[str, JsonValue]:
        """A copy of every stored key and value of the instance."""
        rows = self.backend.db.run_now(
            lambda conn: conn.execute(
                "SELECT key, value FROM kv WHERE instance_id = ?", (self.instance_id,)
            ).fetchall()
        )
        return {str(k): loads(str(v)) for k, v in sorted(rows)}

    @property
    def commits(self) -> int:
        """How many transactions the backend has committed."""
        return self.backend.commits


def create_sqlite_runtime(
    path: str,
    instance_id: str | None = None,
    initial_time: int | None = None,
    *,
    backend: SqliteHost | None = None,
) -> tuple[InstanceRuntime, SqliteRuntimeHandle]:
    """A SQLite-backed runtime with a virtual clock (database at ``path``) and its handle."""
    iid = instance_id if instance_id is not None else str(uuid.uuid4())
    if backend is None:
        backend = SqliteHost(path, clock=ManualClock(initial_time or 0))
        backend.db.open_blocking()
    clock = backend.clock
    if not isinstance(clock, ManualClock):
        raise TypeError("create_sqlite_runtime needs a backend with a ManualClock")
    if initial_time is not None:
        clock.time_ms = initial_time
    return backend.runtime(iid), SqliteRuntimeHandle(clock, backend, iid)
