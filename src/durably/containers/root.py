"""The root container ``Durably``: configuration, the backend, the tracker, and the workflow layer.

One container is built per ``Engine``; the services of an instance are one call of its
``instance`` provider with the instance's runtime (``wire_instance``), not a new
container. Every setting is read from ``config``: the built-in ``DEFAULTS``, then the
profile (``read_profile``), then the engine's keyword arguments, merged in that order.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from operator import attrgetter
from pathlib import Path
from typing import Any, Literal

from dependency_injector import containers, providers

from durably.adapters.clock import SystemClock
from durably.adapters.memory import MemoryBackend
from durably.adapters.sqlite import SqliteHost
from durably.containers.instance import wire_instance
from durably.containers.profile import DEFAULTS, read_profile
from durably.domain.backend_url import BackendUrl, parse_backend_url
from durably.domain.durations import Duration, parse_duration
from durably.domain.lease import Lease
from durably.services.context import ActiveExecutions
from durably.services.purge import PurgeConfig
from durably.services.recovery import RecoveryConfig
from durably.services.registry import WorkflowRegistry
from durably.services.trackers import InMemoryTracker, LoggingTracker, NoopTracker

__all__ = ["Durably", "build_root"]


async def _opened(host: Any) -> AsyncIterator[Any]:
    """The backend, open for as long as the container's resources are."""
    await host.open()
    try:
        yield host
    finally:
        await host.close()


_SYNCHRONOUS: dict[str, Literal["FULL", "NORMAL"]] = {"FULL": "FULL", "NORMAL": "NORMAL"}


def _path_of(url: BackendUrl) -> str:
    if url.path is None:  # pragma: no cover - parse_backend_url gives every SQL URL one
        raise ValueError(f"a {url.kind} backend URL needs a database")
    return url.path


def _sqlite_host(
    url: BackendUrl, *, synchronous: str | None, clock: Any, read_only: bool
) -> SqliteHost:
    """A ``SqliteHost``; ``synchronous`` (the setting, else the URL's ``?synchronous=``)."""
    sync = (synchronous or url.options.get("synchronous", "FULL")).upper()
    mode = _SYNCHRONOUS.get(sync)
    if mode is None:
        raise ValueError(f"synchronous must be FULL or NORMAL, got {sync!r}")
    return SqliteHost(_path_of(url), synchronous=mode, clock=clock, read_only=read_only)


def _postgres_host(url: BackendUrl, *, clock: Any, read_only: bool) -> Any:
    """A ``PostgresHost`` (imported here: psycopg is the optional extra ``durably[postgres]``)."""
    try:
        from durably.adapters.postgres import PostgresHost
    except ImportError as e:  # pragma: no cover - depends on the installation
        raise ImportError(
            "the PostgreSQL backend needs psycopg: pip install 'durably[postgres]'"
        ) from e
    schema = url.options.get("schema", "durably")
    return PostgresHost(_path_of(url), schema=schema, clock=clock, read_only=read_only)


def _purge(enabled: bool, delay: Duration) -> PurgeConfig:
    """The purge settings of the services."""
    return PurgeConfig(enabled=enabled, delay_ms=parse_duration(delay, field="purge.delay"))


def _http_tracker(
    endpoint: str | None,
    *,
    env: str | None,
    service_key: str | None,
    headers: dict[str, str] | None,
    batch_size: int | None,
    flush_interval: Any,
    close_timeout: Any = None,
) -> Any:
    """An ``HttpBatchTracker`` from the profile's ``tracker.*`` settings."""
    from durably.adapters.http_tracker import HttpBatchTracker

    if not endpoint:
        raise ValueError("tracker.kind http needs tracker.endpoint (the collector's URL)")
    return HttpBatchTracker(
        endpoint,
        env=env or "default",
        service_key=service_key or "",
        headers=headers,
        batch_size=batch_size if batch_size is not None else 100,
        flush_interval=flush_interval if flush_interval is not None else "5s",
        close_timeout=close_timeout if close_timeout is not None else "5s",
    )


