"""Trackers: where events go.

``OtelTracker`` and ``MetricsTracker`` need the extra ``durably[otel]``; they are
imported on first use, so this module works without it.
"""

from typing import TYPE_CHECKING, Any

from durably.adapters.composite_tracker import CompositeTracker
from durably.adapters.http_tracker import HttpBatchTracker
from durably.ports.tracker import Tracker
from durably.services.trackers import InMemoryTracker, LoggingTracker, NoopTracker

if TYPE_CHECKING:  # the optional extra is imported on first use (see __getattr__)
    from durably.adapters.metrics_tracker import MetricsTracker
    from durably.adapters.otel_tracker import OtelTracker

__all__ = [
    "Tracker",
    "NoopTracker",
    "InMemoryTracker",
    "LoggingTracker",
    "HttpBatchTracker",
    "CompositeTracker",
    "OtelTracker",
    "MetricsTracker",
]


def __getattr__(name: str) -> Any:
    if name == "OtelTracker":
        from durably.adapters.otel_tracker import OtelTracker

        return OtelTracker
    if name == "MetricsTracker":
        from durably.adapters.metrics_tracker import MetricsTracker

        return MetricsTracker
    raise AttributeError(f"module 'durably.trackers' has no attribute {name!r}")
