"""A collector for the ``HttpBatchTracker`` tests: a real HTTP server on 127.0.0.1, and helpers.

The server is a small HTTP/1.1 server on ``asyncio.start_server`` (keep-alive, bodies by
``Content-Length``) whose answers the tests choose: 200, a 500/429/400 for the first
requests, or slow answers.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Callable
from typing import Any

import attrs

import durably
from durably.adapters.http_tracker import HttpBatchTracker
from durably.domain.backoff import ConstantBackoff
from durably.domain.events import StepStarted

FAST_RETRY = ConstantBackoff(delay_ms=2)
HTTP_LOGGER = "durably.trackers.http"


@attrs.define
class Request:
    """One request the server answered."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    status: int

    def events(self) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = json.loads(self.body)["events"]
        return events


@attrs.define
class CollectorServer:
    """A real HTTP server recording every request; ``statuses`` answers the first ones."""

    statuses: list[int] = attrs.field(factory=list)
    delay: float = 0.0
    requests: list[Request] = attrs.field(factory=list)
    connections: int = 0
    port: int = 0
    _server: asyncio.Server | None = None
    _handlers: dict[asyncio.Task[None], asyncio.StreamWriter] = attrs.field(factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1/events"

    @property
    def accepted(self) -> list[Request]:
        """The requests answered 2xx: the batches the collector took."""
        return [r for r in self.requests if 200 <= r.status < 300]

    def events(self) -> list[dict[str, Any]]:
        """Every event accepted, in arrival order."""
        return [e for r in self.accepted for e in r.events()]

    async def start(self, port: int = 0) -> CollectorServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            # Keep-alive connections a client left open: end them, and their handlers.
            for writer in self._handlers.values():
                writer.close()
            await asyncio.gather(*self._handlers, return_exceptions=True)
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        task = asyncio.current_task()
        assert task is not None
        self._handlers[task] = writer
        try:
            while True:
                line = await reader.readline()
                if not line:
                    return
                method, path, _version = line.decode("latin-1").split(" ", 2)
                headers: dict[str, str] = {}
                while True:
                    header = await reader.readline()
                    if header in (b"\r\n", b"\n", b""):
                        break
                    name, _, value = header.decode("latin-1").partition(":")
                    headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                status = self.statuses.pop(0) if self.statuses else 200
                if self.delay:
                    await asyncio.sleep(self.delay)
                self.requests.append(Request(method, path, headers, body, status))
                payload = b'{"ok": true}' if status < 300 else b'{"error": "no"}'
                writer.write(
                    f"HTTP/1.1 {status} Status\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(payload)}\r\n\r\n".encode()
                    + payload
                )
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            self._handlers.pop(task, None)
            writer.close()


def free_port() -> int:
    """A port with nothing listening on it (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def event(i: int, workflow_id: str = "wf-1") -> StepStarted:
    """The ``i``-th test event (its step name carries ``i``)."""
    return StepStarted(
        event_id=f"ev-{i}",
        timestamp=1_000 + i,
        workflow_id=workflow_id,
        workflow_name="order",
        execution_id="exec-1",
        step_name=f"s{i}",
        attempt=1,
    )


def ids(events: list[dict[str, Any]]) -> list[str]:
    return [e["event_id"] for e in events]


def expected_ids(numbers: range) -> list[str]:
    return [f"ev-{i}" for i in numbers]


async def until(condition: Callable[[], bool], limit: float = 20.0) -> None:
    """Wait until ``condition()`` holds (a generous limit only stops a hung test)."""

    async with asyncio.timeout(limit):
        while True:
            if condition():
                return
            await asyncio.sleep(0.005)


def tracker_for(url: str, **options: Any) -> HttpBatchTracker:
    settings: dict[str, Any] = {
        "env": "staging",
        "service_key": "svc-42",
        "flush_interval": "1h",  # only the batch size and flush() send, unless a test says
        "backoff": FAST_RETRY,
    }
    settings.update(options)
    return HttpBatchTracker(url, **settings)


def shop_workflow() -> durably.WorkflowDefinition[Any, Any]:
    @durably.workflow(name="shop")
    async def shop(order: str) -> str:
        a = await durably.step("reserve", lambda: f"reserved {order}")
        b = await durably.step("charge", lambda: "charged")
        c = await durably.step("ship", lambda: "shipped")
        return f"{a}, {b}, {c}"

    return shop
