"""``patched``: change a workflow's code under running instances without breaking them.

``patched(change_id)`` is a durable point that records a marker the first time code
with the change reaches it. A replay of a history that has the marker at this place
takes the new path (``True``); a replay of a history recorded before the change, which
has another point here (or goes on past here), takes the old path (``False``) and takes
no place in the order of points, so the rest of the old history still fits. Past the end
of the history the code runs for the first time: the marker is recorded (with the next
commit) and the new path taken.
"""

from __future__ import annotations

from durably.domain import keys
from durably.domain.errors import StepScopeError
from durably.domain.records import PatchMarker
from durably.domain.serialization import encode
from durably.services.context import STEP, ExecutionScope

__all__ = ["run_patched"]


def run_patched(scope: ExecutionScope, change_id: str) -> bool:
    """Whether this execution takes the path of change ``change_id`` (see the module)."""
    step = STEP.get()
    if step is not None:
        raise StepScopeError("patched", step.step_name)
    if not scope.durable:
        return True  # a direct call has no history: it runs the current code
    count = scope.patch_names.get(change_id, 0) + 1
    scope.patch_names[change_id] = count
    name = change_id if count == 1 else f"{change_id}#{count}"
    record_key = keys.check_key(keys.patch(name), f"patch {change_id!r}")
    point = f"{keys.PATCH_PREFIX}{name}"
    history = scope.recorded
    if history is None:  # pragma: no cover - the executor reads it before the body runs
        raise RuntimeError("the history of this execution was not read")
    position = scope.position
    if history.get(position) == point:
        scope.take_position()
        return True  # a history recorded with the change
    if history and position <= max(history):
        return False  # a history recorded before the change: its old path
    scope.take_position()
    marker = PatchMarker(position=position, at=scope.runtime.now())
    scope.pending[record_key] = encode(marker, key=record_key)
    history[position] = point
    return True
