"""What the ``durably`` command runs on: the app's workflows, the store, checked input."""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import logging
import os
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, get_args

from returns.result import Failure

from durably.domain.durations import parse_duration
from durably.domain.json_fit import json_misfit
from durably.domain.redaction import mask_passwords
from durably.domain.serialization import converter
from durably.domain.status import StatusTag
from durably.engine import Engine
from durably.services.definition import WorkflowDefinition

__all__ = [
    "PROG",
    "DEFAULT_BACKEND",
    "STATUS_TAGS",
    "CliError",
    "make_engine",
    "worker_concurrency",
    "check_input",
    "check_queue",
    "redacted_logs",
]

PROG = "durably"
DEFAULT_BACKEND = "sqlite:///durably.db"
STATUS_TAGS: tuple[str, ...] = get_args(StatusTag)
Definitions = list[WorkflowDefinition[Any, Any]]


class CliError(Exception):
    """A failure shown as one line on stderr, with the exit code."""

    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code


def _import_app(spec: str) -> tuple[Definitions, Engine | None]:
    """The workflows named by ``module:attribute`` (and the Engine when it names one)."""
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise CliError(f"--app {spec!r} must be module:attribute (e.g. myapp.flows:workflows)")
    if os.getcwd() not in sys.path:  # as `python -m` does: the app lives beside the user
        sys.path.insert(0, os.getcwd())
    try:
        target: Any = importlib.import_module(module_name)
    except ImportError as e:
        raise CliError(f"cannot import {module_name!r} for --app: {e}") from e
    for part in attribute.split("."):
        if not hasattr(target, part):
            raise CliError(f"module {module_name!r} has no attribute {attribute!r}")
        target = getattr(target, part)
    if isinstance(target, Engine):
        names = target.registry.list()
        return [target.registry.get(name).unwrap() for name in names], target
    if isinstance(target, WorkflowDefinition):
        return [target], None
    values = list(target.values()) if isinstance(target, Mapping) else target
    if isinstance(values, list | tuple | set) and all(
        isinstance(d, WorkflowDefinition) for d in values
    ):
        return list(values), None
    raise CliError(
        f"{spec} is a {type(target).__name__}: expected an Engine, a workflow "
        "or a list of workflows (decorated with @durably.workflow)"
    )


def _option(args: argparse.Namespace, name: str, env: str) -> str | None:
    return getattr(args, name, None) or os.environ.get(env) or None


def make_engine(args: argparse.Namespace, *, read_only: bool = False) -> Engine:
    """The engine over the chosen store, hosting the app's workflows.

    When the app names an ``Engine``, the command's engine keeps every option of it
    (recovery, purge, tracker, lease, ...); the command line replaces only the store:
    ``--backend`` (or ``DURABLY_BACKEND``) the backend, ``--profile`` the profile, whose
    backend then applies unless ``--backend`` is given too. ``read_only``: the store
    must exist, and is neither created nor migrated.
    """
    spec = getattr(args, "worker_app", None) or _option(args, "app", "DURABLY_APP")
    workflows: Definitions = []
    app_engine = None
    if spec is not None:
        workflows, app_engine = _import_app(spec)
    elif args.command in ("start", "queue", "worker", "fork", "replay"):
        raise CliError(
            f"`{PROG} {args.command}` needs the workflows: pass --app module:attribute"
            " (or set DURABLY_APP)"
        )
    profile = getattr(args, "profile", None)
    backend = _option(args, "backend", "DURABLY_BACKEND")
    chosen: dict[str, Any] = {"read_only": read_only}
    if profile is not None:
        chosen.update(profile=profile, backend=backend)  # no --backend: the profile's
    elif backend is not None:
        chosen.update(backend=backend)
    try:
        if app_engine is not None:
            return app_engine.with_options(**chosen)
        return Engine(workflows, **chosen)
    except (ValueError, TypeError, ImportError) as e:
        raise CliError(" ".join(str(e).split())) from e


def worker_concurrency(args: argparse.Namespace, engine: Engine) -> int:
    """How many instances ``durably worker`` runs at once: ``--concurrency``, else the
    engine's configuration (the profile's ``worker.concurrency``, 100 by default)."""
    if args.concurrency is not None:
        return int(args.concurrency)
    return engine.worker_concurrency


