"""Runtime layers: storage, scheduler, inbox and clock of an instance, per backend."""

from __future__ import annotations

from dependency_injector import containers, providers

from durably.adapters.memory import MemoryBackend, SystemClock
from durably.adapters.runtime import instance_runtime

__all__ = ["MemoryRuntimeLayer"]


class MemoryRuntimeLayer(containers.DeclarativeContainer):
    """The in-memory runtime layer; ``instance_id`` picks the instance served."""

    instance_id = providers.Dependency(instance_of=str)
    clock = providers.Singleton(SystemClock)
    backend = providers.Singleton(MemoryBackend, clock=clock)

    instance = providers.Factory(instance_runtime, backend, instance_id)
    storage = providers.Callable(lambda runtime: runtime.storage, instance)
    scheduler = providers.Callable(lambda runtime: runtime.scheduler, instance)
    runtime = providers.Callable(lambda runtime: runtime.runtime, instance)
