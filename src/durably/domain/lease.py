"""Leases: the setting (``Lease``), and one execution's hold on an instance's lease
(``LeaseHold``), as that execution knows it.

The database is the judge of a lease (every commit of its owner is fenced). This is
what the owner itself can tell without a query: whether it still holds the lease (a
commit that ended the run gave it back), and until when it is surely valid, measured on
the monotonic clock from the start of the last operation that extended it (the claim,
a renewal, a commit that renews), so that a worker stalled past its lease notices it
before it starts another step (semantics.md section 7).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import attrs

from durably.domain.durations import Duration, parse_duration

__all__ = ["Lease", "LeaseHold"]


@attrs.frozen
class Lease:
    """How long a worker holds an instance without renewing (the crash-recovery delay)."""

    duration: Duration = "30s"
    renew_every: Duration = "10s"
    duration_ms: int = attrs.field(init=False)
    renew_every_ms: int = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        duration = parse_duration(self.duration, field="Lease.duration")
        renew = parse_duration(self.renew_every, field="Lease.renew_every")
        if duration <= 0 or renew <= 0:
            raise ValueError("Lease.duration and Lease.renew_every must be greater than 0")
        if renew >= duration:
            raise ValueError(
                f"Lease.renew_every ({renew} ms) must be shorter than "
                f"Lease.duration ({duration} ms)"
            )
        object.__setattr__(self, "duration_ms", duration)
        object.__setattr__(self, "renew_every_ms", renew)


@attrs.define(eq=False)
class LeaseHold:
    """The lease of one instance held by ``owner`` for ``duration_ms`` after each extension."""

    owner: str
    duration_ms: int
    held: bool = True
    """Whether the lease is still ours (``False`` once a commit gave it back)."""
    valid_until: float = attrs.field(default=float("-inf"))
    """Monotonic time (s) until which the lease is surely ours."""
    stopping: bool = False
    """The engine is closing: the execution stops at its next durability point."""
    inbox_seq: int | None = None
    """The number of the instance's last inbox message when the lease was taken, if the
    claim said (0: none ever arrived, so there is nothing to read at the alarm)."""
    clock: Callable[[], float] = time.monotonic

    def extended(self, since: float) -> None:
        """An operation that started at ``since`` (monotonic s) extended the lease."""
        self.valid_until = max(self.valid_until, since + self.duration_ms / 1000)

    def given_back(self) -> None:
        """A commit released the lease (the run stopped)."""
        self.held = False

    def taken(self) -> None:
        """The lease is ours again (taken anew)."""
        self.held = True

    @property
    def margin_s(self) -> float:
        """How much of the lease must be left to start a step: a fifth of it."""
        return self.duration_ms / 5000

    def usable(self) -> bool:
        """Whether an execution may start its next step, sleep, wait or child under it."""
        return self.held and not self.stopping and self.remaining_s() > self.margin_s

    def remaining_s(self) -> float:
        """How long the lease is surely ours from now (negative: it may have expired)."""
        return self.valid_until - self.clock()
