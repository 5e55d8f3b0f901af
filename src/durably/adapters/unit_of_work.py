"""The unit of work every adapter shares: writes buffered in a transaction, committed at once.

A transaction belongs to one instance of one backend (its ``owner``); it is found
through a context variable, so the storage and the scheduler of one runtime join
the same unit of work without being passed it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextvars import ContextVar, Token
from typing import Final

import attrs

from durably.domain.errors import StorageError

__all__ = ["UNCHANGED", "Unchanged", "UnitOfWork", "active_unit", "open_unit"]


class Unchanged:
    """The alarm was not touched in this unit of work."""

    def __repr__(self) -> str:
        return "UNCHANGED"


UNCHANGED: Final = Unchanged()


@attrs.define
class UnitOfWork:
    """Writes waiting for one commit: key -> JSON text (``None`` deletes), a clear, an alarm."""

    owner: object
    writes: dict[str, str | None] = attrs.field(factory=dict)
    cleared: bool = False
    alarm: int | Unchanged | None = UNCHANGED
    closed: bool = False

    def is_empty(self) -> bool:
        """Whether committing would change nothing."""
        return not self.writes and not self.cleared and self.alarm is UNCHANGED


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
