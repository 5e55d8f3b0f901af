"""The replay check: stored histories replayed against the current code, running nothing.

A history is every stored key of one instance (``export_histories`` reads them from a
backend; ``durably export`` writes them as JSON). ``replay_histories`` loads each into a
scratch in-memory engine that has the current workflows and replays it in the
executor's ``replay`` mode: the code must ask for the recorded durable points in their
recorded order; where the history ends (a point not recorded, a step whose result is
not) the replay stops without running anything, and nothing is ever committed. Each
history that the code does not fit is a ``Divergence``: a ``NonDeterminismError`` (its
position and both keys), or a workflow this code does not have.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import attrs
from returns.result import Failure

from durably.domain import keys
from durably.domain.errors import NonDeterminismError, WorkflowNotFoundError
from durably.domain.records import JsonValue
from durably.domain.serialization import decode, encode
from durably.engine.engine import Engine
from durably.ports.host import InstanceHost

if TYPE_CHECKING:
    from durably.services.definition import WorkflowDefinition

__all__ = [
    "FORMAT",
    "History",
    "Divergence",
    "read_histories",
    "histories_document",
    "histories_from",
    "replay_histories",
]

FORMAT = "durably-histories/1"
"""The ``format`` of an exported document (``durably export``)."""


@attrs.frozen
class History:
    """The stored history of one instance: every key it has, as stored (JSON)."""

    id: str
    workflow: str
    status: str
    entries: dict[str, JsonValue]


@attrs.frozen
class Divergence:
    """A history that the current code does not replay."""

    instance_id: str
    workflow: str
    message: str
    position: int | None = None
    """Where the code and the history part (``None``: the workflow is not in the code)."""
    recorded: str | None = None
    requested: str | None = None


async def read_histories(
    host: InstanceHost,
    ids: Iterable[str] = (),
    *,
    workflow: str | None = None,
    limit: int | None = None,
) -> list[History]:
    """The histories of instances ``ids`` (an unknown one is a ``LookupError``) or, with
    no ids, of the instances of ``workflow`` (every workflow when ``None``), most recently
    updated first, at most ``limit``. Purged instances have no history left: skipped."""
    wanted = list(ids)
    if not wanted:
        rows = await host.list_instances(None, workflow, limit or 1_000_000_000)
        wanted = [row.id for row in rows]
    found: list[History] = []
    for instance_id in wanted:
        texts = await host.read_prefix(instance_id, "")
        entries = {key: json.loads(text) for key, text in texts.items()}
        name, status = entries.get(keys.NAME), entries.get(keys.STATUS)
        if not isinstance(name, str):
            if ids:
                raise LookupError(f"no workflow instance {instance_id!r}")
            continue
        if keys.TOMBSTONE in entries:
            continue  # purged: its history is gone
        tag = status.get("tag") if isinstance(status, dict) else None
        found.append(History(instance_id, name, str(tag), entries))
    return found


def histories_document(histories: Sequence[History]) -> dict[str, Any]:
    """The JSON document of ``durably export``."""
    return {"format": FORMAT, "histories": encode(list(histories))}


def histories_from(source: Any) -> list[History]:
    """Histories from an exported document (a ``dict``, JSON text or a file path) or a
    list of ``History``."""
    if isinstance(source, list | tuple) and all(isinstance(h, History) for h in source):
        return list(source)
    document = source
    if isinstance(source, str) and not source.lstrip().startswith("{"):
        with open(source, encoding="utf-8") as file:
            document = json.load(file)
    elif isinstance(source, str | bytes):
        document = json.loads(source)
    elif hasattr(source, "read_text"):  # a pathlib.Path
        document = json.loads(source.read_text(encoding="utf-8"))
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise ValueError(
            f"not an export of durably histories (expected format {FORMAT!r}): "
            "write one with `durably export ID... > histories.json`"
        )
    return list(decode(document.get("histories"), list[History], key="histories"))


async def replay_histories(
    histories: Iterable[History], workflows: Sequence[WorkflowDefinition[Any, Any]]
) -> list[Divergence]:
    """Replay each history against ``workflows`` (running no step, sleep or other side
    effect; writing only to a scratch in-memory store): the histories they do not fit."""
    names = {definition.name for definition in workflows}
    found: list[Divergence] = []
    async with Engine(list(workflows), backend="memory://") as scratch:
        for history in histories:
            if history.workflow not in names:
                missing = WorkflowNotFoundError(history.workflow, sorted(names))
                found.append(Divergence(history.id, history.workflow, str(missing)))
                continue
            stored = await scratch.host.runtime(history.id, None).storage.put_batch(history.entries)
            if isinstance(stored, Failure):
                raise stored.failure()
            async with scratch.server.serve(history.id) as orchestrator:
                replayed = await orchestrator.replay()
            if isinstance(replayed, Failure):
                raise replayed.failure()
            error = replayed.unwrap()
            if isinstance(error, NonDeterminismError):
                found.append(
                    Divergence(
                        history.id,
                        history.workflow,
                        error.message,
                        error.position,
                        error.recorded,
                        error.requested,
                    )
                )
    return found
