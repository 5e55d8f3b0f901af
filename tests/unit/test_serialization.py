"""Every stored type round-trips through the one converter; bad data gives a clear error."""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import datetime
import decimal
import json
import math
import uuid
from typing import Any

import attrs
import pytest

from durably.domain.errors import SerializationError
from durably.domain.events import (
    EVENT_TYPES,
    EventBase,
    StepCompleted,
    WorkflowEvent,
    uuid7,
)
from durably.domain.records import SleepRecord, StepAttempt, StepMeta, StepResult, Tombstone
from durably.domain.serialization import (
    TAG,
    decode,
    decode_value,
    dumps,
    encode,
    encode_value,
    loads,
)
from durably.domain.status import (
    Cancelled,
    Completed,
    Failed,
    Paused,
    Pending,
    Queued,
    Running,
    WorkflowError,
    WorkflowStatus,
)

ERROR = WorkflowError(
    message="card declined",
    type="PaymentError",
    traceback="Traceback (most recent call last):\n  ...",
    step_name="charge",
    attempt=3,
)

# (status, its stored tag written out literally)
STATUSES: list[tuple[WorkflowStatus, str]] = [
    (Pending(), "Pending"),
    (Queued(queued_at=1), "Queued"),
    (Running(running_at=2), "Running"),
    (Paused(reason="sleep", resume_at=3), "Paused"),
    (Paused(reason="retry", resume_at=4, step_name="charge:card"), "Paused"),
    (Completed(completed_at=5), "Completed"),
    (Failed(failed_at=6, error=ERROR), "Failed"),
    (Cancelled(cancelled_at=7), "Cancelled"),
    (Cancelled(cancelled_at=8, reason="user asked"), "Cancelled"),
]

ARBITRARY_JSON: Any = {
    "s": "héllo ✓",
    "i": -(2**62),
    "f": 1.5,
    "b": True,
    "n": None,
    "l": [1, [2, {"x": []}], {}],
}

RECORDS: list[object] = [
    ERROR,
    WorkflowError(message="only a message"),
    StepMeta(completed_at=10, attempt=2, duration_ms=30),
    StepMeta(completed_at=10, attempt=2, duration_ms=30, started_at=9),
    StepResult(value=ARBITRARY_JSON, meta=StepMeta(completed_at=1, attempt=1, duration_ms=0)),
    StepResult(value=None, meta=StepMeta(completed_at=1, attempt=1, duration_ms=0)),
    StepResult(value=[1, "two", 3.0], meta=StepMeta(completed_at=1, attempt=1, duration_ms=0)),
    StepAttempt(attempt=2, first_started_at=100),
    StepAttempt(attempt=3, first_started_at=100, last_error=ERROR, started_at=150),
    SleepRecord(resume_at=1_000, duration_ms=500),
    SleepRecord(resume_at=1_000, duration_ms=500, completed=True),
    Tombstone(workflow_name="orders", status=Failed(failed_at=1, error=ERROR), purged_at=9),
    Tombstone(workflow_name="orders", status=Cancelled(cancelled_at=1), purged_at=9),
    *(status for status, _ in STATUSES),
]

# The event types of semantics.md section 9, written out literally.
SPEC_EVENT_TYPES = [
    "workflow.started",
    "workflow.queued",
    "workflow.completed",
    "workflow.failed",
    "workflow.paused",
    "workflow.resumed",
    "workflow.recovered",
    "workflow.cancelled",
    "workflow.purged",
    "step.started",
    "step.completed",
    "step.failed",
    "retry.scheduled",
    "retry.exhausted",
    "sleep.started",
    "sleep.completed",
    "timeout.exceeded",
    "event.sent",
    "event.received",
    "event.timed_out",
]

# A non-default value for every field any event has.
EVENT_FIELDS: dict[str, Any] = {
    "event_id": uuid7(1_700_000_000_000),
    "timestamp": 1_700_000_000_001,
    "workflow_id": "wf-1",
    "workflow_name": "orders",
    "execution_id": "exec-1",
    "input": ARBITRARY_JSON,
    "completed_steps": ("a", "b:c"),
    "duration_ms": 42,
    "error": ERROR,
    "reason": "retry",
    "resume_at": 1_700_000_005_000,
    "step_name": "charge",
    "attempt": 2,
    "attempts": 5,
    "cached": True,
    "will_retry": True,
    "next_attempt_at": 1_700_000_006_000,
    "delay_ms": 1_000,
    "timeout_ms": 30_000,
    "event_name": "approval",
    "seq": 7,
    "delivery_id": "mail-991",
    "wait": "approval#2",
    "waited_ms": 1_500,
}


