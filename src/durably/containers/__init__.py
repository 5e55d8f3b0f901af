"""The composition root: the only place that knows ``dependency_injector``."""

from durably.containers.instance import InstanceServices, wire_instance
from durably.containers.profile import DEFAULTS, SHIPPED_PROFILES, profile_path, read_profile
from durably.containers.root import Durably, build_root
from durably.containers.runtime import MemoryRuntimeLayer
from durably.containers.workflow import WorkflowLayer

__all__ = [
    "WorkflowLayer",
    "MemoryRuntimeLayer",
    "Durably",
    "build_root",
    "DEFAULTS",
    "read_profile",
    "profile_path",
    "SHIPPED_PROFILES",
    "InstanceServices",
    "wire_instance",
]
