"""What ``durably status``, ``show`` and ``list`` print: text for people, ``--json`` for
programs (one document on stdout, every time as epoch ms and as ISO 8601 UTC)."""

from __future__ import annotations

import argparse
import datetime
import json
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from returns.result import Failure
from rich.console import Console
from rich.table import Table
from rich.text import Text

from durably import cli_format as fmt
from durably.cli_app import CliError
from durably.domain.errors import InstanceNotFoundError
from durably.domain.serialization import converter
from durably.domain.status import Failed, is_terminal
from durably.engine import Engine, Queue, QueueStats
from durably.engine.records import (
    ChildRow,
    MessageRow,
    PublishedRow,
    SleepRow,
    StatusRow,
    StepAttemptRow,
    Timeline,
    TimelineHeader,
    TimelineRow,
    WaitRow,
)
from durably.engine.timeline import error_line
from durably.services.types import InstanceSummary

__all__ = [
    "inspect_instance",
    "list_instances",
    "list_queues",
    "queue_rows",
    "iso_time",
    "timeline_json",
    "header_json",
    "with_iso",
    "preview",
]

_USER_DATA = frozenset({"input", "output", "payload", "value"})
"""Keys whose values are the user's JSON, left exactly as stored."""

PREVIEW_CHARS = 40
"""How much of a payload or a published value a row of ``show`` prints (``--json`` and
``durably get-event`` give it whole)."""


