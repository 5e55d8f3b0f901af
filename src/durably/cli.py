"""The ``durably`` command: run a worker, start workflows, inspect and manage instances.

Errors are one line on stderr; exit 2 for bad usage or input (unknown workflow or id),
1 for a workflow that failed or was cancelled, or a backend that failed.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import os
import re
import signal
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn, get_args

import yaml
from returns.result import Failure, Result, Success
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from durably import cli_format as fmt
from durably.domain.durations import parse_duration
from durably.domain.errors import (
    DurablyError,
    InstanceNotFoundError,
    ResultTimeoutError,
    SerializationError,
    WorkflowCancelledError,
    WorkflowFailedError,
    WorkflowNotFoundError,
)
from durably.domain.serialization import converter
from durably.domain.status import Cancelled, Failed, StatusTag, WorkflowStatus
from durably.engine import Engine
from durably.services.definition import WorkflowDefinition
from durably.services.types import WorkflowStatusResult

__all__ = ["main", "build_parser"]

PROG = "durably"
DEFAULT_BACKEND = "sqlite:///durably.db"
STATUS_TAGS: tuple[str, ...] = get_args(StatusTag)
Definitions = list[WorkflowDefinition[Any, Any]]


class CliError(Exception):
    """A failure shown as one line on stderr, with the exit code."""

    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line, like every other error."""

    def error(self, message: str) -> NoReturn:
        raise CliError(f"{message} (see `{self.prog} --help`)", 2)


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 1")
    return int(text)


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``durably`` and its subcommands."""
    common = _Parser(add_help=False)
    # SUPPRESS: an option given before the subcommand is not reset by the subcommand's default.
    common.add_argument(
        "--app",
        default=argparse.SUPPRESS,
        metavar="MODULE:ATTR",
        help="the workflows: a list of workflows or an Engine (env DURABLY_APP)",
    )
    store = common.add_mutually_exclusive_group()
    store.add_argument(
        "--profile", default=argparse.SUPPRESS, metavar="YAML", help="a containers/*.yaml profile"
    )
    store.add_argument(
        "--backend",
        default=argparse.SUPPRESS,
        metavar="URL",
        help=f"memory://, sqlite:///path.db, postgresql://... (env DURABLY_BACKEND; "
        f"default {DEFAULT_BACKEND})",
    )
    parser = _Parser(prog=PROG, parents=[common], description="Durable workflows for Python.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, text: str) -> argparse.ArgumentParser:
        sub: argparse.ArgumentParser = commands.add_parser(
            name, parents=[common], help=text, description=text
        )
        return sub

    worker = command("worker", "fire due alarms until SIGINT/SIGTERM")
    worker.add_argument("worker_app", nargs="?", metavar="APP", help="module:attribute")
    worker.add_argument("--concurrency", type=_positive, help="instances at once (default 100)")
    start = command("start", "start a workflow and run it here until it completes or pauses")
    start.add_argument("name", help="the workflow's name")
    start.add_argument("--input", default="null", metavar="JSON", help="its input, as JSON")
    start.add_argument("--id", help="the instance id (default: a new UUID)")
    start.add_argument("--wait", action="store_true", help="keep running it until it ends")
    command("status", "an instance's status").add_argument("id")
    listing = command("list", "instances, most recently updated first")
    listing.add_argument("--status", help="one of " + ", ".join(STATUS_TAGS))
    listing.add_argument("--workflow", help="a workflow name")
    listing.add_argument("--limit", type=_positive, default=100, help="at most N (default 100)")
    command("show", "an instance's status and step timeline").add_argument("id")
    cancel = command("cancel", "cancel an instance")
    cancel.add_argument("id")
    cancel.add_argument("--reason", help="recorded with the cancellation")
    purge = command("purge", "delete the steps of finished instances (tombstones remain)")
    purge.add_argument(
        "--before", default="0", metavar="AGE", help="only those finished AGE ago (e.g. 7d)"
    )
    return parser


# -- choosing the workflows and the store ------------------------------------------------


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


def _make_engine(args: argparse.Namespace) -> Engine:
    """The engine over the chosen store, hosting the app's workflows."""
    spec = getattr(args, "worker_app", None) or _option(args, "app", "DURABLY_APP")
    workflows: Definitions = []
    app_engine = None
    if spec is not None:
        workflows, app_engine = _import_app(spec)
    elif args.command in ("start", "worker"):
        raise CliError(
            f"`{PROG} {args.command}` needs the workflows: pass --app module:attribute"
            " (or set DURABLY_APP)"
        )
    profile = getattr(args, "profile", None)
    try:
        if profile is not None:
            return Engine.from_profile(profile, workflows)
        backend = _option(args, "backend", "DURABLY_BACKEND")
        if backend is None and app_engine is not None:
            return Engine(
                workflows,
                backend=app_engine.backend_url,
                lease=app_engine.lease,
                poll_interval=app_engine.poll_interval_ms,
            )
        return Engine(workflows, backend=backend or DEFAULT_BACKEND)
    except OSError as e:
        raise CliError(f"cannot read profile {profile}: {e.strerror or e}") from e
    except (ValueError, TypeError, ImportError, yaml.YAMLError) as e:
        raise CliError(" ".join(str(e).split())) from e


