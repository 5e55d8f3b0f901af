"""``EngineFactory``: open engines on ``memory://`` and a virtual clock, each with its worker.

What the ``durably_engine`` fixture hands a test; usable without pytest too::

    async with EngineFactory() as make:
        engine = await make([order])
        await make.clock.advance("1 day")
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import suppress
from types import TracebackType
from typing import Any

from durably.adapters.memory import MemoryBackend
from durably.engine import Engine
from durably.engine.engine import Workflows
from durably.testing.clock import VirtualClock
from durably.testing.crash import crash_observer

__all__ = ["EngineFactory"]

log = logging.getLogger("durably.testing")

WORKER_STOP_S = 5.0
"""How long closing waits for a worker to stop after its engine closed."""


class EngineFactory:
    """Makes open ``memory://`` engines on one ``VirtualClock``, each with its worker
    running in the background; ``aclose`` (or leaving ``async with``) closes them all.

    Args:
        clock: the clock the engines share (a new ``VirtualClock`` when omitted).
    """

    def __init__(self, clock: VirtualClock | None = None) -> None:
        self.clock = clock if clock is not None else VirtualClock()
        self.engines: list[Engine] = []
        """The engines made, in order (closed ones are removed)."""
        self._workers: dict[Engine, tuple[asyncio.Event, asyncio.Task[None]]] = {}

    async def __call__(
        self,
        workflows: Workflows,
        **options: Any,
    ) -> Engine:
        """An open engine running ``workflows``; ``options`` are ``Engine``'s (``tracker=``,
        ``lease=``, ``recovery=``, ``purge=``, ...), except ``backend`` and ``clock``."""
        for fixed in ("backend", "clock"):
            if fixed in options:
                raise TypeError(
                    f"durably_engine sets {fixed}= itself (memory://, the test's virtual clock)"
                )
        engine = Engine(workflows, backend="memory://", clock=self.clock, **options)
        await engine.open()
        backend = engine.host
        assert isinstance(backend, MemoryBackend)
        backend.commit_observers.append(crash_observer(backend, engine.owner))
        self.clock.attach(engine)
        stop = asyncio.Event()
        worker = asyncio.get_running_loop().create_task(
            engine.run_worker(stop=stop), name=f"durably worker {engine.owner}"
        )
        self._workers[engine] = (stop, worker)
        self.engines.append(engine)
        await asyncio.sleep(0)  # the worker starts now, while its engine is surely open
        return engine

    async def aclose(self) -> None:
        """Close every engine made (the last made first) and stop its worker.

        A worker that failed makes this raise its error, once every engine is closed.
        """
        failures: list[BaseException] = []
        # Nothing will move the clock any more: steps waiting for their timeout end now.
        self.clock.expire_timeouts()
        for engine in reversed(self.engines):
            stop, worker = self._workers.pop(engine)
            stop.set()
            try:
                await engine.close()
            except Exception as e:  # close the others anyway
                failures.append(e)
            self.clock.detach(engine)
            done, _ = await asyncio.wait({worker}, timeout=WORKER_STOP_S)
            if not done:
                log.warning("a worker did not stop within %s s; it is cancelled", WORKER_STOP_S)
                worker.cancel()
                with suppress(asyncio.CancelledError):
                    await worker
            elif not worker.cancelled() and worker.exception() is not None:
                failures.append(worker.exception())  # type: ignore[arg-type]
        self.engines.clear()
        if failures:
            raise failures[0]

    async def __aenter__(self) -> EngineFactory:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
