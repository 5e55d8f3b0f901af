"""The inbox: messages for an instance from outside its lease (a cancel, an event, ...).

Only the lease holder writes an instance's namespace. Anything else that must reach an
instance is appended to its inbox, by anyone, in one commit that also makes a waiting
instance due. The holder reads the messages and consumes each one in the same commit
that records what it did with it, so a message is acted on exactly once.

Every append takes the next number of the instance's own sequence (``seq``, from 1),
under the instance's row lock: the numbers give the delivery order, and the highest
one tells a holder whether anything arrived since it last looked.
"""

from __future__ import annotations

from typing import Final, Literal, TypeAlias

import attrs

from durably.domain.records import JsonValue

__all__ = [
    "CANCEL",
    "EVENT",
    "CHILD",
    "MessageKind",
    "InboxMessage",
    "Outgoing",
    "AppendOutcome",
    "WAKING_STATUSES",
    "wakes",
    "wait_key",
    "event_dedupe_key",
    "child_dedupe_key",
]

MessageKind: TypeAlias = Literal["cancel", "event", "child"]
"""What a message asks of the instance (a ``child`` message: a child of it ended)."""

CANCEL: Final = "cancel"
EVENT: Final = "event"
CHILD: Final = "child"

WAKING_STATUSES: Final = ("Queued", "Paused")
"""The statuses in which a cancel makes the instance due at once (it waits for an alarm)."""


def wakes(kind: str, status: str) -> bool:
    """Whether appending a message of ``kind`` makes an instance in ``status`` due now.

    A cancel wakes a queued or paused instance (it acts at once). Any other message
    wakes only a paused one, which then resumes if it waits for that message and pauses
    again otherwise (``Paused.waits``): a queued instance keeps its alarm, so a delivery
    never starts a delayed instance early, and a sleep never ends early.

    >>> wakes("event", "Paused"), wakes("event", "Queued"), wakes("cancel", "Queued")
    (True, False, True)
    """
    if kind == CANCEL:
        return status in WAKING_STATUSES
    return status == "Paused"


def wait_key(kind: str, name: str | None) -> str:
    """What a paused instance lists in ``Paused.waits`` to be resumed by such a message.

    >>> wait_key("event", "approval")
    'event:approval'
    """
    return f"{kind}:{name or ''}"


def event_dedupe_key(event_id: str) -> str:
    """The inbox dedupe key of an event sent with ``event_id``: remembered until purge."""
    return f"event:{event_id}"


def child_dedupe_key(child_id: str) -> str:
    """The dedupe key of the message that says child ``child_id`` ended (one per child)."""
    return f"child:{child_id}"


@attrs.frozen
class InboxMessage:
    """One message delivered to an instance."""

    seq: int
    """Its place in the instance's delivery order (1, 2, ...)."""
    kind: str
    name: str | None
    payload: JsonValue
    sent_at: int
    dedupe_key: str | None = None
    consumed: bool = False


@attrs.frozen
class Outgoing:
    """A message to append to the inbox of instance ``instance_id``."""

    instance_id: str
    kind: str
    name: str | None = None
    payload: str = "null"
    """The payload as JSON text."""
    dedupe_key: str | None = None


@attrs.frozen
class AppendOutcome:
    """What an append found: the instance's status tag, and the message's number."""

    status: str | None
    """The instance's status tag (``None``: no such instance)."""
    seq: int | None = None
    """The number of the appended message (``None``: nothing was appended)."""
    duplicate: bool = False
    """A message with the same ``dedupe_key`` was delivered before; nothing was appended."""
    workflow: str | None = None
    """The instance's workflow name (``None``: no such instance)."""

    @property
    def delivered(self) -> bool:
        """Whether the message is (or was already) in the inbox."""
        return self.seq is not None or self.duplicate
