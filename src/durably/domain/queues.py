"""Queues with flow control (coordination.md section 3): what a queue allows, and where an
instance stands in its queue.

A limit counts **instances**, not executions: an instance takes a slot of its queue when
a claim starts it, keeps it while it runs, sleeps or waits (even across the death of its
worker: whoever recovers it holds the same slot), and gives it back in the commit that
makes it final. ``rate`` counts starts (slots taken) in a sliding window.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Final

import attrs

from durably.domain.durations import parse_duration

__all__ = [
    "DEFAULT_QUEUE",
    "Queue",
    "Placement",
    "QueueStats",
    "ClaimScope",
    "parse_rate",
    "admit",
]

DEFAULT_QUEUE: Final = "default"

_RATE = re.compile(r"^\s*(\d+)\s*/\s*(.+?)\s*$")


def parse_rate(rate: str) -> tuple[int, int]:
    """``"100/1m"`` -> ``(100, 60_000)``: at most that many starts per that many ms.

    >>> parse_rate("20/1s"), parse_rate("100 / 1 minute")
    ((20, 1000), (100, 60000))
    """
    found = _RATE.match(rate) if isinstance(rate, str) else None
    if found is None:
        raise ValueError(f"rate must be 'N/period' such as '100/1m', got {rate!r}")
    count = int(found.group(1))
    period = parse_duration(found.group(2), field="rate")
    if count < 1 or period < 1:
        raise ValueError(f"rate must allow at least 1 start in a period of 1 ms or more: {rate!r}")
    return count, period


def _positive(name: str) -> Callable[[object, attrs.Attribute[int | None], int | None], None]:
    def check(_: object, attribute: attrs.Attribute[int | None], value: int | None) -> None:
        if value is None:
            return
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int or None, got {value!r}")

    return check


def _rate(_: object, __: attrs.Attribute[str | None], value: str | None) -> None:
    if value is not None:
        parse_rate(value)


def _name(_: object, __: attrs.Attribute[str], value: str) -> None:
    if not isinstance(value, str) or not value.strip() or len(value) > 200:
        raise ValueError(f"a queue name must be a non-empty string (at most 200), got {value!r}")


@attrs.frozen
class Queue:
    """A queue of ``engine.queue``: its name and its limits (``None``: none).

    - ``concurrency``: at most this many of its instances started and not yet final at
      once, across all workers (a sleeping or waiting instance keeps its slot);
    - ``worker_concurrency``: at most this many executing in one worker process;
    - ``rate``: ``"N/period"``, at most N starts per period, across all workers;
    - ``partition_concurrency``: ``concurrency`` for each ``partition_key`` apart.
    """

    name: str = attrs.field(validator=_name)
    concurrency: int | None = attrs.field(
        default=None, kw_only=True, validator=_positive("concurrency")
    )
    worker_concurrency: int | None = attrs.field(
        default=None, kw_only=True, validator=_positive("worker_concurrency")
    )
    rate: str | None = attrs.field(default=None, kw_only=True, validator=_rate)
    partition_concurrency: int | None = attrs.field(
        default=None, kw_only=True, validator=_positive("partition_concurrency")
    )

    @property
    def limited(self) -> bool:
        """Whether a start must take a slot counted across workers."""
        return (
            self.concurrency is not None
            or self.rate is not None
            or self.partition_concurrency is not None
        )

    @property
    def rate_limit(self) -> tuple[int, int] | None:
        """``(starts, period ms)`` of ``rate``."""
        return None if self.rate is None else parse_rate(self.rate)


@attrs.frozen
class Placement:
    """Where an instance stands in its queue (stored at ``workflow:queue``)."""

    queue: str = DEFAULT_QUEUE
    priority: int = 0
    partition_key: str | None = None
    dedupe_id: str | None = None


@attrs.frozen
class QueueStats:
    """What ``durably queues`` prints for one queue."""

    name: str
    waiting: int
    """Queued, not started (due or not)."""
    running: int
    """Started and not final: holding a slot (running, sleeping or waiting)."""
    queue: Queue | None = None
    """Its limits as last stored by an engine (``None``: no engine declared it)."""


def stats_of_queues(
    counts: Iterable[tuple[str, str, int]],
    limits: Iterable[tuple[str, int | None, int | None, str | None, int | None]],
) -> list[QueueStats]:
    """The stats of every queue, by name, from the instance counts per ``(queue, status)``
    and the stored limits ``(name, concurrency, worker_concurrency, rate,
    partition_concurrency)`` (what the backends read in two statements).

    >>> [s.waiting for s in stats_of_queues([("q", "Queued", 2), ("q", "Paused", 1)], [])]
    [2]
    """
    tally: dict[str, list[int]] = {}
    for name, status, count in counts:
        entry = tally.setdefault(str(name), [0, 0])
        if status == "Queued":
            entry[0] += int(count)
        elif status in ("Running", "Paused"):
            entry[1] += int(count)
    stored: dict[str, Queue] = {}
    for name, concurrency, worker, rate, partition in limits:
        stored[str(name)] = Queue(
            str(name),
            concurrency=concurrency,
            worker_concurrency=worker,
            rate=rate,
            partition_concurrency=partition,
        )
        tally.setdefault(str(name), [0, 0])
    return [
        QueueStats(name, waiting, running, stored.get(name))
        for name, (waiting, running) in sorted(tally.items())
    ]


@attrs.frozen
class ClaimScope:
    """What one claim may take: the queues its worker serves, the limits it enforces, and
    how many more instances of each queue this worker may execute (``worker_concurrency``).

    The default serves only the default queue, without limits.
    """

    served: frozenset[str] = frozenset({DEFAULT_QUEUE})
    limits: tuple[Queue, ...] = ()
    """The served queues whose starts take slots (``Queue.limited``)."""
    room: tuple[tuple[str, int], ...] = ()
    """``(queue, n)``: at most ``n`` more of that queue for this worker now."""
    workflows: frozenset[str] | None = None
    """The workflows this worker has (``None``: any): an instance of another one is left
    to a worker that has it (its lease not taken, its alarm not moved)."""

    def room_of(self, queue: str) -> int | None:
        """How many more of ``queue`` this worker may take (``None``: no local cap)."""
        return dict(self.room).get(queue)


def admit(
    queue: Queue,
    candidates: list[tuple[str, str | None]],
    started: int,
    recent: int,
    by_partition: dict[str | None, int],
    budget: int,
) -> list[str]:
    """Which of ``candidates`` (``(id, partition key)``, best first: priority, then FIFO)
    a claim may start in ``queue`` now: ``started`` instances hold its slots, ``recent``
    started within its rate's window, ``by_partition`` hold slots per partition key, and
    the claim may take ``budget`` more.

    >>> q = Queue("orders", concurrency=3, partition_concurrency=1)
    >>> admit(q, [("a", "c1"), ("b", "c1"), ("c", "c2"), ("d", "c3")], 1, 0, {"c3": 1}, 9)
    ['a', 'c']
    """
    free = budget
    if queue.concurrency is not None:
        free = min(free, queue.concurrency - started)
    rate = queue.rate_limit
    if rate is not None:
        free = min(free, rate[0] - recent)
    taken: list[str] = []
    used = dict(by_partition)
    for instance_id, partition in candidates:
        if len(taken) >= free:
            break
        if queue.partition_concurrency is not None:
            if used.get(partition, 0) >= queue.partition_concurrency:
                continue
            used[partition] = used.get(partition, 0) + 1
        taken.append(instance_id)
    return taken
