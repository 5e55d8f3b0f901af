"""The replay check in a test: stored histories against the current code.

Export histories from a deployment with ``durably export ID... > histories.json`` (or
every instance of a workflow: ``durably export --workflow W --limit 100``), commit the
file beside the tests, and check each change of the code against it::

    def test_the_new_code_fits_the_histories():
        assert durably.testing.replay("tests/histories.json", [checkout]) == []

Nothing runs but the workflows' own code between their durable points: no step, sleep
or other side effect; each history the code does not fit is a ``Divergence`` naming the
instance, the position and both keys.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from durably.engine import Engine
from durably.engine.replay import (
    Divergence,
    History,
    histories_document,
    histories_from,
    read_histories,
    replay_histories,
)
from durably.services.definition import WorkflowDefinition

__all__ = ["replay", "replay_async", "export", "Divergence", "History"]


async def export(
    engine: Engine, *ids: str, workflow: str | None = None, limit: int | None = None
) -> dict[str, Any]:
    """The histories of instances ``ids`` (or of ``workflow``'s, or all, latest first, at
    most ``limit``) as ``durably export`` prints them: a JSON document for ``replay``."""
    found = await read_histories(engine.host, ids, workflow=workflow, limit=limit)
    return histories_document(found)


async def replay_async(
    histories: Any, workflows: Iterable[WorkflowDefinition[Any, Any]]
) -> list[Divergence]:
    """``replay`` for async code."""
    return await replay_histories(histories_from(histories), list(workflows))


def replay(histories: Any, workflows: Iterable[WorkflowDefinition[Any, Any]]) -> list[Divergence]:
    """The histories (a file of ``durably export``, its text or parsed JSON, or a list of
    ``History``) that ``workflows`` do not replay; ``[]`` when all fit."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(replay_async(histories, workflows))
    raise RuntimeError(
        "durably.testing.replay runs its own event loop: in async code (an async test), "
        "use `await durably.testing.replay_async(...)`"
    )
