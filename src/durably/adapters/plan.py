"""The commit plan: what one unit of work does to the database, decided in one pure function.

Every backend executes plans, and only plans, in one place each (``MemoryStore.execute``,
``sqlite/plans.py``, ``postgres/plans.py``), so the rules below are written once:

- **creation**: a unit that writes the workflow's name creates the instance, in its
  queue (``workflow:queue``); it is refused when the instance exists (``InstanceExists``)
  or when its queue's dedupe id is held by an instance not final yet
  (``DuplicateWorkflowError``). The creation holds its owner's lease only when it
  writes ``Running`` (a queued instance is nobody's).
- **slots**: a status that is final gives back the instance's slot in its queue.
- **fenced**: a unit of a lease owner is refused (``LeaseLost``) unless the owner still
  holds the lease. A status other than ``Running`` gives the lease back in the same
  commit (the run stopped); ``Running`` keeps it, renewed.
- **unfenced**: without an owner (the service-level tests' runtimes), nothing is checked.
- **alarm**: what the unit asked for; and a ``Running`` status written under a lease
  always sets the alarm to the lease's expiry, so that if the owner dies, the instance
  comes due and the next claim recovers it.
- **sends**: messages to other instances' inboxes are appended in the plan's own
  transaction, only if the plan applies, by the rules of an append (domain/inbox.py):
  the commit that ends a child is the one that tells its parent.
- **news**: a unit that sets or clears the alarm of an instance that is left waiting
  (``Queued`` or ``Paused``) says up to which inbox number its committer has read
  (``news_after``). When a message numbered beyond it arrived (while the instance was
  running, its append could not wake it), the alarm is set to now instead: the instance
  comes due and looks at the message. The check runs where the commit takes the
  instance's row, so no message can slip between it and the commit.
"""

from __future__ import annotations

import json
from typing import TypeAlias

import attrs

from durably.adapters.unit_of_work import AlarmChange, KeepAlarm, SetAlarm, UnitOfWork
from durably.domain import keys
from durably.domain.inbox import WAKING_STATUSES, Outgoing
from durably.domain.queues import DEFAULT_QUEUE
from durably.domain.status import TERMINAL_TAGS

__all__ = [
    "Create",
    "Fenced",
    "Unfenced",
    "Write",
    "CommitPlan",
    "CommitOutcome",
    "plan_commit",
    "status_tag",
    "woken_by_news",
]


@attrs.frozen
class Create:
    """Insert the instance's row (refused if it exists, or if its queue's dedupe id is
    held by an instance not final yet)."""

    workflow: str
    lease_owner: str | None
    lease_expires_at: int | None
    queue: str = DEFAULT_QUEUE
    priority: int = 0
    partition_key: str | None = None
    dedupe_id: str | None = None


@attrs.frozen
class Fenced:
    """Update the instance only while ``owner`` holds its lease."""

    owner: str
    lease_expires_at: int
    """The lease's new expiry (backends whose commits renew the lease write it)."""
    release: bool
    """The status written ends the run: the lease is given back."""


@attrs.frozen
class Unfenced:
    """Write without a lease (a runtime that no lease fences)."""


Write: TypeAlias = Create | Fenced | Unfenced


@attrs.frozen
class CommitPlan:
    """One instance's commit, as every backend executes it."""

    instance_id: str
    write: Write
    status: str | None
    """The tag of the status written (the instances row follows it), if any."""
    clear: bool
    """Every key (and inbox message) of the instance is deleted before the upserts."""
    upserts: tuple[tuple[str, str], ...]
    """``(key, JSON text)`` rows to write."""
    deletes: tuple[str, ...]
    alarm: AlarmChange
    consume: tuple[int, ...]
    """Inbox messages (their ``seq``) consumed by this commit."""
    now: int
    news_after: int | None = None
    """The last inbox number the committer read, when the plan sets or clears the alarm
    of an instance it may leave waiting (the **news** rule); else ``None``."""
    sends: tuple[Outgoing, ...] = ()
    """Messages appended to other instances' inboxes in the same transaction."""

    @property
    def renews(self) -> bool:
        """Whether the plan writes the lease row anyway (a status under the lease)."""
        return isinstance(self.write, Fenced) and self.status is not None