def make_event(cls: type[EventBase]) -> EventBase:
    """One instance of ``cls`` with every field set (to a non-default value)."""
    fields = attrs.fields(cls)
    missing = [f.name for f in fields if f.name not in EVENT_FIELDS]
    assert not missing, f"add a value for {missing} to EVENT_FIELDS"
    event = cls(**{f.name: EVENT_FIELDS[f.name] for f in fields})
    for f in fields:
        assert getattr(event, f.name) != f.default
    return event


EVENTS = [make_event(cls) for cls in EVENT_TYPES]


def through_json(data: Any) -> Any:
    """The data as it comes back from storage."""
    return loads(dumps(data))


@attrs.frozen
class UserLine:
    sku: str
    qty: int


@attrs.frozen
class UserOrder:
    id: str
    lines: tuple[UserLine, ...]
    tags: frozenset[str] = frozenset()
    note: str | None = None


@dataclasses.dataclass
class UserReceipt:
    order: UserOrder
    total: float
    paid: bool = False
    extras: dict[str, list[int]] = dataclasses.field(default_factory=dict)


# --- statuses and records ---------------------------------------------------------------


@pytest.mark.parametrize(("status", "tag"), STATUSES, ids=repr)
def test_status_stores_its_explicit_tag(status: WorkflowStatus, tag: str) -> None:
    assert encode(status)["tag"] == tag
    assert encode(status) == encode(status, key="workflow:status")


@pytest.mark.parametrize(("status", "tag"), STATUSES, ids=repr)
def test_status_round_trips_as_union_and_as_its_class(status: WorkflowStatus, tag: str) -> None:
    data = through_json(encode(status))
    assert decode(data, WorkflowStatus) == status
    assert type(decode(data, WorkflowStatus)) is type(status)
    assert decode(data, type(status)) == status


def test_tag_literal_is_used() -> None:
    assert encode(Running(1)) == {"tag": "Running", "running_at": 1}
    assert encode(Pending()) == {"tag": "Pending"}


@pytest.mark.parametrize("value", RECORDS, ids=repr)
def test_record_round_trips(value: object) -> None:
    data = through_json(encode(value))
    back: object = decode(data, type(value))
    assert back == value
    assert type(back) is type(value)


def test_step_result_value_is_stored_as_is() -> None:
    meta = StepMeta(completed_at=1, attempt=1, duration_ms=0)
    data = encode(StepResult(value=ARBITRARY_JSON, meta=meta))
    assert data["value"] == ARBITRARY_JSON
    assert data["meta"] == {
        "completed_at": 1,
        "attempt": 1,
        "duration_ms": 0,
        "started_at": None,
        "index": None,
        "position": None,
    }


def test_tombstone_status_is_tagged() -> None:
    data = encode(Tombstone(workflow_name="w", status=Completed(completed_at=3), purged_at=4))
    assert data["status"] == {"tag": "Completed", "completed_at": 3}


# --- events ---------------------------------------------------------------------------


def test_event_types_match_spec() -> None:
    assert [cls.type for cls in EVENT_TYPES] == SPEC_EVENT_TYPES  # type: ignore[attr-defined]


@pytest.mark.parametrize("event", EVENTS, ids=lambda e: type(e).__name__)
def test_event_round_trips_as_union(event: WorkflowEvent) -> None:
    data = encode(event)
    assert data["type"] == event.type
    assert "tag" not in data
    back: object = decode(through_json(data), WorkflowEvent)
    assert back == event
    assert type(back) is type(event)
    assert decode(through_json(data), type(event)) == event


def test_event_type_literal_is_used() -> None:
    event = StepCompleted(
        event_id="e", timestamp=1, workflow_id="w", workflow_name="n",
        step_name="s", attempt=1, duration_ms=2,
    )  # fmt: skip
    assert encode(event)["type"] == "step.completed"


# --- bad stored data ------------------------------------------------------------------


@pytest.mark.parametrize("cls", [WorkflowStatus, Running], ids=["union", "class"])
def test_unknown_status_tag(cls: Any) -> None:
    with pytest.raises(SerializationError) as info:
        decode({"tag": "Hibernating", "running_at": 1}, cls, key="workflow:status")
    assert "workflow:status" in str(info.value)
    assert "Hibernating" in str(info.value)
    assert info.value.key == "workflow:status"


def test_unknown_event_type() -> None:
    data = encode(EVENTS[0]) | {"type": "step.exploded"}
    with pytest.raises(SerializationError) as info:
        decode(data, WorkflowEvent, key="events:7")
    assert "events:7" in str(info.value)
    assert "step.exploded" in str(info.value)


