"""``wait_for_event`` and ``set_event``: a workflow that waits for, and talks to, the outside."""

from __future__ import annotations

from typing import Any

from durably.domain.durations import Duration, parse_duration
from durably.services.context import durable, require_scope
from durably.services.workflow_events import run_set_event, run_wait

__all__ = ["wait_for_event", "set_event"]


@durable
async def wait_for_event(name: str, *, timeout: Duration | None = None) -> Any:  # noqa: ASYNC109 - durable
    """Wait for an event ``name`` sent to this instance (``Engine.send_event``): its payload.

    The oldest event of that name not taken by an earlier wait is returned, also one sent
    before the workflow got here. With none, the workflow pauses until one is delivered;
    after ``timeout`` (a duration, counted from the first time this wait is reached) it
    raises ``EventTimeoutError``, the same on every replay. Keyed like a step (``name``,
    ``name#2``...), so a replay gets the same payload.
    """
    if not isinstance(name, str) or not name:
        raise TypeError(f"wait_for_event needs an event name (a non-empty str), got {name!r}")
    ms = None if timeout is None else parse_duration(timeout, field="timeout")
    scope = require_scope("wait_for_event")
    return await run_wait(scope, name, ms)


@durable
async def set_event(key: str, value: Any) -> None:
    """Publish ``value`` (JSON-serialisable) under ``key``, for ``Engine.get_event`` to read;
    the latest value wins. Committed before the workflow goes on."""
    if not isinstance(key, str) or not key:
        raise TypeError(f"set_event needs a key (a non-empty str), got {key!r}")
    scope = require_scope("set_event")
    await run_set_event(scope, key, value)
