"""The runtime port (instance id and clock), and the bundle of one instance's ports."""

from __future__ import annotations

from typing import Protocol

import attrs

from durably.ports.scheduler import SchedulerAdapter
from durably.ports.storage import StorageAdapter

__all__ = ["RuntimeAdapter", "InstanceRuntime"]


class RuntimeAdapter(Protocol):
    """The identity of the instance being served and the one clock it reads."""

    @property
    def instance_id(self) -> str:
        """The instance's id."""
        ...

    def now(self) -> int:
        """The current time in epoch milliseconds."""
        ...


@attrs.frozen
class InstanceRuntime:
    """The runtime layer of one instance: its storage, its alarm and its clock."""

    storage: StorageAdapter
    scheduler: SchedulerAdapter
    runtime: RuntimeAdapter

    @property
    def instance_id(self) -> str:
        """The instance's id."""
        return self.runtime.instance_id

    def now(self) -> int:
        """The current time in epoch milliseconds."""
        return self.runtime.now()
