"""The primitives a workflow body uses: ``workflow``, ``step``, ``sleep``, ``context``."""

from durably.domain.backoff import Backoff
from durably.domain.retry import Retry
from durably.primitives.children import ChildHandle, child, gather, start_child
from durably.primitives.context import WorkflowContext, context, step_info
from durably.primitives.events import set_event, wait_for_event
from durably.primitives.sleep import sleep, sleep_until
from durably.primitives.step import step
from durably.primitives.versioning import patched
from durably.primitives.workflow import WorkflowDefinition, make, workflow
from durably.services.context import StepInfo

__all__ = [
    "workflow",
    "make",
    "WorkflowDefinition",
    "step",
    "sleep",
    "sleep_until",
    "wait_for_event",
    "set_event",
    "child",
    "start_child",
    "gather",
    "ChildHandle",
    "patched",
    "context",
    "step_info",
    "WorkflowContext",
    "StepInfo",
    "Retry",
    "Backoff",
]
