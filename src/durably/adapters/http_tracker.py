"""``HttpBatchTracker``: events POSTed in batches to an HTTP collector (semantics.md section 9).

``emit`` only appends the event's JSON to a bounded in-memory buffer (the oldest events are
dropped, and counted, when it is full); a background task started on the first ``emit``
inside a running event loop sends the buffer as ``{"events": [...]}`` when ``batch_size``
events wait and every ``flush_interval``. One batch is in flight at a time, so batches
arrive in the order the events were emitted.

A batch whose POST fails with a connection error, a timeout, a 5xx or a 429 is sent again
after an exponential back-off, up to ``max_retries`` times; a 4xx other than 429 (or a
batch still failing after its retries) is given up with a logged error and counted in
``failed``. Delivery is at least once: a batch whose answer was lost (a timeout after the
collector took it) is sent again, so collectors deduplicate on ``event_id``.

``close`` (the engine's shutdown) waits at most ``close_timeout`` (5 s by default) for the
collector: what is still buffered then is given up, counted in ``abandoned`` and logged in
one warning, so a collector that is down cannot hold a shutdown for the length of the
retries. ``redact`` sees every event's JSON form before it is buffered and returns what
to send, or ``None`` to send nothing (events carry workflow inputs, error messages and
tracebacks: ``docs/concepts.md``, "What the HTTP tracker sends"). An endpoint in plain
``http://`` to another host than this one is warned about once, when the tracker is built.

Nothing here ever raises into, or waits inside, a workflow.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import urllib.parse
from collections import deque
from collections.abc import Callable, Mapping
from contextlib import suppress
from typing import Any, Final, TypeAlias

import httpx

from durably.domain.backoff import (
    BackoffStrategy,
    ExponentialBackoff,
    add_jitter,
    calculate_backoff_delay,
)
from durably.domain.durations import Duration, parse_duration
from durably.domain.events import WorkflowEvent
from durably.domain.serialization import converter

__all__ = ["HttpBatchTracker", "Redact"]

log = logging.getLogger("durably.trackers.http")

DEFAULT_BACKOFF: Final = ExponentialBackoff(initial_ms=500, multiplier=2.0, max_ms=30_000)
"""Back-off between the attempts of one batch: 0.5 s, 1 s, 2 s, ... capped at 30 s (±10 %)."""


Redact: TypeAlias = Callable[[dict[str, Any]], dict[str, Any] | None]
"""Takes an event's JSON form (a fresh dict, free to change) and returns the dict to send,
or ``None`` to send nothing for that event."""


def _is_local(host: str) -> bool:
    """Whether ``host`` names this machine (``localhost`` or a loopback address)."""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a name, not an address
        return False


def _shown(endpoint: str) -> str:
    """``endpoint`` for log lines: without the credentials or query it may carry."""
    parts = urllib.parse.urlsplit(endpoint)
    port = f":{parts.port}" if parts.port is not None else ""
    return f"{parts.scheme}://{parts.hostname or ''}{port}{parts.path}"


def _warn_if_plain_http(endpoint: str) -> None:
    """Warn when events would cross the network unencrypted (plain http to another host)."""
    parts = urllib.parse.urlsplit(endpoint)
    if parts.scheme.lower() != "http" or _is_local((parts.hostname or "").lower()):
        return
    log.warning(
        "HttpBatchTracker endpoint %s is plain http to another host: events (workflow "
        "inputs, error messages, tracebacks), the service_key and the headers travel "
        "unencrypted; use https:// (and redact= to leave out what must not leave)",
        _shown(endpoint),
    )


class _Retryable(Exception):
    """A POST that may succeed if sent again (connection error, timeout, 5xx, 429)."""


class HttpBatchTracker:
    """Sends events in batches to ``endpoint`` (a JSON ``POST`` of ``{"events": [...]}``).

    Each event is the JSON form of the event (with its ``type``) plus ``env`` and
    ``service_key``, passed through ``redact`` when given (see ``Redact``).
    ``close_timeout`` bounds how long ``close`` waits for the collector. Attributes:
    ``dropped`` (events dropped because the buffer was full), ``failed`` (events of
    batches given up), ``abandoned`` (events still buffered when ``close`` stopped
    waiting), ``delivered`` (events accepted by the collector) and ``attempts`` (POSTs
    tried).
    """

    def __init__(
        self,
        endpoint: str,
        *,
        env: str,
        service_key: str,
        headers: Mapping[str, str] | None = None,
        batch_size: int = 100,
        flush_interval: Duration = "5s",
        max_buffer: int = 10_000,
        max_retries: int = 5,
        timeout: Duration = "10s",
        backoff: BackoffStrategy | None = None,
        close_timeout: Duration = "5s",
        redact: Redact | None = None,
    ) -> None:
        if not endpoint:
            raise ValueError("endpoint: an http(s) URL is required")
        if batch_size < 1:
            raise ValueError(f"batch_size: must be >= 1, got {batch_size!r}")
        if max_buffer < 1:
            raise ValueError(f"max_buffer: must be >= 1, got {max_buffer!r}")
        if max_retries < 0:
            raise ValueError(f"max_retries: must be >= 0, got {max_retries!r}")
        if redact is not None and not callable(redact):
            raise TypeError(f"redact: must be a callable or None, got {type(redact).__name__}")
        self.endpoint = endpoint
        self._shown = _shown(endpoint)
        self.env = env
        self.service_key = service_key
        self.headers: dict[str, str] = dict(headers or {})
        self.batch_size = batch_size
        self.flush_interval_ms = parse_duration(flush_interval, field="flush_interval")
        if self.flush_interval_ms == 0:
            raise ValueError("flush_interval: must be > 0")
        self.max_buffer = max_buffer
        self.max_retries = max_retries
        self.timeout_ms = parse_duration(timeout, field="timeout")
        self.backoff: BackoffStrategy = backoff if backoff is not None else DEFAULT_BACKOFF
        self.close_timeout_ms = parse_duration(close_timeout, field="close_timeout")
        self.redact = redact
        _warn_if_plain_http(endpoint)

        self.dropped = 0
        self.failed = 0
        self.abandoned = 0
        self.delivered = 0
        self.attempts = 0

        # (sequence number, JSON dict) in emit order; the sequence lets flush() stop at
        # what was emitted before it was called.
        self._buffer: deque[tuple[int, dict[str, Any]]] = deque()
        self._seq = 0
        self._in_flight = 0
        self._warned_at = 0
        # Bound to the running loop on first use, and rebuilt if the loop changes.
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None
        self._lock: asyncio.Lock | None = None
        self._client: httpx.AsyncClient | None = None

    # -- the Tracker protocol ------------------------------------------------------------

    def emit(self, event: WorkflowEvent) -> None:
        """Buffer the event (as ``redact`` leaves it); never blocks, never raises."""
        try:
            data: dict[str, Any] = converter.unstructure(event, WorkflowEvent)
            data["env"] = self.env
            data["service_key"] = self.service_key
            if self.redact is not None:
                redacted = self._redacted(data)
                if redacted is None:
                    return
                data = redacted
            self._seq += 1
            self._buffer.append((self._seq, data))
            if len(self._buffer) > self.max_buffer:
                self._buffer.popleft()
                self._count_dropped()
            self._kick()
        except Exception:  # a tracker never fails a workflow
            log.exception("HttpBatchTracker could not take an event")

    async def flush(self) -> None:
        """Send every event emitted so far (waits for a batch in flight)."""
        target = self._seq
        try:
            self._bind()
            await self._drain(until=target)
        except Exception:  # pragma: no cover - _drain catches what sending raises
            log.exception("HttpBatchTracker failed to flush")

    def pending(self) -> int:
        """Events buffered plus events in flight."""
        return len(self._buffer) + self._in_flight

    async def close(self) -> None:
        """Flush for at most ``close_timeout``, stop the background task, close the client.

        What the collector has not taken by then (it is down, or slow) is given up:
        counted in ``abandoned`` and logged in one warning. A later ``emit`` starts over
        (a new task and client), so an engine may be reopened.
        """
        loop = self._bind()
        deadline = loop.time() + self.close_timeout_ms / 1000
        await self._before(deadline, self._drain(until=self._seq))
        task, self._task = self._task, None
        if task is not None and not task.done() and task.get_loop() is loop:
            lock = self._lock
            assert lock is not None
            # With the lock, the sender holds no batch: cancelling it cannot cut a POST
            # that the collector may have taken (it would be sent twice). Past the
            # deadline it is cut anyway; its batch goes back to the buffer, first in line.
            locked = await self._before(deadline, lock.acquire())
            try:
                task.cancel()
                with suppress(asyncio.CancelledError):
                    await task
            finally:
                if locked:
                    lock.release()
        if loop.time() < deadline:  # what was emitted while the first flush ran
            await self._before(deadline, self._drain(until=self._seq))
        self._abandon_the_rest()
        client, self._client = self._client, None
        if client is not None:
            try:
                await client.aclose()
            except Exception:  # pragma: no cover - closing a client should not fail
                log.exception("HttpBatchTracker failed to close its HTTP client")
        if self.dropped > self._warned_at:
            self._warn_dropped()

    @staticmethod
    async def _before(deadline: float, work: Any) -> bool:
        """Await ``work`` until the loop time ``deadline``: whether it finished by then."""
        try:
            async with asyncio.timeout_at(deadline):
                await work
        except TimeoutError:
            return False
        return True

    def _abandon_the_rest(self) -> None:
        """Give up what is still buffered when ``close`` stops waiting: count it, say so once."""
        left = len(self._buffer)
        if not left:
            return
        self._buffer.clear()
        self.abandoned += left
        log.warning(
            "HttpBatchTracker closed with %d events not delivered: %s did not take them "
            "within close_timeout (%d ms); %d abandoned in all",
            left,
            self._shown,
            self.close_timeout_ms,
            self.abandoned,
        )

    def _redacted(self, data: dict[str, Any]) -> dict[str, Any] | None:
        """``redact(data)``; an event it fails on is not sent (never sent unredacted)."""
        assert self.redact is not None
        try:
            result = self.redact(data)
        except Exception:
            log.exception("HttpBatchTracker redact failed on a %s event: not sent", data["type"])
            return None
        if result is not None and not isinstance(result, dict):
            log.error(
                "HttpBatchTracker redact returned %s for a %s event, not a dict or None: not sent",
                type(result).__name__,
                data["type"],
            )
            return None
        return result

    # -- background sending --------------------------------------------------------------

    def _count_dropped(self) -> None:
        self.dropped += 1
        # Warn at 1, 2, 4, 8, ... drops: every warning gives the count, and a long outage
        # logs a handful of lines, not one per event.
        if self.dropped & (self.dropped - 1) == 0:
            self._warn_dropped()

    def _warn_dropped(self) -> None:
        self._warned_at = self.dropped
        log.warning(
            "HttpBatchTracker buffer full (max_buffer=%d): dropped the oldest events, "
            "%d dropped so far (endpoint %s)",
            self.max_buffer,
            self.dropped,
            self._shown,
        )

    def _bind(self) -> asyncio.AbstractEventLoop:
        """Bind the task, the locks and the client to the running loop (new ones if it changed)."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            self._loop = loop
            self._task = None
            self._wake = asyncio.Event()
            self._lock = asyncio.Lock()
            self._client = None  # a client of another (closed) loop cannot be reused
        return loop

    def _kick(self) -> None:
        """Start the sender if a loop runs here; wake it when a batch is full."""
        try:
            loop = self._bind()
        except RuntimeError:  # no running loop: the events wait for one (or for flush)
            return
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._run(), name="durably-http-tracker")
        if len(self._buffer) >= self.batch_size and self._wake is not None:
            self._wake.set()

    async def _run(self) -> None:
        """Send full batches when woken, everything every ``flush_interval``."""
        interval = self.flush_interval_ms / 1000
        while True:
            wake = self._wake
            assert wake is not None
            timed_out = False
            try:
                await asyncio.wait_for(wake.wait(), interval)
            except TimeoutError:
                timed_out = True
            wake.clear()
            try:
                await self._drain(until=self._seq, full_only=not timed_out)
            except asyncio.CancelledError:
                raise
            except Exception:  # pragma: no cover - _drain catches what sending raises
                log.exception("HttpBatchTracker sender failed; it goes on")

    async def _drain(self, *, until: int, full_only: bool = False) -> None:
        """Send batches, in order, until every event numbered ``<= until`` has left the buffer."""
        lock = self._lock
        assert lock is not None
        while True:
            async with lock:
                buffer = self._buffer
                if not buffer or buffer[0][0] > until:
                    return
                if full_only and len(buffer) < self.batch_size:
                    return
                count = min(self.batch_size, len(buffer))
                items = [buffer.popleft() for _ in range(count)]
                self._in_flight = count
                try:
                    await self._send([data for _, data in items])
                except asyncio.CancelledError:
                    # Cancelled mid-send: the batch goes back first in line (at least once).
                    buffer.extendleft(reversed(items))
                    raise
                finally:
                    self._in_flight = 0

    async def _send(self, batch: list[dict[str, Any]]) -> None:
        """POST one batch, retrying what may succeed later; never raises (but cancellation)."""
        body = json.dumps({"events": batch}, default=str).encode()
        attempt = 0
        while True:
            attempt += 1
            self.attempts += 1
            try:
                response = await self._post(body)
            except _Retryable as e:
                if attempt > self.max_retries:
                    self.failed += len(batch)
                    log.error(
                        "HttpBatchTracker gave up a batch of %d events after %d attempts: %s",
                        len(batch),
                        attempt,
                        e,
                    )
                    return
                delay = add_jitter(calculate_backoff_delay(self.backoff, attempt))
                await asyncio.sleep(delay / 1000)
                continue
            except Exception as e:  # an unexpected failure (a bad URL, ...): not retried
                self.failed += len(batch)
                log.error("HttpBatchTracker dropped a batch of %d events: %r", len(batch), e)
                return
            if response.is_success:
                self.delivered += len(batch)
                return
            self.failed += len(batch)
            log.error(
                "HttpBatchTracker dropped a batch of %d events: %s answered %d %s",
                len(batch),
                self._shown,
                response.status_code,
                response.text[:200],
            )
            return

    async def _post(self, body: bytes) -> httpx.Response:
        if self._client is None:
            self._client = httpx.AsyncClient(
                headers={"content-type": "application/json", **self.headers},
                timeout=self.timeout_ms / 1000,
            )
        try:
            response = await self._client.post(self.endpoint, content=body)
        except (httpx.TransportError, OSError) as e:  # connection refused, timeouts, ...
            raise _Retryable(f"{type(e).__name__}: {e}") from e
        if response.status_code == 429 or response.status_code >= 500:
            raise _Retryable(f"{self._shown} answered {response.status_code}")
        return response
