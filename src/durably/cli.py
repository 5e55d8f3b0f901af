"""The ``durably`` command: run a worker, start workflows, inspect and manage instances.

Errors are one line on stderr; exit 2 for bad usage or input (unknown workflow or id),
1 for a workflow that failed or was cancelled, or a backend that failed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from returns.result import Failure, Result, Success
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from durably import cli_format as fmt
from durably import cli_operator as operator
from durably.cli_app import (
    DEFAULT_BACKEND,
    PROG,
    STATUS_TAGS,
    CliError,
    check_input,
    make_engine,
    redacted_logs,
    worker_concurrency,
)
from durably.cli_inspect import inspect_instance, list_instances, list_queues, with_iso
from durably.domain.errors import (
    DuplicateWorkflowError,
    DurablyError,
    EventNotPublishedError,
    InstanceNotFoundError,
    ResultTimeoutError,
    SerializationError,
    StorageError,
    WorkflowCancelledError,
    WorkflowFailedError,
    WorkflowNotFoundError,
)
from durably.domain.redaction import mask_passwords, url_secrets
from durably.domain.status import Cancelled, Failed, WorkflowStatus
from durably.engine import DEFAULT_QUEUE, Engine
from durably.engine.config import SHIPPED_PROFILES
from durably.engine.records import PublishedRow

__all__ = ["main", "build_parser"]


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line, like every other error."""

    def error(self, message: str) -> NoReturn:
        raise CliError(f"{message} (see `{self.prog} --help`)", 2)


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 1")
    return int(text)


