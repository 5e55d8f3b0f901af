"""How the ``durably`` command shows things: times, statuses, outputs and tables."""

from __future__ import annotations

import datetime
import json
from collections.abc import Iterable, Sequence
from typing import Any, Literal

import attrs
from rich.cells import cell_len
from rich.console import Console
from rich.table import Table
from rich.text import Text

from durably.domain.errors import DurablyError
from durably.domain.serialization import encode
from durably.domain.status import Cancelled, Completed, Failed, Paused, WorkflowStatus
from durably.engine import QueueStats, ScheduleInfo
from durably.engine.records import TimelineHeader
from durably.engine.timeline import error_line
from durably.services.types import InstanceSummary, WorkflowStatusResult

__all__ = [
    "STYLES",
    "format_time",
    "format_duration",
    "wake_text",
    "describe_status",
    "progress_text",
    "status_line",
    "output_json",
    "Column",
    "fitted_table",
    "print_table",
    "instances_table",
    "queues_table",
    "schedules_table",
    "schedule_document",
]

STYLES = {
    "Completed": "green",
    "Failed": "bold red",
    "Cancelled": "yellow",
    "Paused": "cyan",
    "Running": "blue",
    "Queued": "magenta",
}


def format_time(ms: int | None) -> str:
    """Epoch milliseconds as ``2024-05-01 12:00:00.250`` (UTC), or ``-``.

    >>> format_time(1_714_564_800_250)
    '2024-05-01 12:00:00.250'
    >>> format_time(None)
    '-'
    """
    if ms is None:
        return "-"
    moment = datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S.") + f"{ms % 1000:03d}"


