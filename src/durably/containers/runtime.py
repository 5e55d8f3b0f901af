"""Runtime layers: storage, scheduler and clock of an instance, per backend."""

from __future__ import annotations

from dependency_injector import containers, providers

from durably.adapters.memory import (
    MemoryBackend,
    MemoryRuntime,
    MemoryScheduler,
    MemoryStorage,
    SystemClock,
)
from durably.ports import InstanceRuntime

__all__ = ["MemoryRuntimeLayer"]


class MemoryRuntimeLayer(containers.DeclarativeContainer):
    """The in-memory runtime layer; ``instance_id`` picks the instance served."""

    instance_id = providers.Dependency(instance_of=str)
    backend = providers.Singleton(MemoryBackend)
    clock = providers.Singleton(SystemClock)

    storage = providers.Factory(MemoryStorage, backend, instance_id)
    scheduler = providers.Factory(MemoryScheduler, backend, instance_id)
    runtime = providers.Factory(MemoryRuntime, instance_id, clock)
    instance = providers.Factory(InstanceRuntime, storage, scheduler, runtime)
