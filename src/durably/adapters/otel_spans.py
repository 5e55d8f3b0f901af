"""Helpers of ``OtelTracker``: trace ids of a run, segments, timestamps and errors."""

from __future__ import annotations

import hashlib
from typing import Final

import attrs
from opentelemetry.trace import Span

from durably.domain.events import EventBase
from durably.domain.status import WorkflowError

__all__ = ["run_trace_ids", "Segment", "ns", "error_type", "error_text", "add_exception"]

_NS_PER_MS: Final = 1_000_000


def run_trace_ids(workflow_id: str) -> tuple[int, int]:
    """The trace id and the virtual root span id of a workflow instance's trace."""
    digest = hashlib.sha256(b"durably-run:" + workflow_id.encode()).digest()
    trace_id = int.from_bytes(digest[:16], "big") or 1  # 0 is an invalid id
    span_id = int.from_bytes(digest[16:24], "big") or 1
    return trace_id, span_id


@attrs.define
class Segment:
    """An execution segment's span and its open step spans."""

    span: Span
    steps: dict[str, Span] = attrs.field(factory=dict)


def ns(event: EventBase) -> int:
    """The event's time in nanoseconds."""
    return event.timestamp * _NS_PER_MS


def error_type(error: WorkflowError) -> str:
    """The error's type name."""
    return error.type or "Error"


def error_text(error: WorkflowError) -> str:
    """``type: message``."""
    return f"{error_type(error)}: {error.message}"


def add_exception(span: Span, error: WorkflowError, event: EventBase) -> None:
    """Record ``error`` on ``span`` as an exception event at the event's time."""
    span.add_event(
        "exception",
        {"exception.type": error_type(error), "exception.message": error.message},
        timestamp=ns(event),
    )
