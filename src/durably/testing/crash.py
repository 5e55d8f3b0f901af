"""``crash_after``: a test's execution dies right after a step's commit, as under SIGKILL.

The process that ran the execution is gone, as far as the instance can tell: the
instance stays ``Running``, under a lease that nobody renews any more, with nothing
written after that step's commit. When the lease expires (``Lease.duration`` later,
30 s by default), the next claim recovers the instance and replays it: the committed
step returns its stored result without running again.
"""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType

import attrs

from durably.adapters.memory import MemoryBackend
from durably.adapters.plan import CommitPlan
from durably.domain import keys
from durably.domain.errors import ExecutionStopped
from durably.services.context import StopSignal

__all__ = ["CrashPoint", "crash_after", "crash_observer"]

_ARMED: list[CrashPoint] = []
"""The crash points of the ``with`` blocks being run."""


@attrs.define(eq=False)
class CrashPoint:
    """Where a test's execution dies: right after the commit of step ``step_name``.

    Use it as ``with crash_after("charge"): ...``: armed inside the block, it fires once,
    at the first commit of that step (of instance ``id`` if given) by an engine of the
    ``durably_engine`` fixture (or ``EngineFactory``). Leaving the block without an error
    when it has not fired is an ``AssertionError``: a crash test that crashed nothing
    proves nothing.
    """

    step_name: str
    """The step's key: its name, or ``name#2`` for its second call in the workflow."""
    id: str | None = None
    """Only an execution of this instance dies (any instance when ``None``)."""
    crashed: str | None = None
    """The id of the instance whose execution died, once it has."""

    def __enter__(self) -> CrashPoint:
        _ARMED.append(self)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self in _ARMED:
            _ARMED.remove(self)
        if exc_type is None and self.crashed is None:
            where = "" if self.id is None else f" of instance {self.id!r}"
            raise AssertionError(
                f"crash_after({self.step_name!r}) never fired: no commit of step "
                f"{self.step_name!r}{where} by an engine of durably_engine in the block "
                "(a step that already ran, a misspelt name, or a run that had not reached it: "
                "`await durably_clock.settle()` waits for the engines' workers)"
            )

    def _matches(self, plan: CommitPlan) -> bool:
        if self.crashed is not None or self.id not in (None, plan.instance_id):
            return False
        result_key = keys.step(self.step_name, "result")
        return any(key == result_key for key, _ in plan.upserts)


def crash_after(step_name: str, *, id: str | None = None) -> CrashPoint:
    """Make the execution that commits step ``step_name`` die right after that commit.

    Args:
        step_name: the step's key (``"charge"``, or ``"charge#2"`` for its second call).
        id: only an execution of this instance dies.

    Returns:
        A ``CrashPoint``, armed by ``with``; its ``crashed`` names the instance once it
        has fired.
    """
    return CrashPoint(step_name, id)


def crash_observer(backend: MemoryBackend, owner: str) -> Callable[[CommitPlan], None]:
    """The commit observer that crashes the executions of ``owner`` on ``backend`` at the
    armed crash points (``EngineFactory`` installs one per engine)."""

    def observe(plan: CommitPlan) -> None:
        for point in _ARMED:
            if point._matches(plan):
                point.crashed = plan.instance_id
                row = backend.rows.get(plan.instance_id)
                if row is not None and row.lease_owner == owner:
                    # The lease stays as it is, held by a process that no longer renews it.
                    row.lease_owner = f"{owner} (crashed)"
                reason = (
                    f"its process crashed right after step {point.step_name!r} committed "
                    "(durably.testing.crash_after)"
                )
                raise StopSignal(ExecutionStopped(plan.instance_id, reason))

    return observe
