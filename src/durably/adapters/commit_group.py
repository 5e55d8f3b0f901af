"""What the SQL backends share about a grouped commit: the waiting units and their failures."""

from __future__ import annotations

import asyncio
import json

import attrs

from durably.adapters.unit_of_work import UnitOfWork

__all__ = ["LeaseLost", "InstanceExists", "Waiting", "status_tag", "resolve"]


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
    future: asyncio.Future[None]


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
        if waiting.future.done():
            continue
        if error is None:
            waiting.future.set_result(None)
        else:
            waiting.future.set_exception(error)