@pytest.mark.parametrize(
    ("data", "cls"),
    [
        ({"tag": "Running", "running_at": 1, "owner": "p-2"}, WorkflowStatus),
        ({"tag": "Running", "running_at": 1, "owner": "p-2"}, Running),
        ({"tag": "Failed", "failed_at": 1, "error": {"message": "m", "code": 7}}, WorkflowStatus),
        ({"resume_at": 1, "duration_ms": 2, "completed": True, "jitter": 3}, SleepRecord),
        (encode(EVENTS[0]) | {"priority": 1}, WorkflowEvent),
    ],
    ids=["status", "status-class", "nested", "record", "event"],
)
def test_extra_field_from_newer_schema(data: Any, cls: Any) -> None:
    with pytest.raises(SerializationError) as info:
        decode(data, cls, key="step:charge:result")
    assert "step:charge:result" in str(info.value)


def test_extra_field_is_named() -> None:
    with pytest.raises(SerializationError, match="owner"):
        decode({"tag": "Running", "running_at": 1, "owner": "p"}, WorkflowStatus, key="k")


@pytest.mark.parametrize("data", [None, "Running", 3, ["Running", 1], {"running_at": 1}])
@pytest.mark.parametrize("cls", [WorkflowStatus, Running], ids=["union", "class"])
def test_not_a_tagged_object(data: Any, cls: Any) -> None:
    with pytest.raises(SerializationError, match="workflow:status"):
        decode(data, cls, key="workflow:status")


def test_missing_field() -> None:
    with pytest.raises(SerializationError, match="workflow:status"):
        decode({"tag": "Running"}, WorkflowStatus, key="workflow:status")


@pytest.mark.parametrize(
    ("value", "cls"),
    [
        (Failed(failed_at=1, error=ERROR), WorkflowStatus),
        (Paused(reason="retry", resume_at=4, step_name="s"), WorkflowStatus),
        (EVENTS[3], WorkflowEvent),
        (
            Tombstone(workflow_name="w", status=Failed(failed_at=1, error=ERROR), purged_at=2),
            Tombstone,
        ),
        ({"tag": "Nope"}, WorkflowStatus),
        ({"tag": "Running", "running_at": 1, "x": 1}, Running),
    ],
)
def test_decode_does_not_mutate_its_input(value: object, cls: Any) -> None:
    data = encode(value)
    before = copy.deepcopy(data)
    with contextlib.suppress(SerializationError):
        decode(data, cls, key="k")
    assert data == before


# --- values that cannot be stored -----------------------------------------------------


@pytest.mark.parametrize(
    ("value", "type_name", "detail"),
    [
        (object(), "object", "object"),
        (math.nan, "float", "nan"),
        (math.inf, "float", "inf"),
        ({1: "a"}, "dict", "1"),
        ([[{"a": [object()]}]], "list", "object"),
        ([1, [2, math.nan]], "list", "nan"),
        ({"a": [{"b": {2: 3}}]}, "dict", "2"),
        ({"a": {object()}}, "dict", "object"),
    ],
    ids=["object", "nan", "inf", "int-key", "nested-object", "nested-nan", "nested-key", "set"],
)
def test_unserializable_value(value: object, type_name: str, detail: str) -> None:
    with pytest.raises(SerializationError) as info:
        encode(value, key="step:charge:result", step_name="charge")
    error = info.value
    assert error.type_name == type_name
    assert error.step_name == "charge"
    assert f"type {type_name}" in str(error)
    assert "'charge'" in str(error)
    assert "step:charge:result" in str(error)
    assert detail in error.reason


def test_unserializable_user_type_is_named() -> None:
    class Opaque:
        pass

    with pytest.raises(SerializationError, match="Opaque") as info:
        encode(Opaque())
    assert info.value.step_name is None
    assert info.value.key is None


def test_set_is_stored_as_a_list_and_read_back_as_declared() -> None:
    # cattrs stores sets as JSON arrays; the declared type turns them back into a set.
    data = through_json(encode({3, 1, 2}))
    assert sorted(data) == [1, 2, 3]
    assert decode(data, set[int]) == {1, 2, 3}


# --- user types -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "cls"),
    [
        (UserLine(sku="x", qty=2), UserLine),
        (
            UserOrder(
                id="o-1", lines=(UserLine("a", 1), UserLine("b", 2)), tags=frozenset({"vip"})
            ),
            UserOrder,
        ),
        (
            UserReceipt(
                order=UserOrder(id="o-2", lines=(), note="gift"),
                total=12.5,
                paid=True,
                extras={"k": [1, 2]},
            ),
            UserReceipt,
        ),
        ([UserLine("a", 1)], list[UserLine]),
        ({"a": UserLine("a", 1)}, dict[str, UserLine]),
        (None, UserOrder | None),
    ],
    ids=repr,
)
def test_user_type_round_trips(value: object, cls: Any) -> None:
    back = decode(through_json(encode(value)), cls)
    assert back == value


