"""What the SQL backends share about a grouped commit: the waiting units and their failures."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable

import attrs

from durably.adapters.unit_of_work import Unchanged, UnitOfWork

__all__ = [
    "LONGEST_WITHOUT_A_TURN_S",
    "LeaseLost",
    "InstanceExists",
    "Waiting",
    "GivenBack",
    "status_tag",
    "new_instance_row",
    "releases_lease",
    "alarm_change",
    "resolve",
    "loop_is_idle",
]


LONGEST_WITHOUT_A_TURN_S = 0.02
"""How long commits made without a turn of the event loop may keep it from its other
work (timers such as the lease heartbeat run only when the loop gets its turn)."""


class LeaseLost(Exception):
    """The commit's owner no longer holds the instance's lease (fencing)."""


class InstanceExists(Exception):
    """An instance with this id was created by someone else first."""


@attrs.define(eq=False, slots=True)
class Waiting:
    """One instance's unit of work waiting for the next grouped commit."""

    instance_id: str
    unit: UnitOfWork
    owner: str | None
    lease_ms: int
    future: asyncio.Future[None] | None
    """Resolved once the group is committed (``None``: committed by its own caller)."""
    observed: dict[str, str | None] | None = None
    """The volatile keys the commit read in its transaction (fenced units only)."""
    tag: str | None = None
    """The tag of the status the unit writes, once the commit has parsed it."""


class GivenBack:
    """The leases that commits of this process gave back, so that nobody reads to know.

    The backends' rule: a fenced commit that writes a status other than ``Running``
    releases the instance's lease in its transaction (and a creation holds the lease only
    when it writes ``Running``). Once the engine is done with an instance, it gives back
    the lease if it still holds it; when the last commit already did, there is nothing
    to read. Anything that takes a lease (a claim, an acquire, a ``Running`` commit)
    forgets the instance here, so an entry always means "not held by this owner".
    """

    _LIMIT = 10_000  # entries left by instances the engine never asks about

    def __init__(self) -> None:
        self._leases: set[tuple[str, str]] = set()

    def committed(self, waiting: Waiting) -> None:
        """Note what the successful commit of ``waiting`` did to its owner's lease."""
        owner, tag = waiting.owner, waiting.tag
        if owner is None or tag is None:
            return  # no status written: the lease is as it was
        instance_id = waiting.instance_id
        if not releases_lease(tag):
            self._leases.discard((instance_id, owner))
        else:
            if len(self._leases) >= self._LIMIT:
                self._leases.clear()  # only costs reads
            self._leases.add((instance_id, owner))

    def taken(self, instance_ids: Iterable[str], owner: str) -> None:
        """Forget instances whose lease ``owner`` just took."""
        for instance_id in instance_ids:
            self._leases.discard((instance_id, owner))

    def pop(self, instance_id: str, owner: str) -> bool:
        """Whether a commit of ``owner`` released this lease since it last took it."""
        try:
            self._leases.remove((instance_id, owner))
        except KeyError:
            return False
        return True


def status_tag(text: str | None) -> str | None:
    """The tag of a stored status (JSON text), to keep the instances table in step."""
    if text is None:
        return None
    data = json.loads(text)
    tag = data.get("tag") if isinstance(data, dict) else None
    return tag if isinstance(tag, str) else None


# The lease rules every backend writes the same way (SQLite, PostgreSQL's transaction and
# its one-statement commits), and ``GivenBack`` relies on.


def new_instance_row(
    waiting: Waiting, tag: str | None, workflow: str, now: int
) -> tuple[str, str, str, int, int, str | None, int | None]:
    """The instances row a creation writes (``id, workflow, status, created_at, updated_at,
    lease_owner, lease_expires_at``): it holds its owner's lease only if it is Running."""
    holder = waiting.owner if tag == "Running" else None
    expires = now + waiting.lease_ms if holder is not None else None
    return (waiting.instance_id, workflow, tag or "Pending", now, now, holder, expires)


def releases_lease(tag: str | None) -> bool:
    """Whether a fenced commit writing status ``tag`` gives the lease back (it stops running)."""
    return tag is not None and tag != "Running"


def alarm_change(waiting: Waiting, tag: str | None, now: int) -> tuple[str, int | None]:
    """What a unit does to its instance's alarm: ``("delete", None)``, ``("keep", None)``
    or ``("set", due)``. Running under a lease is never without an alarm: at the lease's
    expiry, so that if the owner dies the next claim recovers the instance."""
    alarm = waiting.unit.alarm
    if alarm is None:
        return "delete", None
    if not isinstance(alarm, Unchanged):
        return "set", alarm
    if tag == "Running" and waiting.owner is not None:
        return "set", now + waiting.lease_ms
    return "keep", None


def resolve(batch: list[Waiting], errors: list[BaseException | None]) -> None:
    """Wake every unit of a committed batch: durable, or the error that refused it."""
    for waiting, error in zip(batch, errors, strict=True):
        future = waiting.future
        if future is None or future.done():
            continue
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)


def loop_is_idle(loop: asyncio.AbstractEventLoop) -> bool:
    """Whether no callback is ready to run: a group formed now would hold one unit only.

    (Reads the loop's ready queue, which the standard event loops have; other loops
    count as never idle, so their commits are always grouped.)
    """
    ready = getattr(loop, "_ready", None)
    return ready is not None and not ready
