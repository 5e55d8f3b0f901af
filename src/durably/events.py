"""Events emitted to trackers (each has a ``type`` such as ``"step.completed"``)."""

from durably.domain.events import *  # noqa: F403 - this module is the public face of that one
from durably.domain.events import __all__ as __all__
