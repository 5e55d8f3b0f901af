"""Lease owner ids (``host:pid:random``, any backend), and whether a local owner lives."""

from __future__ import annotations

import os
import socket

__all__ = ["owner_token", "local_owner_is_dead"]


def owner_token() -> str:
    """A lease owner id for this process."""
    return f"{socket.gethostname()}:{os.getpid()}:{os.urandom(4).hex()}"


def local_owner_is_dead(owner: str) -> bool:
    """Whether ``owner`` names a process of this host that no longer runs."""
    host, _, rest = owner.partition(":")
    if host != socket.gethostname():
        return False
    pid_text = rest.split(":", 1)[0]
    if not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False
