"""The composition root: the only place that knows ``dependency_injector``."""

from durably.containers.runtime import MemoryRuntimeLayer
from durably.containers.workflow import WorkflowLayer

__all__ = ["WorkflowLayer", "MemoryRuntimeLayer"]
