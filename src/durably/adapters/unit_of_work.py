"""The unit of work every adapter shares: writes buffered in a transaction, committed at once.

A transaction belongs to one instance of one backend (its ``owner``); it is found
through a context variable, so the storage, the scheduler and the inbox of one runtime
join the same unit of work without being passed it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextvars import ContextVar, Token
from typing import Final, TypeAlias

import attrs

from durably.domain.errors import StorageError
from durably.domain.inbox import Outgoing

__all__ = [
    "KeepAlarm",
    "SetAlarm",
    "ClearAlarm",
    "AlarmChange",
    "KEEP_ALARM",
    "CLEAR_ALARM",
    "UnitOfWork",
    "active_unit",
    "open_unit",
]


@attrs.frozen
class KeepAlarm:
    """The alarm is left as it is."""


@attrs.frozen
class SetAlarm:
    """The alarm is set to ``at`` (epoch ms), replacing any other."""

    at: int


@attrs.frozen
class ClearAlarm:
    """The alarm is cleared."""


AlarmChange: TypeAlias = KeepAlarm | SetAlarm | ClearAlarm
KEEP_ALARM: Final = KeepAlarm()
CLEAR_ALARM: Final = ClearAlarm()


@attrs.define
class UnitOfWork:
    """What waits for one commit: key -> JSON text (``None`` deletes), a clear of every
    key, an alarm change, the inbox messages consumed, and the messages sent to other
    instances' inboxes (appended in the same transaction)."""

    owner: object
    writes: dict[str, str | None] = attrs.field(factory=dict)
    cleared: bool = False
    alarm: AlarmChange = KEEP_ALARM
    consumed: set[int] = attrs.field(factory=set)
    sends: list[Outgoing] = attrs.field(factory=list)
    closed: bool = False

    def is_empty(self) -> bool:
        """Whether committing would change nothing."""
        return (
            not self.writes
            and not self.cleared
            and isinstance(self.alarm, KeepAlarm)
            and not self.consumed
            and not self.sends
        )

    def merge(self, other: UnitOfWork) -> None:
        """Add ``other``'s changes to this unit (a write joining an open transaction)."""
        if other.cleared:
            self.writes.clear()
            self.cleared = True
        self.writes.update(other.writes)
        if not isinstance(other.alarm, KeepAlarm):
            self.alarm = other.alarm
        self.consumed |= other.consumed
        self.sends.extend(other.sends)


_ACTIVE: ContextVar[tuple[UnitOfWork, ...]] = ContextVar("durably_units_of_work", default=())


def active_unit(owner: object) -> UnitOfWork | None:
    """The open unit of work of ``owner`` in this context, if any."""
    for unit in _ACTIVE.get():
        # A task started inside a transaction inherits the context; once the block has
        # ended, its writes must not land in a unit that is committed or dropped already.
        if unit.owner == owner and not unit.closed:
            return unit
    return None


class open_unit:
    """Open (or join) the unit of work of ``owner``; ``commit`` it when the outermost block ends.

    (A class rather than an ``asynccontextmanager``: every transaction passes here.)
    """

    __slots__ = ("_commit", "_owner", "_token", "_unit")

    def __init__(self, owner: object, commit: Callable[[UnitOfWork], Awaitable[None]]) -> None:
        self._owner = owner
        self._commit = commit
        self._unit: UnitOfWork | None = None
        self._token: Token[tuple[UnitOfWork, ...]] | None = None

    async def __aenter__(self) -> None:
        if active_unit(self._owner) is not None:
            return  # joined: the outermost block commits
        unit = self._unit = UnitOfWork(self._owner)
        self._token = _ACTIVE.set((*_ACTIVE.get(), unit))

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: object
    ) -> None:
        unit, token = self._unit, self._token
        if unit is None or token is None:
            return
        unit.closed = True
        _ACTIVE.reset(token)
        if kind is not None or unit.is_empty():
            return  # the block raised: its writes are dropped
        try:
            await self._commit(unit)
        except StorageError:
            raise
        except Exception as e:
            raise StorageError("commit", None, e) from e
