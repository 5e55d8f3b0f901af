"""What the SQL backends share about a grouped commit: the waiting units and their failures."""

from __future__ import annotations

import asyncio
import json

import attrs

from durably.adapters.unit_of_work import UnitOfWork

__all__ = ["LeaseLost", "InstanceExists", "Waiting", "status_tag", "resolve", "loop_is_idle"]


class LeaseLost(Exception):
    """The commit's owner no longer holds the instance's lease (fencing)."""


class InstanceExists(Exception):
    """An instance with this id was created by someone else first."""


@attrs.define(eq=False, slots=True)
class Waiting:
    """One instance's unit of work waiting for the next grouped commit."""

    instance_id: str
    unit: UnitOfWork
    owner: str | None
    lease_ms: int
    future: asyncio.Future[None] | None
    """Resolved once the group is committed (``None``: committed by its own caller)."""
    observed: dict[str, str | None] | None = None
    """The volatile keys the commit read in its transaction (fenced units only)."""


def status_tag(text: str | None) -> str | None:
    """The tag of a stored status (JSON text), to keep the instances table in step."""
    if text is None:
        return None
    data = json.loads(text)
    tag = data.get("tag") if isinstance(data, dict) else None
    return tag if isinstance(tag, str) else None


def resolve(batch: list[Waiting], errors: list[BaseException | None]) -> None:
    """Wake every unit of a committed batch: durable, or the error that refused it."""
    for waiting, error in zip(batch, errors, strict=True):
        future = waiting.future
        if future is None or future.done():
            continue
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)


def loop_is_idle(loop: asyncio.AbstractEventLoop) -> bool:
    """Whether no callback is ready to run: a group formed now would hold one unit only.

    (Reads the loop's ready queue, which the standard event loops have; other loops
    count as never idle, so their commits are always grouped.)
    """
    ready = getattr(loop, "_ready", None)
    return ready is not None and not ready
