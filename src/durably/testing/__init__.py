"""Test support shipped with durably: the in-memory runtime, a virtual clock, fault injection."""

from durably.adapters.clock import ManualClock
from durably.testing.runtime import FailingStorage, TestRuntimeHandle, create_in_memory_runtime

__all__ = ["create_in_memory_runtime", "TestRuntimeHandle", "FailingStorage", "ManualClock"]