def test_user_type_with_wrong_shape() -> None:
    with pytest.raises(SerializationError, match="step:charge:result") as info:
        decode({"sku": "x"}, UserLine, key="step:charge:result")
    assert "UserLine" in str(info.value)


@pytest.mark.parametrize("data", [None, 1, "s", [1, {"a": 2}], {"tag": "Nope"}])
def test_decode_as_any_returns_data_unchanged(data: Any) -> None:
    assert decode(data, Any) is data


# --- uuid7 ----------------------------------------------------------------------------


@pytest.mark.parametrize("ms", [0, 1, 1_700_000_000_123, 2**48 - 1])
def test_uuid7_layout(ms: int) -> None:
    value = uuid.UUID(uuid7(ms))
    assert value.version == 7
    assert value.variant == uuid.RFC_4122
    assert value.int >> 80 == ms
    text = uuid7(ms)
    assert text[:13].replace("-", "") == f"{ms:012x}"
    assert text[14] == "7"


def test_uuid7_is_random_within_a_millisecond() -> None:
    assert len({uuid7(5) for _ in range(100)}) == 100


def test_uuid7_sorts_by_time() -> None:
    times = [0, 1, 2, 999, 1_000, 1_700_000_000_000, 1_700_000_000_001, 2**47, 2**48 - 1]
    ids = [uuid7(ms) for ms in times for _ in range(3)]
    by_ms = [uuid7(ms) for ms in times]
    assert sorted(by_ms) == by_ms
    assert [uuid.UUID(i).int >> 80 for i in sorted(ids)] == [ms for ms in times for _ in range(3)]


# -- step values: the same on the first run and on replay (encode_value / decode_value) ----


@attrs.frozen
class Stamp:
    at: datetime.datetime


@pytest.mark.parametrize(
    "value",
    [
        (1, (2, 3)),
        {1, 2},
        frozenset({"a"}),
        b"\x00\x01",
        datetime.datetime(2025, 1, 1, tzinfo=datetime.UTC),
        datetime.date(2025, 1, 1),
        datetime.time(1, 2, 3),
        datetime.timedelta(days=1, microseconds=3),
        uuid.UUID(int=5),
        decimal.Decimal("0.10"),
        Stamp(datetime.datetime(2025, 1, 1, tzinfo=datetime.UTC)),
        {"k": [(1, 2)]},
    ],
    ids=repr,
)
def test_an_unannotated_value_comes_back_as_itself(value: Any) -> None:
    data, back = encode_value(value, Any)
    assert json.loads(dumps(data)) == data  # plain JSON
    again = decode_value(json.loads(dumps(data)), Any)
    for got in (back, again):
        assert got == value
        assert type(got) is type(value)


@pytest.mark.parametrize("declared", [tuple, dict[str, Any], list[Any]])
def test_a_declared_type_that_says_too_little_is_stored_tagged(declared: Any) -> None:
    value: Any = (1, (2,))
    if declared == dict[str, Any]:
        value = {"d": datetime.date(2025, 1, 1)}
    if declared == list[Any]:
        value = [(1, 2)]
    data, back = encode_value(value, declared)
    assert back == value
    assert decode_value(data, declared) == value


def test_a_declared_type_gives_the_value_as_every_run_reads_it() -> None:
    data, back = encode_value(3, float)
    assert (data, back) == (3, 3.0)
    assert type(back) is float  # as every replay reads it
    assert encode_value("x", str) == ("x", "x")
    data, back = encode_value([1, 2], tuple[int, int])
    assert back == (1, 2)
    assert decode_value(data, tuple[int, int]) == (1, 2)


def test_values_that_could_not_come_back_the_same_are_refused() -> None:
    class Local:
        pass

    with pytest.raises(SerializationError, match="top level of a module"):
        encode_value(Stamp2(), Any)
    with pytest.raises(SerializationError, match="annotate"):
        encode_value(Local(), Any)
    with pytest.raises(SerializationError, match="reserved"):
        encode_value({TAG: 1}, Any)
    with pytest.raises(SerializationError, match="would not read back"):
        encode_value("not a date", datetime.date)


def _local_attrs() -> Any:
    @attrs.frozen
    class Hidden:
        x: int = 1

    return Hidden


Stamp2 = _local_attrs()
