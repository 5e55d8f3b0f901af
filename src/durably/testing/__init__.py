"""Testing your workflows: a virtual clock, engines that skip time, crashes on demand.

- ``VirtualClock``: moves only when the test moves it, alarm by alarm (``advance``);
- ``EngineFactory``: open ``memory://`` engines on that clock, each with its worker (the
  pytest fixtures ``durably_engine`` and ``durably_clock`` are built on it);
- ``crash_after``: an execution dies right after a step's commit, as under SIGKILL;
- ``create_in_memory_runtime``, ``FailingStorage``: one instance's services, faults;
- ``ManualClock``: a bare clock (``time_ms``) for engines driven by ``run_until_idle``;
- ``replay``: the replay check of exported histories against the current code.
"""

from durably.adapters.clock import ManualClock
from durably.testing.clock import DEFAULT_START, Instant, VirtualClock
from durably.testing.crash import CrashPoint, crash_after
from durably.testing.engines import EngineFactory
from durably.testing.replay import Divergence, History, export, replay, replay_async
from durably.testing.runtime import FailingStorage, TestRuntimeHandle, create_in_memory_runtime

__all__ = [
    "VirtualClock",
    "Instant",
    "DEFAULT_START",
    "EngineFactory",
    "crash_after",
    "CrashPoint",
    "create_in_memory_runtime",
    "TestRuntimeHandle",
    "FailingStorage",
    "ManualClock",
    "replay",
    "replay_async",
    "export",
    "Divergence",
    "History",
]