def _whole(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None


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
    common.add_argument(
        "--profile",
        default=argparse.SUPPRESS,
        metavar="PROFILE",
        help=f"a profile: a shipped one ({', '.join(SHIPPED_PROFILES)}) or a YAML file's path",
    )
    common.add_argument(
        "--backend",
        default=argparse.SUPPRESS,
        metavar="URL",
        help=f"memory://, sqlite:///path.db, postgresql://... (env DURABLY_BACKEND; "
        f"replaces the profile's; default {DEFAULT_BACKEND})",
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
    worker.add_argument(
        "--queue",
        action="append",
        dest="queues",
        metavar="NAME",
        help="claim only this queue's instances (repeatable; default: every queue of the app)",
    )
    start = command("start", "start a workflow and run it here until it completes or pauses")
    start.add_argument("name", help="the workflow's name")
    start.add_argument("--input", metavar="JSON", help="its input, as JSON (default null)")
    start.add_argument("--id", help="the instance id (default: a new UUID)")
    start.add_argument("--wait", action="store_true", help="keep running it until it ends")
    enqueue = command("queue", "queue a workflow for a worker to run (returns at once)")
    enqueue.add_argument("name", help="the workflow's name")
    enqueue.add_argument("--input", metavar="JSON", help="its input, as JSON (default null)")
    enqueue.add_argument("--id", help="the instance id (default: a new UUID)")
    enqueue.add_argument(
        "--queue", default="default", metavar="NAME", help="the app's queue (default: default)"
    )
    enqueue.add_argument(
        "--priority", type=_whole, default=0, help="lower starts first (default 0)"
    )
    enqueue.add_argument(
        "--partition-key", metavar="KEY", help="the key of the queue's partition_concurrency"
    )
    enqueue.add_argument(
        "--dedupe-id",
        metavar="ID",
        help="refused while an instance of the queue holding this id has not ended",
    )
    enqueue.add_argument("--delay", metavar="DURATION", help="not started before (10m)")
    enqueue.add_argument("--json", action="store_true", help="print one JSON document")
    as_json = "print one JSON document (times as epoch ms and ISO 8601 UTC)"
    status = command("status", "an instance's status")
    status.add_argument("id")
    status.add_argument("--json", action="store_true", help=as_json)
    listing = command("list", "instances, most recently updated first")
    listing.add_argument("--status", help="one of " + ", ".join(STATUS_TAGS))
    listing.add_argument("--workflow", help="a workflow name")
    listing.add_argument("--limit", type=_positive, default=100, help="at most N (default 100)")
    listing.add_argument("--json", action="store_true", help=as_json)
    show = command("show", "an instance's status, input, output and timeline")
    show.add_argument("id")
    show.add_argument("--json", action="store_true", help=as_json)
    show.add_argument("--traceback", action="store_true", help="print the stored traceback")
    cancel = command(
        "cancel", "cancel an instance, or every unfinished one matching --workflow/--status"
    )
    cancel.add_argument("id", nargs="?", help="the instance (or filter with the options below)")
    cancel.add_argument("--reason", help="recorded with the cancellation")
    cancel.add_argument("--workflow", help="those of this workflow")
    cancel.add_argument("--status", help="those in this status (Queued, Running, Paused, ...)")
    cancel.add_argument("--before", metavar="AGE", help="those last updated at least AGE ago")
    cancel.add_argument(
        "--dry-run", action="store_true", help="list what would be cancelled; cancel nothing"
    )
    resume = command("resume", "run a Failed or Cancelled instance again from where it stopped")
    resume.add_argument("id")
    resume.add_argument("--reason", help="recorded with the reopening")
    fork = command("fork", "a new instance with ID's input and its steps before --from-step")
    fork.add_argument("id")
    fork.add_argument("--from-step", required=True, metavar="NAME", help="rerun from this step")
    fork.add_argument("--id", dest="new_id", metavar="NEW", help="the new instance's id")
    replay = command(
        "replay",
        "replay stored histories against the app's code, running nothing (exit 1: "
        "one does not fit)",
    )
    replay.add_argument("--workflow", help="only the histories of this workflow")
    replay.add_argument("--limit", type=_positive, help="at most N histories (latest first)")
    replay.add_argument(
        "--histories", metavar="FILE", help="histories from `export` instead of the backend"
    )
    export = command("export", "print the stored histories of instances as JSON (for replay)")
    export.add_argument("ids", nargs="*", metavar="ID", help="these instances (default: all)")
    export.add_argument("--workflow", help="without ids: the instances of this workflow")
    export.add_argument("--limit", type=_positive, help="without ids: at most N (latest first)")
    send = command("send", "send an event to an instance (a wait_for_event of NAME takes it)")
    send.add_argument("id")
    send.add_argument("name", help="the event's name")
    send.add_argument("--payload", metavar="JSON", help="its payload, as JSON (default null)")
    send.add_argument(
        "--event-id", metavar="ID", help="a second send with this id delivers nothing"
    )
    send.add_argument("--json", action="store_true", help="print one JSON document")
    get_event = command("get-event", "the latest value an instance published under KEY")
    get_event.add_argument("id")
    get_event.add_argument("key", help="the key given to set_event")
    get_event.add_argument(
        "--wait", metavar="DURATION", help="wait until one is published (at most DURATION)"
    )
    get_event.add_argument("--json", action="store_true", help=as_json)
    queues = command("queues", "each queue's waiting and running instances, and its limits")
    queues.add_argument("--json", action="store_true", help="print one JSON document")
    purge = command("purge", "delete the steps of finished instances (tombstones remain)")
    which = purge.add_mutually_exclusive_group(required=True)
    which.add_argument("--before", metavar="AGE", help="those finished at least AGE ago (7d)")
    which.add_argument("--all", action="store_true", help="every finished instance")
    purge.add_argument(
        "--dry-run", action="store_true", help="list what would be purged; delete nothing"
    )
    schedules = command(
        "schedules", "list the schedules, or pause, resume or trigger one (ACTION ID)"
    )
    schedules.add_argument(
        "action",
        nargs="?",
        choices=SCHEDULE_ACTIONS,
        metavar="ACTION",
        help="pause (its ticks are skipped), resume, or trigger (one instance now)",
    )
    schedules.add_argument("id", nargs="?", help="the schedule's id")
    schedules.add_argument("--json", action="store_true", help="print one JSON document")
    return parser


SCHEDULE_ACTIONS = ("pause", "resume", "trigger")


# -- the commands --------------------------------------------------------------------------


def _not_found(instance_id: str) -> CliError:
    return CliError(InstanceNotFoundError(instance_id).message, 2)


def _ended_badly(instance_id: str, status: WorkflowStatus | None) -> CliError | None:
    if isinstance(status, Failed):
        return CliError(WorkflowFailedError(instance_id, status.error).message, 1)
    if isinstance(status, Cancelled):
        return CliError(WorkflowCancelledError(instance_id, status.reason).message, 1)
    return None


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


async def _queue(engine: Engine, args: argparse.Namespace) -> int:
    queued = await engine.queue(
        args.name,
        args.input_value,
        id=args.id,
        queue=args.queue,
        priority=args.priority,
        partition_key=args.partition_key,
        dedupe_id=args.dedupe_id,
        delay=args.delay,
    )
    if isinstance(queued, Failure):
        error = queued.failure()
        cause = error.cause
        if isinstance(cause, DuplicateWorkflowError):
            raise CliError(cause.message, 1)
        bad_input = isinstance(cause, WorkflowNotFoundError | SerializationError | ValueError)
        raise CliError(str(cause if isinstance(cause, Exception) else error), 2 if bad_input else 1)
    result = queued.unwrap()
    status = result.status
    if args.json:
        document = {"id": result.id, "workflow": args.name, "queue": args.queue}
        document["status"] = status.tag if status is not None else None
        print(json.dumps(document, ensure_ascii=False, indent=2))
    elif status is None or status.tag == "Queued":
        where = "" if args.queue == DEFAULT_QUEUE else f" on queue {args.queue!r}"
        print(f"{result.id}  Queued{where} (a `{PROG} worker` runs it)")
    else:  # the id existed: nothing was queued
        text = fmt.describe_status(status, engine.now())
        print(f"{result.id}  {text} (it exists already: nothing was queued)")
    return 0


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
    concurrency = worker_concurrency(args, engine)
    names = ", ".join(engine.registry.list()) or "none"
    served = list(dict.fromkeys(args.queues)) if args.queues else None
    err.print(
        f"{PROG} worker: workflows {names} on {mask_passwords(engine.backend_url)}, "
        f"queues {', '.join(served if served is not None else engine.queues)}, "
        f"concurrency {concurrency}",
        highlight=False,
    )
    try:
        await engine.run_worker(concurrency=concurrency, stop=stop, queues=served)
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
    if args.command == "queue":
        return await _queue(engine, args)
    if args.command == "queues":
        return await list_queues(engine, args, out)
    if args.command in ("status", "show"):
        return await inspect_instance(engine, args, out)
    if args.command == "list":
        return await list_instances(engine, args, out)
    if args.command == "send":
        return await _send(engine, args)
    if args.command == "get-event":
        return await _get_event(engine, args)
    if args.command in _OPERATOR:
        return await _OPERATOR[args.command](engine, args)
    if args.command == "cancel":
        return await operator.cancel(engine, args, out)
    if args.command == "schedules":
        return await operator.schedules(engine, args, out)
    return await _purge(engine, args, out)


_OPERATOR = {
    "resume": operator.resume,
    "fork": operator.fork,
    "replay": operator.replay,
    "export": operator.export,
}


async def _send(engine: Engine, args: argparse.Namespace) -> int:
    sent = await engine.send_event(args.id, args.name, args.payload_value, event_id=args.event_id)
    if isinstance(sent, Failure):
        error = sent.failure()
        cause = error.cause
        bad_payload = isinstance(cause, SerializationError)  # too large to store, say
        raise CliError(str(cause if bad_payload else error), 2 if bad_payload else 1)
    answer = sent.unwrap()
    if answer.reason == "not_found":
        raise _not_found(args.id)
    if not answer.delivered:
        found = await engine.status(args.id)
        status = found.unwrap().status if isinstance(found, Success) else None
        ended = f"already ended ({status.tag})" if status is not None else "already ended"
        raise CliError(f"instance {args.id!r} {ended}: event {args.name!r} not delivered", 1)
    if args.json:
        document = {
            "id": args.id,
            "name": args.name,
            "event_id": args.event_id,
            "delivered": answer.delivered,
            "duplicate": answer.duplicate,
        }
        print(json.dumps(document, ensure_ascii=False, indent=2))
    elif answer.duplicate:
        print(
            f"{args.id}: event {args.name!r} with id {args.event_id!r} was delivered before"
            " (duplicate: nothing sent)"
        )
    else:
        print(f"{args.id}: event {args.name!r} delivered")
    return 0


async def _get_event(engine: Engine, args: argparse.Namespace) -> int:
    found = await engine.get_event(args.id, args.key, timeout=args.wait)
    if isinstance(found, Failure):
        cause = found.failure().cause
        if isinstance(cause, InstanceNotFoundError):
            raise CliError(cause.message, 2)
        if isinstance(cause, EventNotPublishedError):
            raise CliError(cause.message, 1)
        raise CliError(str(found.failure()), 1)
    if not args.json:
        print(fmt.output_json(found.unwrap()))
        return 0
    # The version and the time come with the timeline (read after the value: the same
    # value unless a newer one was published meanwhile, which it then shows).
    timeline = await engine.timeline(args.id)
    if isinstance(timeline, Failure):
        raise CliError(str(timeline.failure()), 1)
    rows = timeline.unwrap().rows
    published = next((r for r in rows if isinstance(r, PublishedRow) and r.key == args.key), None)
    if published is None:  # purged since
        raise CliError(EventNotPublishedError(args.id, args.key).message, 1)
    document = {"id": args.id, "key": args.key, "value": published.value}
    document |= {"version": published.version, "set_at": published.set_at}
    print(json.dumps(with_iso(document), ensure_ascii=False, indent=2))
    return 0


async def _purge(engine: Engine, args: argparse.Namespace, out: Console) -> int:
    before = "0" if args.all else args.before
    if args.dry_run:
        listed = await engine.purge_candidates(before=before)
        if isinstance(listed, Failure):
            raise CliError(str(listed.failure()), 1)
        rows = listed.unwrap()
        print(f"would purge {_count(len(rows))} (--dry-run: nothing was deleted)")
        if rows:
            fmt.print_table(out, fmt.instances_table(rows, out.width, engine.now()))
        return 0
    purged = await engine.purge(before=before)
    if isinstance(purged, Failure):
        raise CliError(str(purged.failure()), 1)
    print(f"purged {_count(purged.unwrap())}")
    return 0


def _count(instances: int) -> str:
    return f"{instances} instance{'' if instances == 1 else 's'}"


def _reads_only(args: argparse.Namespace) -> bool:
    """Whether the command only reads the store (it must exist; nothing is created)."""
    reading = ("status", "show", "list", "queues", "get-event", "replay", "export")
    listing = args.command == "schedules" and args.action is None
    dry_run = args.command in ("purge", "cancel") and args.dry_run
    return args.command in reading or listing or dry_run


async def _open(engine: Engine) -> None:
    """Open the store, or fail with one line that says which and why (no password)."""
    try:
        await engine.open()
    except StorageError as e:  # the backends describe the store and the cause themselves
        detail = e.cause if isinstance(e.cause, str) else str(e)
        raise CliError(detail, 1) from e
    except Exception as e:
        where = mask_passwords(engine.backend_url)
        raise CliError(f"cannot open the backend {where}: {e}", 1) from e


async def _run(args: argparse.Namespace, secrets: set[str]) -> int:
    read_only = _reads_only(args)
    engine = make_engine(args, read_only=read_only)
    secrets |= url_secrets(engine.backend_url)
    check_input(args, engine)
    if args.command == "cancel":
        operator.check_cancel(args)
    with redacted_logs(secrets):
        writing = ("cancel", "send", "purge", "resume", "fork", "schedules")
        if args.command in writing and not read_only:
            # They write, but only into a durably store that exists: look first, read-only,
            # so that a mistyped path or another application's file is refused untouched.
            checked = make_engine(args, read_only=True)
            await _open(checked)
            await checked.close()
        await _open(engine)
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
    given = list(sys.argv[1:] if argv is None else argv)
    # Every password the command may meet (in --backend, DURABLY_BACKEND, a profile's
    # URL, added once read) is masked in every line it prints.
    candidates = [*given, os.environ.get("DURABLY_BACKEND", "")]
    secrets = {secret for text in candidates for secret in url_secrets(text)}
    try:
        args = build_parser().parse_args(given)
        return asyncio.run(_run(args, secrets))
    except SystemExit as e:  # --help and --version
        return e.code if isinstance(e.code, int) else 0
    except CliError as e:
        return _fail(str(e), e.code, secrets)
    except (KeyboardInterrupt, asyncio.CancelledError):
        return _fail("interrupted", 130, secrets)
    except Exception as e:
        if os.environ.get("DURABLY_DEBUG"):
            raise
        message = f"{type(e).__name__}: {e} (set DURABLY_DEBUG=1 for the traceback)"
        return _fail(message, 1, secrets)


def _fail(message: str, code: int, secrets: set[str]) -> int:
    line = mask_passwords(" ".join(message.split()), secrets)
    print(f"{PROG}: error: {line}", file=sys.stderr)
    return code