def _profile_concurrency(args: argparse.Namespace) -> int:
    if args.concurrency is not None:
        return int(args.concurrency)
    profile = getattr(args, "profile", None)
    data: Any = yaml.safe_load(Path(profile).read_text(encoding="utf-8")) if profile else None
    worker = data.get("worker") if isinstance(data, dict) else None
    return int(worker.get("concurrency", 100)) if isinstance(worker, dict) else 100


def _check(args: argparse.Namespace, engine: Engine) -> None:
    """Refuse bad input before the store is opened (and, for SQLite, created)."""
    if args.command == "start":
        try:
            args.input_value = json.loads(args.input)
        except json.JSONDecodeError as e:
            raise CliError(f"--input is not valid JSON: {e}") from e
        found = engine.registry.get(args.name)
        if isinstance(found, Failure):
            raise CliError(found.failure().message)
        expected = found.unwrap().input_type
        try:  # a mistyped input is refused here, instead of failing the new instance
            args.input_value = converter.structure(args.input_value, expected)
        except Exception as e:
            leaves = e.exceptions if isinstance(e, ExceptionGroup) else (e,)  # cattrs' groups
            detail = "; ".join(f"{type(x).__name__}: {x}" for x in leaves)
            raise CliError(f"--input does not fit workflow {args.name!r}: {detail}") from e
    elif args.command == "purge":
        try:
            parse_duration(args.before, field="--before")
        except ValueError as e:
            raise CliError(str(e)) from e
    elif args.command == "list" and args.status is not None:
        tags = {tag.lower(): tag for tag in STATUS_TAGS}
        if args.status.lower() not in tags:
            raise CliError(f"unknown status {args.status!r} (one of {', '.join(STATUS_TAGS)})")
        args.status = tags[args.status.lower()]


# -- the commands --------------------------------------------------------------------------


def _not_found(instance_id: str) -> CliError:
    return CliError(InstanceNotFoundError(instance_id).message, 2)


def _ended_badly(instance_id: str, status: WorkflowStatus | None) -> CliError | None:
    if isinstance(status, Failed):
        return CliError(WorkflowFailedError(instance_id, status.error).message, 1)
    if isinstance(status, Cancelled):
        return CliError(WorkflowCancelledError(instance_id, status.reason).message, 1)
    return None


async def _status_of(engine: Engine, instance_id: str) -> WorkflowStatusResult:
    found = await engine.status(instance_id)
    if isinstance(found, Failure):
        raise CliError(str(found.failure()), 1)
    result = found.unwrap()
    if result.status is None:
        raise _not_found(instance_id)
    return result


async def _wait(engine: Engine, instance_id: str, err: Console) -> Result[Any, DurablyError]:
    """Run due alarms here (a worker in this process) until the instance ends."""
    stop = asyncio.Event()
    worker = asyncio.get_running_loop().create_task(engine.run_worker(stop=stop))
    columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
    try:
        # No terminal (a pipe, a log file): no spinner, nothing to clean up after it.
        display = Progress(*columns, console=err, transient=True, disable=not err.is_terminal)
        with display as progress:
            task = progress.add_task(f"{instance_id}: waiting", total=None)
            while True:
                outcome = await engine.result(instance_id, timeout="250ms")
                if not isinstance(outcome, Failure) or not isinstance(
                    outcome.failure(), ResultTimeoutError
                ):
                    return outcome
                if worker.done():  # the worker loop died: do not wait for ever
                    worker.result()
                    raise CliError("the worker loop stopped unexpectedly", 1)
                found = await engine.status(instance_id)
                status = found.unwrap().status if isinstance(found, Success) else None
                if status is not None:
                    text = fmt.progress_text(status, engine.now())
                    progress.update(task, description=f"{instance_id}: {text}")
    finally:
        stop.set()
        await worker