def iso_time(ms: int) -> str:
    """Epoch milliseconds as ISO 8601 UTC, to the millisecond.

    >>> iso_time(1_714_564_800_250)
    '2024-05-01T12:00:00.250Z'
    """
    moment = datetime.datetime.fromtimestamp(ms // 1000, tz=datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def with_iso(data: Any) -> Any:
    """``data`` with an ``<name>_iso`` string beside every time (``<name>_at`` or ``at``;
    ``null`` beside ``null``); the user's own values (input, output, payloads) are left
    alone."""
    if isinstance(data, list):
        return [with_iso(item) for item in data]
    if not isinstance(data, dict):
        return data
    out: dict[str, Any] = {}
    for key, value in data.items():
        if key in _USER_DATA:
            out[key] = value
            continue
        out[key] = with_iso(value)
        if (key == "at" or key.endswith("_at")) and (value is None or type(value) is int):
            out[f"{key}_iso"] = None if value is None else iso_time(value)
    return out


def header_json(header: TimelineHeader) -> dict[str, Any]:
    """The header as JSON data (``durably status --json``)."""
    data: dict[str, Any] = converter.unstructure(header)
    status = data["status"]
    data["status"] = {"tag": status.pop("tag"), **status}
    return dict(with_iso(data))


def _row_json(row: TimelineRow) -> dict[str, Any]:
    data: dict[str, Any] = converter.unstructure(row, TimelineRow)
    return dict(with_iso({"kind": data.pop("kind"), **data}))


def timeline_json(timeline: Timeline) -> dict[str, Any]:
    """The header and the rows as JSON data (``durably show --json``)."""
    return {**header_json(timeline.header), "timeline": [_row_json(r) for r in timeline.rows]}


def _summary_json(row: InstanceSummary) -> dict[str, Any]:
    data = {
        "id": row.id,
        "workflow": row.workflow,
        "status": row.status,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
        "due_at": row.due_at,
    }
    return dict(with_iso(data))


def _print_json(data: Any) -> None:
    print(json.dumps(data, ensure_ascii=False, indent=2))


# -- show as text ------------------------------------------------------------------------


def _json_text(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def preview(value: Any, limit: int = PREVIEW_CHARS) -> str:
    """``value`` as one line of JSON, cut to ``limit`` characters (with ``…``).

    >>> preview({"ok": True}), preview(list(range(30)), 12)
    ('{"ok": true}', '[0, 1, 2, 3…')
    """
    text = _json_text(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


_CHILD_ENDS = frozenset({"Completed", "Failed", "Cancelled", ""})


def _children_count(rows: Sequence[TimelineRow]) -> str:
    """``3 (1 completed, 1 failed, 1 not ended)``: how many children, how they ended."""
    ended = Counter(row.outcome or "" for row in rows if isinstance(row, ChildRow))
    order = ["Completed", "Failed", "Cancelled", *sorted(set(ended) - _CHILD_ENDS), ""]
    counts = [f"{ended[tag]} {tag.lower() or 'not ended'}" for tag in order if ended[tag]]
    return f"{ended.total()} ({', '.join(counts)})"


def _header_grid(timeline: Timeline, now: int) -> Table:
    header = timeline.header
    grid = Table.grid(padding=(0, 2))
    grid.add_column(no_wrap=True, style="bold")
    grid.add_column(overflow="fold")
    grid.add_row("workflow", Text(header.workflow))
    if header.parent is not None:
        grid.add_row("parent", Text(f"{header.parent.id} (as child {header.parent.key!r})"))
    purged = header.purged_at is not None
    grid.add_row("input", "(deleted by the purge)" if purged else Text(_json_text(header.input)))
    if header.status.tag == "Completed":
        output = "(deleted by the purge)" if purged else Text(_json_text(header.output))
        grid.add_row("output", output)
    if header.created_at is not None:
        grid.add_row("created", f"{fmt.format_time(header.created_at)} UTC")
    if header.updated_at is not None:
        grid.add_row("updated", f"{fmt.format_time(header.updated_at)} UTC")
    if header.execution_id is not None:
        grid.add_row("execution", Text(header.execution_id))
    if header.next_wakeup_at is not None:
        at = header.next_wakeup_at
        when = (
            f"{fmt.format_time(at)} UTC, {fmt.wake_text(at, now)}"
            if at >= now
            else f"due since {fmt.format_time(at)} UTC ({fmt.format_duration(now - at)} ago),"
            " unclaimed: no worker with its workflow and queue has taken it up"
        )
        grid.add_row("next wake-up", when)
    failure = header.last_alarm_error
    if failure is not None:
        times = (
            f" ({failure.count} in a row since {fmt.format_time(failure.first_failed_at)} UTC)"
            if failure.count > 1
            else ""
        )
        grid.add_row(
            "last alarm",
            Text(
                f"failed at {fmt.format_time(failure.failed_at)} UTC{times}: "
                f"{error_line(failure.error)}",
                style="red",
            ),
        )
    if header.recovery_attempts:
        grid.add_row("recoveries", f"{header.recovery_attempts} without progress")
    if header.purged_at is not None:
        grid.add_row("purged", f"{fmt.format_time(header.purged_at)} UTC")
    if header.children:
        grid.add_row("children", _children_count(timeline.rows))
    return grid


def _outcome(row: TimelineRow, now: int, ended: bool, takers: Mapping[int, str]) -> Text:
    """The last column of a row; ``ended``: the instance is terminal; ``takers``: the wait
    that received each event (by its number)."""
    match row:
        case StepAttemptRow(outcome="ok"):
            return Text("ok", style="green")
        case StepAttemptRow(error=error, retry_at=retry_at):
            text = error_line(error) if error is not None else "failed"
            if retry_at is not None:
                text += f"; retry {fmt.wake_text(retry_at, now)}"
            return Text(text, style="red")
        case SleepRow(done=True):
            return Text("done")
        case SleepRow(resume_at=resume_at):
            return Text(f"until {fmt.format_time(resume_at)}, {fmt.wake_text(resume_at, now)}")
        case WaitRow():
            return _wait_outcome(row, now, ended)
        case PublishedRow(value=value):
            return Text(preview(value))
        case ChildRow():
            return _child_outcome(row, ended)
        case MessageRow(type="event"):
            return _event_outcome(row, ended, takers)
        case MessageRow(type="child", payload=payload):
            status = payload.get("status") if isinstance(payload, dict) else None
            said = f"{status}, " if isinstance(status, str) else ""
            fate = "received" if row.consumed else "never received" if ended else "not received yet"
            return Text(said + fate)
        case MessageRow(payload=payload, consumed=consumed):
            reason = payload.get("reason") if isinstance(payload, dict) else None
            said = f"{reason!r}, " if isinstance(reason, str) else ""
            fate = "acted on" if consumed else "not acted on" if ended else "not acted on yet"
            return Text(said + fate)
        case StatusRow(status=status, detail=detail):
            return Text(detail or "", style="red" if status == "Failed" else "")
    return Text("")  # pragma: no cover - the union is closed


def _wait_outcome(row: WaitRow, now: int, ended: bool) -> Text:
    match row:
        case WaitRow(outcome="received", seq=seq, event_id=event_id):
            text = f"received event #{seq}" if seq is not None else "received"
            return Text(text + (f", id {event_id!r}" if event_id else ""), style="green")
        case WaitRow(outcome="timed_out", timeout_ms=timeout_ms):
            after = f" after {fmt.format_duration(timeout_ms)}" if timeout_ms is not None else ""
            return Text(f"timed out{after}", style="yellow")
        case _ if ended:
            return Text("never received")
        case WaitRow(deadline_at=None):
            return Text("waiting (no timeout)")
        case WaitRow(deadline_at=int(at)):
            return Text(f"waiting until {fmt.format_time(at)}, {fmt.wake_text(at, now)}")
    return Text("")  # pragma: no cover - the cases are exhaustive


def _child_outcome(row: ChildRow, ended: bool) -> Text:
    """How a child ended: its output (a preview), its error or its cancel reason. An
    ended parent takes no more messages: what became of a child that had not ended then
    is in its own ``show``."""
    match row.outcome:
        case None:
            return Text("not ended when the parent ended" if ended else "not ended yet")
        case "Completed":
            return Text(f"Completed: {preview(row.output)}", style="green")
        case "Failed":
            error = f": {error_line(row.error)}" if row.error is not None else ""
            return Text(f"Failed{error}", style="red")
        case "Cancelled":
            return Text(f"Cancelled: {row.reason}" if row.reason else "Cancelled", style="yellow")
    return Text(row.outcome)


def _event_outcome(row: MessageRow, ended: bool, takers: Mapping[int, str]) -> Text:
    """An event in the inbox: its payload (a preview), its id, and which wait took it."""
    parts = [] if row.payload is None else [preview(row.payload)]
    if row.event_id is not None:
        parts.append(f"id {row.event_id!r}")
    taker = takers.get(row.seq)
    if row.consumed:
        parts.append(f"received by wait {taker!r}" if taker is not None else "received")
    else:
        parts.append("never received" if ended else "not received yet")
    return Text(", ".join(parts))


def _row_cells(row: TimelineRow, now: int) -> list[Text | str]:
    match row:
        case StepAttemptRow():
            took = "-" if row.duration_ms is None else fmt.format_duration(row.duration_ms)
            when = row.started_at
            return ["step", Text(row.name), str(row.attempt), fmt.format_time(when), took]
        case SleepRow():
            took = fmt.format_duration(row.duration_ms)
            return ["sleep", Text(row.name), "", fmt.format_time(row.started_at), took]
        case WaitRow(ended_at=ended_at):
            took = "-" if ended_at is None else fmt.format_duration(ended_at - row.started_at)
            return ["wait", Text(row.name), "", fmt.format_time(row.started_at), took]
        case PublishedRow():
            set_at = fmt.format_time(row.set_at)
            return ["published", Text(row.key), str(row.version), set_at, ""]
        case ChildRow(ended_at=ended_at):
            took = "-" if ended_at is None else fmt.format_duration(ended_at - row.started_at)
            return ["child", Text(row.child_id), "", fmt.format_time(row.started_at), took]
        case MessageRow(type="event"):
            sent_at = fmt.format_time(row.sent_at)
            return ["event", Text(row.name or ""), str(row.seq), sent_at, ""]
        case MessageRow(type="child"):
            sent_at = fmt.format_time(row.sent_at)
            return ["child end", Text(row.name or ""), str(row.seq), sent_at, ""]
        case MessageRow():
            return ["message", Text(row.type), "", fmt.format_time(row.sent_at), ""]
        case StatusRow():
            name = Text(row.status, style=fmt.STYLES.get(row.status, ""))
            return ["status", name, "", fmt.format_time(row.at), ""]
    return []  # pragma: no cover - the union is closed


def _shown(rows: Sequence[TimelineRow]) -> list[TimelineRow]:
    """The rows ``show`` prints: a child's end that the parent received is told by the
    child's row (one row per child), the others are shown (not received yet)."""
    told = {row.seq for row in rows if isinstance(row, ChildRow) and row.seq is not None}

    def folded(row: TimelineRow) -> bool:
        return isinstance(row, MessageRow) and row.consumed and row.seq in told

    return [row for row in rows if not folded(row)]


def timeline_table(timeline: Timeline, now: int, width: int) -> Table:
    """The rows of ``durably show``: kind, name, number (a step's attempt, a published
    value's version, a message's place in the inbox), when, how long, how it ended."""
    columns = [
        fmt.Column("kind", keep=True),
        fmt.Column("name", keep=True),
        fmt.Column("#", keep=True, justify="right"),
        fmt.Column("at (UTC)", minimum=12),
        fmt.Column("took", keep=True, justify="right"),
        fmt.Column("outcome", minimum=12, shrink_order=0),
    ]
    ended = is_terminal(timeline.header.status)
    takers = {
        row.seq: row.name
        for row in timeline.rows
        if isinstance(row, WaitRow) and row.seq is not None
    }
    rows = [
        [*_row_cells(row, now), _outcome(row, now, ended, takers)] for row in _shown(timeline.rows)
    ]
    return fmt.fitted_table("Timeline", columns, rows, width)


def _traceback(timeline: Timeline) -> str | None:
    """The traceback ``--traceback`` prints: the workflow's failure, else the latest
    failed attempt's."""
    status = timeline.header.status
    if isinstance(status, Failed) and status.error.traceback:
        return status.error.traceback
    for row in reversed(timeline.rows):
        if isinstance(row, StepAttemptRow) and row.error is not None and row.error.traceback:
            return row.error.traceback
    return None


# -- the commands ------------------------------------------------------------------------------


async def inspect_instance(engine: Engine, args: argparse.Namespace, out: Console) -> int:
    """``durably status ID`` and ``durably show ID``."""
    found = await engine.timeline(args.id)
    if isinstance(found, Failure):
        error = found.failure()
        if isinstance(error, InstanceNotFoundError):
            raise CliError(error.message, 2)
        raise CliError(str(error), 1)
    timeline = found.unwrap()
    now = engine.now()
    if args.json:
        _print_json(
            timeline_json(timeline) if args.command == "show" else header_json(timeline.header)
        )
        return 0
    out.print(fmt.status_line(args.id, timeline.header, now), soft_wrap=True)
    if args.command == "status":
        return 0
    out.print(_header_grid(timeline, now))
    fmt.print_table(out, timeline_table(timeline, now, out.width))
    traceback = _traceback(timeline)
    if traceback is not None and args.traceback:
        out.print("Traceback (stored)", style="bold")
        out.print(Text(traceback.rstrip()), soft_wrap=True)
    elif traceback is not None:
        out.print("(--traceback prints the stored traceback of the last failure)", style="dim")
    return 0


async def list_instances(engine: Engine, args: argparse.Namespace, out: Console) -> int:
    """``durably list``."""
    rows = await engine.list(status=args.status, workflow=args.workflow, limit=args.limit)
    if isinstance(rows, Failure):
        raise CliError(str(rows.failure()), 1)
    found = rows.unwrap()
    if args.json:
        _print_json({"instances": [_summary_json(row) for row in found]})
    elif found:
        fmt.print_table(out, fmt.instances_table(found, out.width, engine.now()))
    else:
        out.print("no instances")
    return 0


def queue_rows(stats: Sequence[QueueStats], declared: Mapping[str, Queue]) -> list[QueueStats]:
    """The rows of ``durably queues``: the store's counts, with the limits the app declares
    (``declared``: its engine's queues) where it declares them, else the limits last stored
    by an engine; a queue the app declares and the store has not seen yet counts 0 and 0.
    """
    rows = {row.name: row for row in stats}
    for name, queue in declared.items():
        known = rows.get(name)
        rows[name] = QueueStats(
            name,
            known.waiting if known is not None else 0,
            known.running if known is not None else 0,
            queue,
        )
    return sorted(rows.values(), key=lambda row: row.name)


def _queue_json(row: QueueStats) -> dict[str, Any]:
    limits = row.queue
    return {
        "name": row.name,
        "waiting": row.waiting,
        "running": row.running,
        "concurrency": limits.concurrency if limits is not None else None,
        "worker_concurrency": limits.worker_concurrency if limits is not None else None,
        "rate": limits.rate if limits is not None else None,
        "partition_concurrency": limits.partition_concurrency if limits is not None else None,
    }


async def list_queues(engine: Engine, args: argparse.Namespace, out: Console) -> int:
    """``durably queues``."""
    stats = await engine.queue_stats()
    if isinstance(stats, Failure):
        raise CliError(str(stats.failure()), 1)
    rows = queue_rows(stats.unwrap(), engine.queues)
    if args.json:
        _print_json({"queues": [_queue_json(row) for row in rows]})
    else:
        fmt.print_table(out, fmt.queues_table(rows, out.width))
    return 0