@attrs.frozen
class CommitOutcome:
    """What a committed plan reports back."""

    inbox_seq: int | None
    """The number of the instance's last inbox message (``None``: no instance row)."""


def status_tag(text: str | None) -> str | None:
    """The tag of a stored status (JSON text), to keep the instances row in step.

    >>> status_tag('{"tag": "Running", "running_at": 5}')
    'Running'
    """
    if text is None:
        return None
    data = json.loads(text)
    tag = data.get("tag") if isinstance(data, dict) else None
    return tag if isinstance(tag, str) else None


def woken_by_news(plan: CommitPlan, status: str | None, inbox_seq: int) -> bool:
    """Whether ``plan`` must set the alarm to now: it leaves the instance waiting in
    ``status`` and a message numbered ``inbox_seq`` came after what its committer read.

    >>> from durably.adapters.unit_of_work import UnitOfWork, CLEAR_ALARM
    >>> plan = plan_commit("i", UnitOfWork(None, alarm=CLEAR_ALARM), "w", 1, 0, seen=3)
    >>> woken_by_news(plan, "Paused", 4), woken_by_news(plan, "Paused", 3)
    (True, False)
    """
    seen = plan.news_after
    return seen is not None and inbox_seq > seen and status in WAKING_STATUSES


def plan_commit(
    instance_id: str,
    unit: UnitOfWork,
    owner: str | None,
    lease_ms: int,
    now: int,
    seen: int | None = None,
) -> CommitPlan:
    """The plan of ``unit`` for ``instance_id``, committed by ``owner`` (or unfenced) at
    ``now`` by a committer that has read its inbox up to number ``seen``.

    >>> from durably.adapters.unit_of_work import UnitOfWork
    >>> unit = UnitOfWork(None, writes={"step:a:result": "1"})
    >>> plan = plan_commit("i1", unit, "w1", 30_000, 1_000)
    >>> plan.write
    Fenced(owner='w1', lease_expires_at=31000, release=False)
    >>> plan.alarm, plan.upserts
    (KeepAlarm(), (('step:a:result', '1'),))
    """
    tag = status_tag(unit.writes.get(keys.STATUS))
    name = unit.writes.get(keys.NAME)
    expires = now + lease_ms
    write: Write
    if name is not None and not unit.cleared:
        holder = owner if tag == "Running" else None
        placed = unit.writes.get(keys.QUEUE)
        where = json.loads(placed) if placed is not None else {}
        write = Create(
            json.loads(name),
            holder,
            expires if holder is not None else None,
            where.get("queue", DEFAULT_QUEUE),
            where.get("priority", 0),
            where.get("partition_key"),
            where.get("dedupe_id"),
        )
    elif owner is not None:
        write = Fenced(owner, expires, release=tag is not None and tag != "Running")
    else:
        write = Unfenced()
    alarm = unit.alarm
    if isinstance(alarm, KeepAlarm) and tag == "Running" and owner is not None:
        alarm = SetAlarm(expires)
    waiting = tag != "Running" and tag not in TERMINAL_TAGS and not unit.cleared
    news_after = seen if seen is not None and waiting and not isinstance(alarm, KeepAlarm) else None
    upserts = tuple((k, v) for k, v in unit.writes.items() if v is not None)
    # After a clear (a purge), nothing is left to delete, and the inbox goes too.
    cleared = unit.cleared
    deletes = () if cleared else tuple(k for k, v in unit.writes.items() if v is None)
    return CommitPlan(
        instance_id=instance_id,
        write=write,
        status=tag,
        clear=unit.cleared,
        upserts=upserts,
        deletes=deletes,
        alarm=alarm,
        consume=() if cleared else tuple(sorted(unit.consumed)),
        now=now,
        news_after=news_after,
        sends=tuple(unit.sends),
    )
