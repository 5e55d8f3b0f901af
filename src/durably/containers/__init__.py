"""The composition root: the only place that knows ``dependency_injector``."""

from durably.containers.root import CURRENT_RUNTIME, Durably, build_root, current_runtime
from durably.containers.runtime import MemoryRuntimeLayer
from durably.containers.workflow import WorkflowLayer

__all__ = [
    "WorkflowLayer",
    "MemoryRuntimeLayer",
    "Durably",
    "CURRENT_RUNTIME",
    "current_runtime",
    "build_root",
]
