"""The engine host: ``Engine``, its settings and the worker loop."""

from durably.engine.config import Lease, Purge, parse_backend_url
from durably.engine.engine import Engine
from durably.engine.records import StepRecord

__all__ = ["Engine", "Lease", "Purge", "StepRecord", "parse_backend_url"]
