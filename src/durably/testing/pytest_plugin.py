"""durably's pytest plugin (entry point ``pytest11``): fixtures for testing workflows.

- ``durably_clock``: the test's ``VirtualClock``;
- ``durably_engine``: an async factory, ``engine = await durably_engine([wf, ...])``, of
  open ``memory://`` engines on that clock, each with its worker running, all closed
  after the test (also when it fails).

``durably_engine`` is an async fixture of pytest-asyncio (auto or strict mode), in the
test's own event loop: function scope, and the loop scope that
``asyncio_default_fixture_loop_scope`` sets (keep it the same as your tests'). Disable
the plugin with ``-p no:durably``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from durably.testing import EngineFactory, VirtualClock

try:
    import pytest_asyncio
except ImportError:  # the plugin loads wherever durably is installed: never break pytest
    pytest_asyncio = None  # type: ignore[assignment]

__all__ = ["durably_clock", "durably_engine"]


@pytest.fixture
def durably_clock() -> VirtualClock:
    """The test's virtual clock: ``await durably_clock.advance("1h")``, ``now()``."""
    from durably.testing import VirtualClock

    return VirtualClock()


async def _engines(durably_clock: VirtualClock) -> AsyncIterator[EngineFactory]:
    """An async factory of open engines on ``memory://`` and ``durably_clock``."""
    from durably.testing import EngineFactory

    async with EngineFactory(durably_clock) as factory:
        yield factory


def _no_asyncio() -> Any:
    pytest.fail("durably_engine is an async fixture: install pytest-asyncio to use it")


durably_engine: Any = (
    pytest_asyncio.fixture(_engines, name="durably_engine")
    if pytest_asyncio is not None
    else pytest.fixture(_no_asyncio, name="durably_engine")
)
