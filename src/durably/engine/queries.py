"""The queries of ``Engine``: status, result, published events, list, steps and timeline."""

from __future__ import annotations

import builtins
import time
from typing import Any

from returns.result import Failure, Result, Success

from durably.domain import keys
from durably.domain.durations import parse_duration
from durably.domain.errors import (
    DurablyError,
    EventNotPublishedError,
    InstanceNotFoundError,
    InstancePurgedError,
    OrchestratorError,
    ResultTimeoutError,
    StorageError,
    WorkflowCancelledError,
    WorkflowFailedError,
)
from durably.domain.queues import QueueStats
from durably.domain.records import PublishedEvent
from durably.domain.serialization import decode, decode_value, loads
from durably.domain.status import Cancelled, Completed, Failed, WorkflowStatus, is_terminal
from durably.engine.records import StepRecord, Timeline
from durably.engine.server import InstanceServer, Signal
from durably.engine.skipping import output_skipping_time
from durably.engine.timeline import build_timeline, step_records
from durably.ports import InstanceHost, TimeSkippingClock
from durably.services import WorkflowRegistry
from durably.services.types import InstanceSummary, WorkflowStatusResult

__all__ = ["EngineQueries"]


class EngineQueries:
    """What ``Engine`` answers about instances (it provides the host, registry, services)."""

    _host: InstanceHost
    _changed: Signal
    _server: InstanceServer
    registry: WorkflowRegistry
    _clock: object

    def _require_open(self) -> None:
        raise NotImplementedError  # pragma: no cover - provided by the engine

    async def status(self, id: str) -> Result[WorkflowStatusResult, StorageError]:
        """The status and completed steps of instance ``id``."""
        self._require_open()
        try:
            return Success(await self._report(id))
        except StorageError as e:
            return Failure(e)

    async def _report(self, id: str) -> WorkflowStatusResult:
        """``status``, raising: a ``StorageError`` when the store fails or holds a status
        this version cannot read."""
        try:
            return await self._server.reader(id).report()
        except StorageError:
            raise
        except DurablyError as e:
            raise StorageError("status", None, e) from e

    async def result(self, id: str, *, timeout: Any = None) -> Result[Any, DurablyError]:
        """Wait until instance ``id`` ends: its output, or why it did not complete.

        Under a time-skipping clock (``durably.testing``) it moves that clock from alarm
        to alarm instead of waiting (``engine/skipping.py``).
        """
        self._require_open()
        limit_ms = None if timeout is None else parse_duration(timeout, field="timeout")
        try:
            return Success(await self._wait_for_output(id, limit_ms))
        except DurablyError as e:  # the outcome, or the store's failure: converted here only
            return Failure(e)

    async def _status(self, id: str) -> WorkflowStatus | None:
        """Only the status of instance ``id`` (one key): what ``result`` waits on. The
        whole report would read every child record at each wake-up, and a parent of
        1 000 children is woken by each commit of this process while they run."""
        try:
            raw = await self._host.read(id, keys.STATUS)
            return None if raw is None else decode(loads(raw), WorkflowStatus, key=keys.STATUS)
        except StorageError:
            raise
        except DurablyError as e:
            raise StorageError("status", None, e) from e

    async def _wait_for_output(self, id: str, limit_ms: int | None) -> Any:
        """``result``, raising why the instance did not complete (or why it is unknown)."""
        if isinstance(self._clock, TimeSkippingClock):
            return await output_skipping_time(self, id, self._clock, limit_ms)
        deadline = None if limit_ms is None else time.monotonic() + limit_ms / 1000
        pause = 0.005
        while True:
            seen = self._changed.fired
            status = await self._status(id)
            if status is None:
                raise InstanceNotFoundError(id)
            if is_terminal(status):
                return await self._output(id, status)
            if deadline is not None and time.monotonic() >= deadline:
                raise ResultTimeoutError(id, limit_ms or 0, status.tag)
            wait = pause if deadline is None else max(0.0, min(pause, deadline - time.monotonic()))
            await self._changed.wait(wait, seen)
            pause = min(pause * 2, 0.25)

    async def queue_stats(self) -> Result[builtins.list[QueueStats], StorageError]:
        """Per queue: how many instances wait (queued), how many run (started and not
        ended: running, sleeping or waiting), and the limits last stored by an engine."""
        self._require_open()
        try:
            return Success(await self._host.queue_stats())
        except StorageError as e:
            return Failure(e)

    async def get_event(
        self, id: str, key: str, *, timeout: Any = None
    ) -> Result[Any, OrchestratorError]:
        """The latest value instance ``id`` published under ``key`` (``set_event``).

        With a ``timeout`` (a duration), waits until one is published. An unknown
        instance (``InstanceNotFoundError``) or nothing published (after the timeout:
        ``EventNotPublishedError``) is a ``Failure`` naming which.
        """
        self._require_open()
        limit_ms = None if timeout is None else parse_duration(timeout, field="timeout")
        try:
            return Success(await self._published(id, key, limit_ms))
        except DurablyError as e:
            return Failure(OrchestratorError("get_event", e))

    async def _published(self, id: str, key: str, limit_ms: int | None) -> Any:
        record_key = keys.published(key)
        deadline = None if limit_ms is None else time.monotonic() + limit_ms / 1000
        pause = 0.005
        while True:
            seen = self._changed.fired
            text = await self._host.read(id, record_key)
            if text is not None:
                return decode(loads(text), PublishedEvent, key=record_key).value
            if await self._host.instance(id) is None:
                raise InstanceNotFoundError(id)
            left = None if deadline is None else deadline - time.monotonic()
            if left is None or left <= 0:
                raise EventNotPublishedError(id, key, limit_ms)
            await self._changed.wait(min(pause, left), seen)
            pause = min(pause * 2, 0.25)

    async def _output(self, id: str, status: Any) -> Any:
        """The output of an instance that ended with ``status``; raises why there is none."""
        # A purged instance keeps only its final status: its output is gone, and its
        # answer says so rather than passing for a workflow that returned None.
        if await self._host.read(id, keys.TOMBSTONE) is not None:
            raise InstancePurgedError(id, status)
        if isinstance(status, Failed):
            raise WorkflowFailedError(id, status.error)
        if isinstance(status, Cancelled):
            raise WorkflowCancelledError(id, status.reason)
        if not isinstance(status, Completed):  # pragma: no cover - not terminal
            raise InstanceNotFoundError(id)
        raw = await self._host.read(id, keys.OUTPUT)
        name = await self._host.read(id, keys.NAME)
        output_type: Any = Any
        if name is not None:
            found = self.registry.get(decode(loads(name), str))
            if isinstance(found, Success):
                output_type = found.unwrap().output_type
        return None if raw is None else decode_value(loads(raw), output_type, key=keys.OUTPUT)

    async def list(
        self, *, status: str | None = None, workflow: str | None = None, limit: int = 100
    ) -> Result[builtins.list[InstanceSummary], StorageError]:
        """Instances by status tag and/or workflow name, most recently updated first."""
        self._require_open()
        if limit <= 0:
            raise ValueError(f"limit must be positive, got {limit}")
        try:
            rows = await self._host.list_instances(status, workflow, limit)
        except StorageError as e:
            return Failure(e)
        return Success(
            [
                InstanceSummary(r.id, r.workflow, r.status, r.created_at, r.updated_at, r.due_at)
                for r in rows
            ]
        )

    async def steps(self, id: str) -> Result[builtins.list[StepRecord], StorageError]:
        """The steps of instance ``id``, one record each: the completed ones in order, then
        those that failed (waiting for a retry, or failed for good). Every attempt is in
        ``timeline``."""
        self._require_open()
        try:
            entries = {
                **(await self._host.read_prefix(id, keys.STEP_PREFIX)),
                **(await self._host.read_prefix(id, keys.COMPLETED_PREFIX)),
            }
            loaded = {k: loads(v) for k, v in entries.items()}
            return Success(step_records(loaded))
        except StorageError as e:
            return Failure(e)
        except DurablyError as e:
            return Failure(StorageError("steps", None, e))

    async def timeline(self, id: str) -> Result[Timeline, StorageError | InstanceNotFoundError]:
        """What instance ``id`` is (workflow, status, input, output, next wake-up, why its
        last alarm failed) and what happened to it, in order: every step attempt with its
        error and duration, sleeps, messages such as cancel requests, and the statuses
        that its stored keys tell."""
        self._require_open()
        try:
            texts = await self._host.read_prefix(id, "")
            row = await self._host.instance(id)
            messages = await self._host.read_inbox(id)
            alarm = await self._host.runtime(id, None).scheduler.get_scheduled()
            if isinstance(alarm, Failure):
                return Failure(StorageError("timeline", None, alarm.failure()))
            entries = {k: loads(v) for k, v in texts.items()}
            found = build_timeline(id, entries, row, messages, alarm.unwrap())
        except StorageError as e:
            return Failure(e)
        except DurablyError as e:
            return Failure(StorageError("timeline", None, e))
        return Success(found) if found is not None else Failure(InstanceNotFoundError(id))