def check_input(args: argparse.Namespace, engine: Engine) -> None:
    """Refuse bad input before the store is opened (and, for SQLite, created)."""
    if args.command == "worker" and args.queues is not None:
        for name in args.queues:
            check_queue(name, engine)
    elif args.command in ("start", "queue"):
        if args.command == "queue":
            _check_placement(args, engine)
        try:
            args.input_value = json.loads(args.input if args.input is not None else "null")
        except json.JSONDecodeError as e:
            raise CliError(f"--input is not valid JSON: {e}") from e
        found = engine.registry.get(args.name)
        if isinstance(found, Failure):
            raise CliError(found.failure().message)
        definition = found.unwrap()
        expected = definition.input_type
        # A mistyped input is refused here, instead of failing the new instance: checked
        # strictly first (the converter would turn 5 into "5"), then converted.
        misfit = json_misfit(args.input_value, expected, path=_input_name(definition))
        if misfit is not None:
            given = "" if args.input is not None else " (no --input given: it is null)"
            raise CliError(f"--input does not fit workflow {args.name!r}: {misfit}{given}")
        try:
            args.input_value = converter.structure(args.input_value, expected)
        except Exception as e:
            leaves = e.exceptions if isinstance(e, ExceptionGroup) else (e,)  # cattrs' groups
            detail = "; ".join(f"{type(x).__name__}: {x}" for x in leaves)
            raise CliError(f"--input does not fit workflow {args.name!r}: {detail}") from e
    elif args.command == "send":
        try:
            args.payload_value = json.loads(args.payload if args.payload is not None else "null")
        except json.JSONDecodeError as e:
            raise CliError(f"--payload is not valid JSON: {e}") from e
        if not args.name:
            raise CliError("the event's NAME must not be empty")
        if args.event_id is not None and not args.event_id:
            raise CliError("--event-id must not be empty")
    elif args.command == "get-event" and args.wait is not None:
        try:
            parse_duration(args.wait, field="--wait")
        except ValueError as e:
            raise CliError(str(e)) from e
    elif args.command == "purge" and args.before is not None:
        try:
            parse_duration(args.before, field="--before")
        except ValueError as e:
            raise CliError(str(e)) from e
    elif args.command == "schedules" and (args.action is None) != (args.id is None):
        raise CliError(
            "`durably schedules` lists them; `durably schedules pause|resume|trigger ID` "
            "acts on one: give both ACTION and ID, or neither"
        )
    elif args.command == "list" and args.status is not None:
        tags = {tag.lower(): tag for tag in STATUS_TAGS}
        if args.status.lower() not in tags:
            raise CliError(f"unknown status {args.status!r} (one of {', '.join(STATUS_TAGS)})")
        args.status = tags[args.status.lower()]


def check_queue(name: str, engine: Engine) -> None:
    """Refuse a queue the app does not declare (``Engine(queues=...)``), naming those it does."""
    if name not in engine.queues:
        known = ", ".join(engine.queues)
        raise CliError(f"unknown queue {name!r} (the app's queues: {known})")


def _check_placement(args: argparse.Namespace, engine: Engine) -> None:
    """``durably queue``'s ``--queue``, ``--partition-key``, ``--dedupe-id``, ``--delay``."""
    check_queue(args.queue, engine)
    for option, value in (("--partition-key", args.partition_key), ("--dedupe-id", args.dedupe_id)):
        if value is not None and not value:
            raise CliError(f"{option} must not be empty")
    if args.delay is not None:
        try:
            parse_duration(args.delay, field="--delay")
        except ValueError as e:
            raise CliError(str(e)) from e


def _input_name(definition: WorkflowDefinition[Any, Any]) -> str:
    """The name of the body's input parameter (how errors name the input)."""
    for parameter in inspect.signature(definition.fn).parameters.values():
        if parameter.kind in (parameter.POSITIONAL_ONLY, parameter.POSITIONAL_OR_KEYWORD):
            return parameter.name
    return "input"


class _Redacting(logging.Filter):
    """Masks passwords in every record a handler writes (message and traceback)."""

    def __init__(self, secrets: set[str]) -> None:
        super().__init__()
        self.secrets = secrets

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = mask_passwords(record.getMessage(), self.secrets)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask_passwords(record.exc_text, self.secrets)
        if record.stack_info:
            record.stack_info = mask_passwords(record.stack_info, self.secrets)
        return True


@contextmanager
def redacted_logs(secrets: set[str]) -> Iterator[None]:
    """While the command runs, no log line shows a password: every handler of the root
    logger masks them (one on stderr, for warnings and errors, when there is none)."""
    root = logging.getLogger()
    added: logging.Handler | None = None
    if not root.handlers:
        added = logging.StreamHandler(sys.stderr)
        added.setLevel(logging.WARNING)
        added.setFormatter(logging.Formatter(f"{PROG}: %(levelname)s: %(name)s: %(message)s"))
        root.addHandler(added)
    redacting = _Redacting(secrets)
    handlers = list(root.handlers)
    for handler in handlers:
        handler.addFilter(redacting)
    try:
        yield
    finally:
        for handler in handlers:
            handler.removeFilter(redacting)
        if added is not None:
            root.removeHandler(added)