async def _start(engine: Engine, args: argparse.Namespace, err: Console) -> int:
    started = await engine.start(args.name, args.input_value, id=args.id)
    if isinstance(started, Failure):
        error = started.failure()
        cause = error.cause
        bad_input = isinstance(cause, WorkflowNotFoundError | SerializationError | ValueError)
        raise CliError(str(cause if isinstance(cause, Exception) else error), 2 if bad_input else 1)
    result = started.unwrap()
    failed = _ended_badly(result.id, result.status)
    if failed is not None:
        raise failed
    if result.completed:
        err.print(f"{result.id}: Completed", style="green", highlight=False)
        print(fmt.output_json(result.output))
        return 0
    if not args.wait:
        now = engine.now()
        text = fmt.describe_status(result.status, now) if result.status is not None else "started"
        print(f"{result.id}  {text} (a `{PROG} worker` continues it)")
        return 0
    outcome = await _wait(engine, result.id, err)
    if isinstance(outcome, Failure):
        raise CliError(str(outcome.failure()), 1)  # Failed or Cancelled (or storage trouble)
    err.print(f"{result.id}: Completed", style="green", highlight=False)
    print(fmt.output_json(outcome.unwrap()))
    return 0


def _masked(url: str) -> str:
    """A backend URL without its password."""
    return re.sub(r"(://[^:/@]+):[^@/]*@", r"\1:***@", url)


async def _worker(engine: Engine, args: argparse.Namespace, err: Console) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    main_task = asyncio.current_task()

    def on_signal() -> None:
        if stop.is_set() and main_task is not None:  # a second Ctrl-C: stop at once
            main_task.cancel()
            return
        err.print("stopping: finishing the running instances (again to force)")
        stop.set()

    handled = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, on_signal)
            handled.append(sig)
        except (NotImplementedError, RuntimeError, ValueError):  # not the main thread/Windows
            pass
    concurrency = _profile_concurrency(args)
    names = ", ".join(engine.registry.list()) or "none"
    err.print(
        f"{PROG} worker: workflows {names} on {_masked(engine.backend_url)}, "
        f"concurrency {concurrency}",
        highlight=False,
    )
    try:
        await engine.run_worker(concurrency=concurrency, stop=stop)
    finally:
        for sig in handled:
            loop.remove_signal_handler(sig)
    err.print(f"{PROG} worker: stopped", highlight=False)
    return 0


async def _command(engine: Engine, args: argparse.Namespace, out: Console, err: Console) -> int:
    if args.command == "start":
        return await _start(engine, args, err)
    if args.command == "worker":
        return await _worker(engine, args, err)
    if args.command in ("status", "show"):
        result = await _status_of(engine, args.id)
        out.print(fmt.status_line(args.id, result, engine.now()))
        if args.command == "show":
            steps = await engine.steps(args.id)
            if isinstance(steps, Failure):
                raise CliError(str(steps.failure()), 1)
            records = steps.unwrap()
            out.print(fmt.steps_table(records) if records else "(no steps recorded)")
        return 0
    if args.command == "list":
        rows = await engine.list(status=args.status, workflow=args.workflow, limit=args.limit)
        if isinstance(rows, Failure):
            raise CliError(str(rows.failure()), 1)
        found = rows.unwrap()
        out.print(fmt.instances_table(found) if found else "no instances")
        return 0
    if args.command == "cancel":
        cancelled = await engine.cancel(args.id, reason=args.reason)
        if isinstance(cancelled, Failure):
            raise CliError(str(cancelled.failure()), 1)
        answer = cancelled.unwrap()
        if answer.reason == "not_found":
            raise _not_found(args.id)
        if not answer.cancelled:
            raise CliError(f"instance {args.id!r} already ended ({answer.previous_status})", 1)
        print(f"{args.id} cancelled (was {answer.previous_status})")
        return 0
    purged = await engine.purge(before=args.before)
    if isinstance(purged, Failure):
        raise CliError(str(purged.failure()), 1)
    count = purged.unwrap()
    print(f"purged {count} instance{'' if count == 1 else 's'}")
    return 0


async def _run(args: argparse.Namespace) -> int:
    engine = _make_engine(args)
    _check(args, engine)
    try:
        await engine.open()
    except Exception as e:
        raise CliError(f"cannot open the backend {engine.backend_url}: {e}", 1) from e
    # Pipes get wide tables; a terminal gets its own width.
    width = None if sys.stdout.isatty() or "COLUMNS" in os.environ else 160
    try:
        return await _command(
            engine, args, Console(width=width), Console(stderr=True, soft_wrap=True)
        )
    finally:
        await engine.close()


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``durably`` with ``argv`` (default: the process's arguments); the exit code."""
    try:
        args = build_parser().parse_args(argv)
        return asyncio.run(_run(args))
    except SystemExit as e:  # --help and --version
        return e.code if isinstance(e.code, int) else 0
    except CliError as e:
        return _fail(str(e), e.code)
    except (KeyboardInterrupt, asyncio.CancelledError):
        return _fail("interrupted", 130)
    except Exception as e:
        if os.environ.get("DURABLY_DEBUG"):
            raise
        return _fail(f"{type(e).__name__}: {e} (set DURABLY_DEBUG=1 for the traceback)", 1)


def _fail(message: str, code: int) -> int:
    print(f"{PROG}: error: {' '.join(message.split())}", file=sys.stderr)
    return code
