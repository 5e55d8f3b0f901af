"""The engine host: ``Engine``, its settings, the worker loop and what its queries answer."""

from durably.domain.queues import DEFAULT_QUEUE, Queue, QueueStats
from durably.domain.records import AlarmFailure
from durably.domain.schedules import ScheduleInfo
from durably.engine.config import EngineOptions, Lease, Purge, parse_backend_url
from durably.engine.engine import Engine
from durably.engine.records import (
    ChildRow,
    MessageRow,
    PublishedRow,
    SleepRow,
    StatusRow,
    StepAttemptRow,
    StepRecord,
    Timeline,
    TimelineHeader,
    TimelineRow,
    WaitRow,
)
from durably.engine.schedules import Schedule

__all__ = [
    "Engine",
    "EngineOptions",
    "Lease",
    "Purge",
    "StepRecord",
    "Schedule",
    "ScheduleInfo",
    "parse_backend_url",
    "Timeline",
    "TimelineHeader",
    "TimelineRow",
    "StepAttemptRow",
    "SleepRow",
    "MessageRow",
    "WaitRow",
    "PublishedRow",
    "ChildRow",
    "StatusRow",
    "AlarmFailure",
    "DEFAULT_QUEUE",
    "Queue",
    "QueueStats",
]