def format_duration(ms: int) -> str:
    """A short human duration: ``250ms``, ``1.5s``, ``2m05s``, ``3h20m``, ``2d4h``.

    >>> [format_duration(x) for x in (250, 1500, 125_000, 12_000_000, 190_000_000)]
    ['250ms', '1.5s', '2m05s', '3h20m', '2d4h']
    """
    if ms < 1000:
        return f"{max(ms, 0)}ms"
    if ms < 60_000:
        return f"{ms / 1000:.1f}s"
    seconds = ms // 1000
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    if seconds < 86_400:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 86_400}d{seconds % 86_400 // 3600}h"


def wake_text(at: int, now: int) -> str:
    """When something comes due: ``in 2.0s``, ``due now`` or, past, ``due 5.0s ago,
    unclaimed`` (a worker would have moved the alarm on taking it up).

    >>> wake_text(3_000, 1_000), wake_text(1_000, 1_000), wake_text(1_000, 6_000)
    ('in 2.0s', 'due now', 'due 5.0s ago, unclaimed')
    """
    if at > now:
        return f"in {format_duration(at - now)}"
    return "due now" if at == now else f"due {format_duration(now - at)} ago, unclaimed"


def describe_status(
    status: WorkflowStatus,
    now: int | None = None,
    wake_at: int | None = None,
    children: int | None = None,
) -> str:
    """One line of plain text: the tag and what it carries (why paused, why failed...).

    ``wake_at`` is the instance's alarm when known: a paused instance whose alarm is not
    its resume time (a failed alarm moved it; an event was delivered to it) says when it
    really wakes up. ``children``: how many children it started, when known.

    >>> describe_status(Paused("event", None, "approval", ("event:approval",)), 5, 5)
    "Paused (event 'approval'), next wake-up due now"
    """
    if isinstance(status, Paused):
        what = pause_text(status, children)
        text = f"Paused ({what})"
        if status.resume_at is not None:
            text += f" until {format_time(status.resume_at)} UTC"
        at = status.resume_at if wake_at is None else wake_at
        if now is None or at is None:
            return text
        if at != status.resume_at:
            return f"{text}, next wake-up {wake_text(at, now)}"
        return f"{text}, {wake_text(at, now)}"
    if isinstance(status, Failed):
        error = status.error
        kind = f"{error.type}: " if error.type else ""
        where = f" (step {error.step_name!r}" if error.step_name else ""
        if where and error.attempt is not None:
            where += f", attempt {error.attempt}"
        message = " ".join(error.message.split())
        return f"Failed: {kind}{message}{where + ')' if where else ''}"
    if isinstance(status, Cancelled):
        return f"Cancelled: {status.reason}" if status.reason else "Cancelled"
    if isinstance(status, Completed):
        return f"Completed at {format_time(status.completed_at)} UTC"
    return status.tag


def _waited(status: Paused, kind: str) -> list[str]:
    """What the pause waits for deliveries of ``kind`` from: event names, child ids."""
    prefix = f"{kind}:"
    return [w[len(prefix) :] for w in status.waits if w.startswith(prefix)]


def _children_text(ids: Sequence[str], children: int | None) -> str:
    """``child 'p/invoice#2'``; several: ``3 children``, ``3 of 50 children`` (of all it
    started, when that is known)."""
    if len(ids) == 1:
        return f"child {ids[0]!r}"
    if not ids:
        return "child"
    if children is not None and children > len(ids):
        return f"{len(ids)} of {children} children"
    return f"{len(ids)} children"


def pause_text(status: Paused, children: int | None = None) -> str:
    """What a pause waits for: ``retry of step 'charge'``, ``sleep 'cool-off'``, ``event
    'approval'``, ``child 'm/invoice#2'``, ``3 of 50 children`` (``children``: how many
    it started, when known); the deliveries that other branches of a ``gather`` wait for
    follow.

    >>> pause_text(Paused("child", None, "invoice#2", ("child:m/invoice#2",)))
    "child 'm/invoice#2'"
    >>> waits = ("child:m/invoice", "child:m/invoice#2", "child:m/invoice#3")
    >>> pause_text(Paused("child", None, "invoice", waits), 50)
    '3 of 50 children'
    >>> pause_text(Paused("sleep", 9, "nap", ("event:go", "child:m/invoice")))
    "sleep 'nap', event 'go', child 'm/invoice'"
    """
    events, kids = _waited(status, "event"), _waited(status, "child")
    events_text = "event " + ", ".join(repr(n) for n in events) if events else "event"
    match status.reason:
        case "retry":
            parts = [f"retry of step {status.step_name!r}"]
        case "sleep":
            parts = [f"sleep {status.step_name!r}" if status.step_name else "sleep"]
        case "event":
            parts, events = [events_text], []
        case "child":
            parts, kids = [_children_text(kids, children)], []
        case _:
            parts = [status.reason]
    if events:
        parts.append(events_text)
    if kids:
        parts.append(_children_text(kids, children))
    return ", ".join(parts)


def progress_text(status: WorkflowStatus, now: int) -> str:
    """A short status for the spinner of ``start --wait``: ``Paused (sleep), resumes in 2.0s``;
    an event wait resumes when the event comes, or times out; a wait for children names
    them.

    >>> progress_text(Paused("event", 61_000, "approval", ("event:approval",)), 1_000)
    "Paused (event 'approval'), times out in 1m00s"
    >>> progress_text(Paused("child", None, "invoice", ("child:m/invoice",)), 1_000)
    "Paused (child 'm/invoice')"
    """
    if isinstance(status, Paused):
        what = pause_text(status) if status.reason in ("event", "child") else status.reason
        if status.resume_at is None:
            return f"Paused ({what})"
        then = "times out" if status.reason == "event" else "resumes"
        return f"Paused ({what}), {then} in {format_duration(status.resume_at - now)}"
    return status.tag


def status_line(
    instance_id: str,
    result: WorkflowStatusResult | TimelineHeader,
    now: int,
) -> Text:
    """``ID  STATUS  (N steps completed, M children)``, coloured by status; from a
    timeline's header, also the real next wake-up and why the last alarm failed."""
    status = result.status
    line = Text(f"{instance_id}  ")
    if status is None:
        return line.append("not found", style="red")
    wake_at = result.next_wakeup_at if isinstance(result, TimelineHeader) else None
    children = len(result.children)
    text = describe_status(status, now, wake_at, children)
    line.append(text, style=STYLES.get(status.tag, ""))
    steps = result.completed_steps
    count = steps if isinstance(steps, int) else len(steps)
    started = f", {children} {'child' if children == 1 else 'children'}" if children else ""
    line.append(f"  ({count} step{'' if count == 1 else 's'} completed{started})", style="dim")
    if isinstance(result, TimelineHeader) and result.last_alarm_error is not None:
        failure = result.last_alarm_error
        line.append(f"; last alarm failed: {error_line(failure.error)}", style="red")
    return line


def output_json(value: Any) -> str:
    """A workflow output as JSON text (through durably's converter, so attrs classes work)."""
    try:
        data: Any = encode(value)
    except DurablyError:
        return json.dumps(repr(value))
    return json.dumps(data, ensure_ascii=False)


@attrs.frozen
class Column:
    """A column of a table fitted to the terminal's width."""

    header: str
    keep: bool = False
    """Never wraps nor shrinks (ids, names): the table grows wider instead."""
    minimum: int = 1
    """How narrow the column may get (its cells wrap at spaces, then fold)."""
    justify: Literal["left", "right"] = "left"
    optional: bool = False
    """Left out when the table does not fit even with every column at its minimum."""
    shrink_order: int = 1
    """Columns of a lower order shrink first (the widest first among equals)."""
    style: str = ""


def fitted_table(
    title: str, columns: Sequence[Column], rows: Sequence[Sequence[Text | str]], width: int
) -> Table:
    """A table at most ``width`` wide if it can be: the kept columns at their full width,
    the others shrunk down to their minimum (widest first), optional columns left out
    when that is not enough. Print it with ``print_table`` (never cropped)."""
    chosen = list(range(len(columns)))

    def natural(i: int) -> int:
        return max([cell_len(columns[i].header), *(cell_len(str(row[i])) for row in rows)])

    def fit(indices: list[int]) -> tuple[list[int], bool]:
        widths = [natural(i) for i in indices]
        room = width - (3 * len(indices) + 1)  # a border and two spaces of padding each
        while sum(widths) > room:
            shrinkable = [
                k
                for k, i in enumerate(indices)
                if not columns[i].keep and widths[k] > max(columns[i].minimum, 1)
            ]
            if not shrinkable:
                return widths, False
            first = min(columns[indices[k]].shrink_order for k in shrinkable)
            candidates = [k for k in shrinkable if columns[indices[k]].shrink_order == first]
            widths[max(candidates, key=lambda k: widths[k])] -= 1
        return widths, True

    widths, fits = fit(chosen)
    if not fits and any(columns[i].optional for i in chosen):
        chosen = [i for i in chosen if not columns[i].optional]
        widths, fits = fit(chosen)
    table = Table(title=title, title_justify="left")
    for i, size in zip(chosen, widths, strict=True):
        column = columns[i]
        table.add_column(
            column.header,
            width=size,
            no_wrap=column.keep,
            overflow="fold",
            justify=column.justify,
            style=column.style or None,
        )
    for row in rows:
        table.add_row(*(row[i] for i in chosen))
    return table


def print_table(console: Console, table: Table) -> None:
    """Print a fitted table whole: wider than the console when its kept columns need it
    (the terminal wraps the line; durably never cuts or folds an id or a name)."""
    widths = sum(column.width or 0 for column in table.columns)
    needed = widths + 3 * len(table.columns) + 1
    width = console.width
    if needed <= width:
        console.print(table)
        return
    console.width = needed  # rich never renders wider than its console: widen it for this
    try:
        console.print(table, crop=False)
    finally:
        console.width = width


def _due_cell(due_at: int | None, now: int) -> Text | str:
    if due_at is None:
        return ""
    if due_at > now:
        return f"in {format_duration(due_at - now)}"
    return Text(f"due since {format_time(due_at)}, unclaimed", style="yellow")


def instances_table(rows: Iterable[InstanceSummary], width: int, now: int) -> Table:
    """The table of ``durably list``: with each instance's next wake-up, when one has an
    alarm (in the past: due since then and no worker has taken it up)."""
    rows = list(rows)
    alarms = any(row.due_at is not None for row in rows)
    columns = [
        Column("id", keep=True),
        Column("workflow", keep=True),
        Column("status", keep=True),
        Column("created (UTC)", minimum=12, optional=True),
        Column("updated (UTC)", minimum=12),
        *([Column("next wake-up (UTC)", minimum=12, optional=True)] if alarms else []),
    ]
    cells: list[list[Text | str]] = [
        [
            Text(row.id),
            Text(row.workflow),
            Text(row.status, style=STYLES.get(row.status, "")),
            format_time(row.created_at),
            format_time(row.updated_at),
            *([_due_cell(row.due_at, now)] if alarms else []),
        ]
        for row in rows
    ]
    return fitted_table("Workflow instances", columns, cells, width)


def _limit(value: int | str | None) -> str:
    return "-" if value is None else str(value)


def queues_table(rows: Iterable[QueueStats], width: int) -> Table:
    """The table of ``durably queues``: counts, then limits (``-``: none)."""
    columns = [
        Column("queue", keep=True),
        Column("waiting", keep=True, justify="right"),
        Column("running", keep=True, justify="right"),
        Column("concurrency", keep=True, justify="right"),
        Column("worker_concurrency", keep=True, justify="right"),
        Column("rate", keep=True, justify="right"),
        Column("partition_concurrency", keep=True, justify="right"),
    ]
    cells: list[list[Text | str]] = []
    for row in rows:
        q = row.queue
        limits = (
            (q.concurrency, q.worker_concurrency, q.rate, q.partition_concurrency)
            if q is not None
            else (None, None, None, None)
        )
        cells.append(
            [Text(row.name), str(row.waiting), str(row.running), *(_limit(v) for v in limits)]
        )
    return fitted_table("Queues", columns, cells, width)


def _when(moment: datetime.datetime | None) -> str:
    return "-" if moment is None else format_time(round(moment.timestamp() * 1000))


def schedules_table(rows: Iterable[ScheduleInfo], width: int) -> Table:
    """The table of ``durably schedules``."""
    columns = [
        Column("id", keep=True),
        Column("workflow", keep=True),
        Column("cron / every", keep=True),
        Column("time zone", minimum=3),
        Column("next run (UTC)", minimum=12),
        Column("last run (UTC)", minimum=12, optional=True),
        Column("paused"),
        Column("orphaned"),
    ]
    cells: list[list[Text | str]] = [
        [
            Text(row.id),
            Text(row.workflow),
            Text(row.timing),
            row.timezone,
            _when(row.next_run),
            _when(row.last_run),
            Text("paused", style="yellow") if row.paused else "no",
            Text("orphaned", style="bold red") if row.orphaned else "no",
        ]
        for row in rows
    ]
    return fitted_table("Schedules", columns, cells, width)


def schedule_document(row: ScheduleInfo) -> dict[str, Any]:
    """One schedule as JSON data (``--json``): times as ISO 8601 UTC."""

    def iso(moment: datetime.datetime | None) -> str | None:
        if moment is None:
            return None
        spec = "milliseconds" if moment.microsecond else "seconds"
        return moment.isoformat(timespec=spec).replace("+00:00", "Z")

    return {
        "id": row.id,
        "workflow": row.workflow,
        "cron": row.cron,
        "every_ms": row.every_ms,
        "timezone": row.timezone,
        "catch_up": row.catch_up,
        "queue": row.queue,
        "next_run": iso(row.next_run),
        "last_run": iso(row.last_run),
        "paused": row.paused,
        "orphaned": row.orphaned,
        "pending": row.pending,
    }
