"""How the ``durably`` command shows things: times, statuses, outputs and tables."""

from __future__ import annotations

import datetime
import json
from collections.abc import Iterable
from typing import Any

from rich.table import Table
from rich.text import Text

from durably.domain.errors import DurablyError
from durably.domain.serialization import encode
from durably.domain.status import Cancelled, Completed, Failed, Paused, WorkflowStatus
from durably.engine.records import StepRecord
from durably.services.types import InstanceSummary, WorkflowStatusResult

__all__ = [
    "format_time",
    "format_duration",
    "describe_status",
    "progress_text",
    "status_line",
    "output_json",
    "instances_table",
    "steps_table",
]

_STYLES = {
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


def describe_status(status: WorkflowStatus, now: int | None = None) -> str:
    """One line of plain text: the tag and what it carries (why paused, why failed...)."""
    if isinstance(status, Paused):
        what = f"retry of step {status.step_name!r}" if status.reason == "retry" else "sleep"
        if status.reason == "sleep" and status.step_name:
            what = f"sleep {status.step_name!r}"
        left = f", in {format_duration(status.resume_at - now)}" if now is not None else ""
        return f"Paused ({what}) until {format_time(status.resume_at)} UTC{left}"
    if isinstance(status, Failed):
        error = status.error
        kind = f"{error.type}: " if error.type else ""
        where = f" (step {error.step_name!r}" if error.step_name else ""
        if where and error.attempt is not None:
            where += f", attempt {error.attempt}"
        return f"Failed: {kind}{error.message}{where + ')' if where else ''}"
    if isinstance(status, Cancelled):
        return f"Cancelled: {status.reason}" if status.reason else "Cancelled"
    if isinstance(status, Completed):
        return f"Completed at {format_time(status.completed_at)} UTC"
    return status.tag


def progress_text(status: WorkflowStatus, now: int) -> str:
    """A short status for the spinner of ``start --wait``: ``Paused (sleep), resumes in 2.0s``."""
    if isinstance(status, Paused):
        what = "retry" if status.reason == "retry" else "sleep"
        return f"Paused ({what}), resumes in {format_duration(status.resume_at - now)}"
    return status.tag


def status_line(instance_id: str, result: WorkflowStatusResult, now: int) -> Text:
    """``ID  STATUS  (N steps completed)``, coloured by status."""
    status = result.status
    line = Text(f"{instance_id}  ")
    if status is None:
        return line.append("not found", style="red")
    line.append(describe_status(status, now), style=_STYLES.get(status.tag, ""))
    count = len(result.completed_steps)
    line.append(f"  ({count} step{'' if count == 1 else 's'} completed)", style="dim")
    return line


def output_json(value: Any) -> str:
    """A workflow output as JSON text (through durably's converter, so attrs classes work)."""
    try:
        data: Any = encode(value)
    except DurablyError:
        return json.dumps(repr(value))
    return json.dumps(data, ensure_ascii=False)


def instances_table(rows: Iterable[InstanceSummary]) -> Table:
    """The table of ``durably list``."""
    table = Table(title="Workflow instances", title_justify="left")
    table.add_column("id", overflow="fold")
    table.add_column("workflow", overflow="fold")
    table.add_column("status")
    table.add_column("created (UTC)", no_wrap=True)
    table.add_column("updated (UTC)", no_wrap=True)
    for row in rows:
        table.add_row(
            Text(row.id),
            Text(row.workflow),
            Text(row.status, style=_STYLES.get(row.status, "")),
            format_time(row.created_at),
            format_time(row.updated_at),
        )
    return table


def steps_table(records: Iterable[StepRecord]) -> Table:
    """The step timeline of ``durably show``."""
    table = Table(title="Steps", title_justify="left")
    table.add_column("step", overflow="fold")
    table.add_column("attempt", justify="right")
    table.add_column("started (UTC)", no_wrap=True)
    table.add_column("completed (UTC)", no_wrap=True)
    table.add_column("duration ms", justify="right")
    table.add_column("error", overflow="fold", style="red")
    for record in records:
        table.add_row(
            Text(record.name),
            str(record.attempt),
            format_time(record.started_at),
            format_time(record.completed_at) if record.completed_at else "(retrying)",
            "-" if record.duration_ms is None else str(record.duration_ms),
            Text(record.error or ""),
        )
    return table
