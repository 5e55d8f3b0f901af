"""The table "What the HTTP tracker sends" of ``docs/concepts.md`` is exactly what is sent.

A field added to an event (or to the tracker's envelope) without a row there fails here:
users decide what to redact from that table.
"""

from __future__ import annotations

import re

import attrs

from durably.domain.events import EVENT_TYPES
from tests.docs.blocks import DOCS

HEADING = "### What the HTTP tracker sends"
ENVELOPE = ("type", "env", "service_key")
"""Fields the HTTP tracker adds to every event's attrs fields."""


def documented() -> dict[str, set[str]]:
    """Event type -> the fields the table says it carries."""
    text = (DOCS / "concepts.md").read_text(encoding="utf-8")
    section = text[text.index(HEADING) :]
    rows = [line for line in section.splitlines()[1:] if line.startswith("| `")]
    every = {cls.type for cls in EVENT_TYPES}  # type: ignore[attr-defined]
    fields: dict[str, set[str]] = {t: set() for t in every}
    for row in rows:
        names, events = row.split("|")[1:3]
        types = every if events.strip() == "every event" else set(re.findall(r"`([^`]+)`", events))
        assert types <= every, f"unknown event types in {row!r}"
        for t in types:
            fields[t] |= set(re.findall(r"`([^`]+)`", names))
    return fields


def sent() -> dict[str, set[str]]:
    """Event type -> the fields its JSON form carries (attrs fields plus the envelope)."""
    return {
        cls.type: {f.name for f in attrs.fields(cls)} | set(ENVELOPE)  # type: ignore[attr-defined]
        for cls in EVENT_TYPES
    }


def test_the_documented_fields_are_exactly_the_fields_sent() -> None:
    assert documented() == sent()
