"""The root container ``Durably``: configuration, the backend, the tracker, and the workflow layer.

One container is built per ``Engine``; the instance served varies per call through
``current_runtime`` (a context variable), so building the services of one alarm is a
few factory calls, not a new container.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

from dependency_injector import containers, providers

from durably.adapters.clock import SystemClock
from durably.adapters.memory import MemoryBackend
from durably.adapters.sqlite import SqliteHost
from durably.containers.workflow import WorkflowLayer
from durably.ports import InstanceRuntime
from durably.services.purge import PurgeConfig
from durably.services.recovery import RecoveryConfig
from durably.services.trackers import InMemoryTracker, LoggingTracker, NoopTracker

__all__ = ["Durably", "CURRENT_RUNTIME", "current_runtime", "build_root"]

CURRENT_RUNTIME: ContextVar[InstanceRuntime] = ContextVar("durably_current_runtime")


def current_runtime() -> InstanceRuntime:
    """The runtime of the instance being served in this context."""
    try:
        return CURRENT_RUNTIME.get()
    except LookupError:  # pragma: no cover - a programming error in the engine
        raise RuntimeError("no instance is being served in this context") from None


def current_storage() -> Any:
    """The storage of the instance being served (one call instead of three providers)."""
    return current_runtime().storage


def current_scheduler() -> Any:
    """The scheduler of the instance being served."""
    return current_runtime().scheduler


def current_clock() -> Any:
    """The runtime adapter (clock) of the instance being served."""
    return current_runtime().runtime


def current_inbox() -> Any:
    """The inbox of the instance being served."""
    return current_runtime().inbox


def current_lease() -> Any:
    """The lease hold of the execution serving the instance."""
    return current_runtime().lease


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
        ),
        otel=providers.Singleton(_otel_tracker),
    )
    recovery = providers.Object(RecoveryConfig())
    purge = providers.Object(PurgeConfig())

    runtime = providers.Callable(current_runtime)
    # The layer's ports of the instance served, each read from the context in one call
    # (the layer's own way, an attribute of its ``runtime``, takes three providers).
    instance_storage = providers.Callable(current_storage)
    instance_scheduler = providers.Callable(current_scheduler)
    instance_clock = providers.Callable(current_clock)
    instance_inbox = providers.Callable(current_inbox)
    instance_lease = providers.Callable(current_lease)
    layer = providers.Singleton(
        WorkflowLayer,
        runtime=runtime.provider,
        storage=instance_storage.provider,
        scheduler=instance_scheduler.provider,
        clock=instance_clock.provider,
        inbox=instance_inbox.provider,
        lease=instance_lease.provider,
        workflows=workflows.provider,
        tracker=tracker.provider,
        recovery=recovery.provider,
        purge=purge.provider,
    )


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
