"""The root container ``Durably``: configuration, the backend, the tracker, and the workflow layer.

One container is built per ``Engine``; the services of an instance are one call of its
``instance`` provider with the instance's runtime (``wire_instance``), not a new
container.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from dependency_injector import containers, providers

from durably.adapters.clock import SystemClock
from durably.adapters.memory import MemoryBackend
from durably.adapters.sqlite import SqliteHost
from durably.containers.instance import wire_instance
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


def _postgres_host(dsn: str, *, schema: str | None, clock: Any, read_only: bool = False) -> Any:
    """A ``PostgresHost`` (imported here: psycopg is the optional extra ``durably[postgres]``)."""
    try:
        from durably.adapters.postgres import PostgresHost
    except ImportError as e:  # pragma: no cover - depends on the installation
        raise ImportError(
            "the PostgreSQL backend needs psycopg: pip install 'durably[postgres]'"
        ) from e
    return PostgresHost(dsn, schema=schema or "durably", clock=clock, read_only=read_only)


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
    """Root container: ``config`` (a profile) picks the backend and the tracker."""

    config = providers.Configuration(strict=False)
    workflows: providers.Dependency[Any] = providers.Dependency()

    clock = providers.Singleton(SystemClock)
    backend = providers.Selector(
        config.backend.kind,
        memory=providers.Singleton(MemoryBackend, clock=clock),
        sqlite=providers.Singleton(
            SqliteHost,
            config.backend.path,
            synchronous=config.backend.synchronous,
            clock=clock,
            read_only=config.backend.read_only.as_(bool),
        ),
        postgres=providers.Singleton(
            _postgres_host,
            config.backend.dsn,
            schema=config.backend.schema,
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
    recovery = providers.Object(RecoveryConfig())
    purge = providers.Object(PurgeConfig())

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
    config: dict[str, Any],
    *,
    tracker: object | None = None,
    clock: object | None = None,
    recovery: RecoveryConfig | None = None,
    purge: PurgeConfig | None = None,
) -> Any:
    """A ``Durably`` container over ``config``, with the given objects in place of defaults."""
    container = Durably(workflows=workflows)
    container.config.from_dict(config)
    if tracker is not None:
        container.tracker.override(providers.Object(tracker))
    if clock is not None:
        container.clock.override(providers.Object(clock))
    if recovery is not None:
        container.recovery.override(providers.Object(recovery))
    if purge is not None:
        container.purge.override(providers.Object(purge))
    container.check_dependencies()
    return container
