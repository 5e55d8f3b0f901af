"""The workflow registry: names to definitions."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from returns.result import Failure, Result, Success

from durably.domain.errors import WorkflowNotFoundError
from durably.services.definition import WorkflowDefinition

__all__ = ["WorkflowRegistry", "Workflows"]

Workflows = Mapping[str, WorkflowDefinition[Any, Any]] | Iterable[WorkflowDefinition[Any, Any]]


class WorkflowRegistry:
    """Looks up workflow definitions by name; two definitions under one name are refused."""

    def __init__(self, workflows: Workflows) -> None:
        self._by_name: dict[str, WorkflowDefinition[Any, Any]] = {}
        if isinstance(workflows, Mapping):
            items = list(workflows.items())
        else:
            # A non-definition has no ``name``: name it by its repr, so the check below
            # raises the TypeError that says what it is, not an AttributeError.
            items = [(getattr(d, "name", None) or repr(d), d) for d in workflows]
        for name, definition in items:
            if not isinstance(definition, WorkflowDefinition):
                raise TypeError(
                    f"workflow {name!r} is a {type(definition).__name__}, not a "
                    "WorkflowDefinition (decorate it with @durably.workflow)"
                )
            existing = self._by_name.get(name)
            if existing is not None and existing is not definition:
                raise ValueError(f"two workflows are registered under the name {name!r}")
            self._by_name[name] = definition

    def definition(self, name: str) -> WorkflowDefinition[Any, Any]:
        """The definition registered under ``name``; ``WorkflowNotFoundError`` if none."""
        definition = self._by_name.get(name)
        if definition is None:
            raise WorkflowNotFoundError(name, tuple(self._by_name.keys()))
        return definition

    def get(self, name: str) -> Result[WorkflowDefinition[Any, Any], WorkflowNotFoundError]:
        """The definition registered under ``name`` (the original's operation)."""
        try:
            return Success(self.definition(name))
        except WorkflowNotFoundError as e:
            return Failure(e)

    def list(self) -> list[str]:
        """Every registered name, in registration order."""
        return list(self._by_name)

    def has(self, name: str) -> bool:
        """Whether ``name`` is registered."""
        return name in self._by_name
