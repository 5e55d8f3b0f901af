"""The storage layout: the key of every stored value of an instance.

Step and sleep names are escaped (``%`` and ``:``), so no two names map to one key
and a key can always be split back into its parts.
"""

from __future__ import annotations

__all__ = [
    "MAX_KEY_BYTES",
    "MAX_ID_BYTES",
    "check_key",
    "STATUS",
    "NAME",
    "INPUT",
    "OUTPUT",
    "EXECUTION_ID",
    "STARTED_AT",
    "CANCELLED",
    "CANCEL_REASON",
    "RECOVERY_ATTEMPTS",
    "LAST_RECOVERY_AT",
    "PENDING_RESUME_AT",
    "COMPLETED_COUNT",
    "COMPLETED_PREFIX",
    "PURGE_AT",
    "TOMBSTONE",
    "LAST_ALARM_ERROR",
    "STEP_PREFIX",
    "SLEEP_PREFIX",
    "WAIT_PREFIX",
    "PUBLISHED_PREFIX",
    "CHILD_PREFIX",
    "PARENT",
    "QUEUE",
    "PATCH_PREFIX",
    "REOPENS",
    "escape",
    "unescape",
    "meta",
    "step",
    "completed",
    "sleep",
    "wait",
    "published",
    "child",
    "patch",
    "point_of",
]

MAX_KEY_BYTES = 1024
"""The longest key (UTF-8): with an instance id of at most ``MAX_ID_BYTES``, an index
entry of PostgreSQL's key-value table stays under its B-tree limit (2 704 bytes), so a
name is refused the same way on every backend."""

MAX_ID_BYTES = 512
"""The longest instance id (UTF-8)."""


def check_key(key: str, what: str) -> str:
    """``key``, or ``ValueError`` naming ``what`` when it is longer than ``MAX_KEY_BYTES``.

    >>> check_key("step:a:result", "step 'a'")
    'step:a:result'
    """
    size = len(key.encode("utf-8"))
    if size > MAX_KEY_BYTES:
        raise ValueError(
            f"{what}: the name is too long ({size} bytes stored, at most {MAX_KEY_BYTES})"
        )
    return key


STATUS = "workflow:status"
NAME = "workflow:name"
INPUT = "workflow:input"
OUTPUT = "workflow:output"
EXECUTION_ID = "workflow:executionId"
STARTED_AT = "workflow:startedAt"
CANCELLED = "workflow:cancelled"
CANCEL_REASON = "workflow:cancelReason"
RECOVERY_ATTEMPTS = "workflow:recoveryAttempts"
LAST_RECOVERY_AT = "workflow:lastRecoveryAt"
PENDING_RESUME_AT = "workflow:pendingResumeAt"
COMPLETED_COUNT = "workflow:completedCount"
PURGE_AT = "workflow:purgeAt"
TOMBSTONE = "workflow:tombstone"
LAST_ALARM_ERROR = "workflow:lastAlarmError"
COMPLETED_PREFIX = "completed:"
STEP_PREFIX = "step:"
SLEEP_PREFIX = "sleep:"
WAIT_PREFIX = "wait:"
PUBLISHED_PREFIX = "event:"
CHILD_PREFIX = "child:"
PARENT = "workflow:parent"
QUEUE = "workflow:queue"
PATCH_PREFIX = "patch:"
REOPENS = "workflow:reopens"


def escape(name: str) -> str:
    """Escape a user-chosen name for use inside a key.

    >>> escape("a:b%c")
    'a%3Ab%25c'
    """
    if "%" not in name and ":" not in name:
        return name
    return name.replace("%", "%25").replace(":", "%3A")


def unescape(part: str) -> str:
    """Undo ``escape``.

    >>> unescape(escape("x:%3A"))
    'x:%3A'
    """
    if "%" not in part:
        return part
    return part.replace("%3A", ":").replace("%25", "%")


def meta(key: str) -> str:
    """The key of workflow metadata ``key``."""
    return f"workflow:meta:{escape(key)}"


def step(name: str, suffix: str) -> str:
    """The key of one record (``result``, ``attempt``, ``startedAt``, ``meta:<k>``) of a step."""
    return f"{STEP_PREFIX}{escape(name)}:{suffix}"


def completed(name: str) -> str:
    """The completion marker of a step (its value is the completion order)."""
    return f"{COMPLETED_PREFIX}{escape(name)}"


def sleep(name: str) -> str:
    """The record of a sleep."""
    return f"{SLEEP_PREFIX}{escape(name)}"


def wait(name: str) -> str:
    """The record of a ``wait_for_event`` (keyed like a step: ``approval``, ``approval#2``)."""
    return f"{WAIT_PREFIX}{escape(name)}"


def published(key: str) -> str:
    """The latest value ``set_event`` published under ``key``."""
    return f"{PUBLISHED_PREFIX}{escape(key)}"


def child(name: str) -> str:
    """The record of a child workflow started by ``start_child`` (or ``child``)."""
    return f"{CHILD_PREFIX}{escape(name)}"


def patch(change_id: str) -> str:
    """The marker of ``patched(change_id)``."""
    return f"{PATCH_PREFIX}{escape(change_id)}"


_POINT_PREFIXES = (SLEEP_PREFIX, WAIT_PREFIX, CHILD_PREFIX, PUBLISHED_PREFIX, PATCH_PREFIX)


def point_of(key: str) -> str | None:
    """The durable point a stored record belongs to, as the determinism check names it:
    a step by its key (``charge#2``), any other point by its kind and key
    (``sleep:nap``, ``wait:approval``, ``child:invoice``, ``event:stage``,
    ``patch:v2-tax``); ``None`` for a key of no durable point.

    >>> point_of("step:charge%3Acard:result"), point_of("sleep:nap"), point_of("workflow:status")
    ('charge:card', 'sleep:nap', None)
    """
    if key.startswith(STEP_PREFIX):
        name, _, suffix = key[len(STEP_PREFIX) :].rpartition(":")
        return unescape(name) if suffix in ("result", "attempt") else None
    for prefix in _POINT_PREFIXES:
        if key.startswith(prefix):
            return prefix + unescape(key[len(prefix) :])
    return None
