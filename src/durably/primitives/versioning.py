"""``patched``: guard a change of a workflow's code so that running instances keep their path."""

from __future__ import annotations

from durably.services.context import require_scope
from durably.services.versioning import run_patched

__all__ = ["patched"]


def patched(change_id: str) -> bool:
    """Whether this execution takes the path of change ``change_id``:

    ``True`` when it reaches this point for the first time with the change (a marker is
    recorded, with the next commit) or replays a history that has the marker; ``False``
    when it replays a history recorded before the change. ``if durably.patched("v2-tax"):
    ... else: ...`` keeps both paths until no instance of the old one runs.
    """
    if not isinstance(change_id, str) or not change_id:
        raise TypeError(f"patched needs a change id (a non-empty str), got {change_id!r}")
    return run_patched(require_scope("patched"), change_id)
