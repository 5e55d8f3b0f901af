"""The runtime port (instance id and clock), and the bundle of one instance's ports."""

from __future__ import annotations

from typing import Protocol

import attrs

from durably.domain.lease import LeaseHold
from durably.ports.inbox import InboxAdapter
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
    """The runtime layer of one instance: its storage, alarm, inbox and clock.

    ``lease`` is the hold of the execution that serves the instance, when its commits
    are fenced by a lease (``None``: unfenced, as in the service-level tests).
    """

    storage: StorageAdapter
    scheduler: SchedulerAdapter
    runtime: RuntimeAdapter
    inbox: InboxAdapter
    lease: LeaseHold | None = None

    @property
    def instance_id(self) -> str:
        """The instance's id."""
        return self.runtime.instance_id

    def now(self) -> int:
        """The current time in epoch milliseconds."""
        return self.runtime.now()
