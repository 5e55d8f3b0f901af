"""Trackers: where events go."""

from durably.ports.tracker import Tracker
from durably.services.trackers import InMemoryTracker, LoggingTracker, NoopTracker

__all__ = ["Tracker", "NoopTracker", "InMemoryTracker", "LoggingTracker"]
