"""The composition root: the only place that knows ``dependency_injector``."""

from durably.containers.instance import InstanceServices, wire_instance
from durably.containers.root import Durably, build_root
from durably.containers.runtime import MemoryRuntimeLayer
from durably.containers.workflow import WorkflowLayer

__all__ = [
    "WorkflowLayer",
    "MemoryRuntimeLayer",
    "Durably",
    "build_root",
    "InstanceServices",
    "wire_instance",
]