def _otel_tracker() -> Any:
    """An ``OtelTracker`` on the global tracer provider (extra ``durably[otel]``)."""
    try:
        from durably.adapters.otel_tracker import OtelTracker
    except ImportError as e:  # pragma: no cover - depends on the installation
        raise ImportError(
            "the otel tracker needs OpenTelemetry: pip install 'durably[otel]'"
        ) from e
    return OtelTracker()


class Durably(containers.DeclarativeContainer):
    """Root container: ``config`` (``DEFAULTS``, a profile, the engine's options) picks the
    backend and the tracker and gives every setting."""

    config = providers.Configuration(strict=False)
    workflows: providers.Dependency[Any] = providers.Dependency()

    clock = providers.Singleton(SystemClock)
    backend_url = providers.Singleton(parse_backend_url, config.backend.url)
    backend = providers.Selector(
        providers.Callable(attrgetter("kind"), backend_url),
        memory=providers.Singleton(MemoryBackend, clock=clock),
        sqlite=providers.Singleton(
            _sqlite_host,
            backend_url,
            synchronous=config.backend.synchronous,
            clock=clock,
            read_only=config.backend.read_only.as_(bool),
        ),
        postgres=providers.Singleton(
            _postgres_host,
            backend_url,
            clock=clock,
            read_only=config.backend.read_only.as_(bool),
        ),
    )
    tracker = providers.Selector(
        config.tracker.kind,
        noop=providers.Singleton(NoopTracker),
        logging=providers.Singleton(LoggingTracker),
        memory=providers.Singleton(InMemoryTracker),
        http=providers.Singleton(
            _http_tracker,
            config.tracker.endpoint,
            env=config.tracker.env,
            service_key=config.tracker.service_key,
            headers=config.tracker.headers,
            batch_size=config.tracker.batch_size,
            flush_interval=config.tracker.flush_interval,
            close_timeout=config.tracker.close_timeout,
        ),
        otel=providers.Singleton(_otel_tracker),
    )
    lease = providers.Singleton(Lease, config.lease.duration, config.lease.renew_every)
    recovery = providers.Singleton(
        RecoveryConfig,
        stale_threshold_ms=config.recovery.stale_threshold_ms,
        max_recovery_attempts=config.recovery.max_recovery_attempts,
        recovery_delay_ms=config.recovery.recovery_delay_ms,
    )
    purge = providers.Singleton(_purge, config.purge.enabled.as_(bool), config.purge.delay)
    poll_interval_ms = providers.Singleton(
        parse_duration, config.worker.poll_interval, field="poll_interval"
    )

    registry = providers.Singleton(WorkflowRegistry, workflows)
    executions = providers.Singleton(ActiveExecutions)
    # The services of one instance: one call per instance served, the runtime given.
    instance = providers.Factory(
        wire_instance,
        registry=registry,
        tracker=tracker,
        recovery=recovery,
        purge=purge,
        executions=executions,
    )
    # The backend's lifecycle: opened by ``init_resources``, closed by
    # ``shutdown_resources`` (the engine's open and close).
    host = providers.Resource(_opened, backend)


def build_root(
    workflows: Any,
    settings: Mapping[str, Any] | None = None,
    *,
    profile: str | Path | Mapping[str, Any] | None = None,
    tracker: object | None = None,
    clock: object | None = None,
) -> Any:
    """A ``Durably`` container whose ``config`` is ``DEFAULTS``, then the ``profile`` (a
    path or a shipped profile's name, read and checked here: ``ProfileError``; or what
    ``read_profile`` gave), then ``settings`` (the profile's shape, such as
    ``{"backend": {"url": "memory://"}}``); ``tracker`` and ``clock`` are objects in
    place of the configured ones."""
    container = Durably(workflows=workflows)
    # Copies: the configuration's merge may share or change the dicts it is given.
    container.config.from_dict({section: dict(values) for section, values in DEFAULTS.items()})
    if isinstance(profile, str | Path):
        profile = read_profile(profile)
    for layer in (profile, settings):
        if layer:
            container.config.from_dict({section: dict(values) for section, values in layer.items()})
    if tracker is not None:
        container.tracker.override(providers.Object(tracker))
    if clock is not None:
        container.clock.override(providers.Object(clock))
    container.check_dependencies()
    return container
