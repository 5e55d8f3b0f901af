"""Ports: the protocols that adapters implement and services depend on."""

from durably.ports.children import ChildStarter
from durably.ports.clock import TimeSkippingClock
from durably.ports.host import Claimed, InstanceHost, InstanceRow
from durably.ports.inbox import InboxAdapter
from durably.ports.runtime import InstanceRuntime, RuntimeAdapter
from durably.ports.scheduler import SchedulerAdapter
from durably.ports.storage import StorageAdapter
from durably.ports.tracker import Tracker

__all__ = [
    "StorageAdapter",
    "SchedulerAdapter",
    "RuntimeAdapter",
    "InboxAdapter",
    "InstanceRuntime",
    "Tracker",
    "InstanceHost",
    "InstanceRow",
    "Claimed",
    "TimeSkippingClock",
    "ChildStarter",
]
