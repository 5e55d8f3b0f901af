"""The children port: how a workflow starts instances of other workflows (its children).

The engine implements it (it serves instances); a runtime without an engine has none,
and a workflow that starts a child there is told so.
"""

from __future__ import annotations

from typing import Any, Protocol

from durably.domain.records import ParentLink

__all__ = ["ChildStarter"]


class ChildStarter(Protocol):
    """Starts child instances for the workflows of one engine."""

    def workflow_names(self) -> list[str]:
        """The names of the workflows a child may run."""
        ...

    def output_type(self, workflow: str) -> Any:
        """The declared output type of ``workflow`` (``Any`` when it declares none)."""
        ...

    async def start_child(
        self,
        child_id: str,
        workflow: str,
        input: Any,
        parent: ParentLink,
        queue: str | None = None,
    ) -> None:
        """Create instance ``child_id`` of ``workflow`` (queued on ``queue``, the default
        one if ``None``: a worker runs it) as the child ``parent``; nothing when it exists
        already as that child. Raises a ``DurablyError`` when the store fails,
        ``ValueError`` when the id belongs to another instance or the queue is unknown."""
        ...
