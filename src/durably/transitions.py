"""Status transitions (each class has a ``tag`` equal to its name)."""

from durably.domain.transitions import (
    Cancel,
    Complete,
    Fail,
    Pause,
    Queue,
    Recover,
    Reopen,
    Resume,
    Start,
    Transition,
    apply_transition,
)

__all__ = [
    "Start",
    "Queue",
    "Resume",
    "Recover",
    "Complete",
    "Pause",
    "Fail",
    "Cancel",
    "Reopen",
    "Transition",
    "apply_transition",
]
