"""The operator's verbs of ``durably``: ``cancel`` (by id or by filter), ``resume``,
``fork``, ``schedules`` (list, pause, resume, trigger), and the replay check
(``replay``, ``export``) that tells whether new code fits stored histories."""

from __future__ import annotations

import argparse
import json
from typing import Any, TypeVar

from returns.result import Failure, Result
from rich.console import Console

from durably import cli_format as fmt
from durably.cli_app import PROG, CliError
from durably.domain.errors import (
    InstanceNotFoundError,
    InstancePurgedError,
    InvalidTransitionError,
    OrchestratorError,
    ScheduleNotFoundError,
)
from durably.engine import Engine
from durably.engine.replay import (
    histories_document,
    histories_from,
    read_histories,
    replay_histories,
)

__all__ = ["resume", "fork", "cancel", "check_cancel", "schedules", "replay", "export"]

T = TypeVar("T")


def _refused(error: OrchestratorError) -> CliError:
    """A failed operator action: exit 2 when the instance or the request is wrong."""
    cause = error.cause
    if isinstance(cause, InstanceNotFoundError | InstancePurgedError | InvalidTransitionError):
        return CliError(cause.message, 2)
    if isinstance(cause, ValueError):
        return CliError(str(cause), 2)
    return CliError(str(error), 1)


async def resume(engine: Engine, args: argparse.Namespace) -> int:
    """``durably resume ID``."""
    reopened = await engine.resume(args.id, reason=args.reason)
    if isinstance(reopened, Failure):
        raise _refused(reopened.failure())
    print(
        f"{args.id} reopened: queued, a `{PROG} worker` runs it from where it stopped"
        " (its completed steps are kept)"
    )
    return 0


async def fork(engine: Engine, args: argparse.Namespace) -> int:
    """``durably fork ID --from-step NAME [--id NEW]``."""
    forked = await engine.fork(args.id, from_step=args.from_step, new_id=args.new_id)
    if isinstance(forked, Failure):
        raise _refused(forked.failure())
    new = forked.unwrap().id
    print(f"{new}: forked from {args.id} at step {args.from_step!r}; a `{PROG} worker` runs it")
    return 0


def check_cancel(args: argparse.Namespace) -> None:
    """``durably cancel`` takes an id, or filters: not both, not neither."""
    filtered = [f"--{name}" for name in ("workflow", "status", "before") if getattr(args, name)]
    if args.id is not None and (filtered or args.dry_run):
        given = ", ".join([*filtered, *(["--dry-run"] if args.dry_run else [])])
        raise CliError(f"`{PROG} cancel ID` takes no filter ({given}): give an id or filters", 2)
    if args.id is None and not (args.workflow or args.status):
        raise CliError(
            f"`{PROG} cancel` needs an instance id, or --workflow and/or --status to cancel"
            " every unfinished instance that matches",
            2,
        )


async def schedules(engine: Engine, args: argparse.Namespace, out: Console) -> int:
    """``durably schedules`` (a listing) and ``durably schedules pause|resume|trigger ID``."""
    if args.action is None:
        listed = await engine.schedules()
        if isinstance(listed, Failure):
            raise CliError(str(listed.failure()), 1)
        rows = listed.unwrap()
        if args.json:
            print(json.dumps([fmt.schedule_document(r) for r in rows], indent=2))
        elif not rows:
            print("no schedules (an engine stores its schedules when it opens)")
        else:
            fmt.print_table(out, fmt.schedules_table(rows, out.width))
        return 0
    if args.action == "trigger":
        triggered = await engine.trigger_schedule(args.id)
        instance = _schedule_answer(triggered)
        document: dict[str, Any] = {"id": args.id, "instance": instance}
        text = f"{args.id}: triggered, instance {instance}"
    else:
        act = engine.pause_schedule if args.action == "pause" else engine.resume_schedule
        info = _schedule_answer(await act(args.id))
        document = fmt.schedule_document(info)
        text = f"{args.id}: {'paused' if info.paused else 'resumed'}"
    print(json.dumps(document, indent=2) if args.json else text)
    return 0


def _schedule_answer(acted: Result[T, OrchestratorError]) -> T:
    """What a schedule action answered, or the one-line error (2: no such schedule)."""
    if isinstance(acted, Failure):
        cause = acted.failure().cause
        if isinstance(cause, ScheduleNotFoundError):
            raise CliError(cause.message, 2)
        raise CliError(str(acted.failure()), 1)
    return acted.unwrap()


async def cancel(engine: Engine, args: argparse.Namespace, out: Console) -> int:
    """``durably cancel ID``, or every unfinished instance matching the filters."""
    if args.id is None:
        return await cancel_by_filter(engine, args, out)
    cancelled = await engine.cancel(args.id, reason=args.reason)
    if isinstance(cancelled, Failure):
        raise CliError(str(cancelled.failure()), 1)
    answer = cancelled.unwrap()
    if answer.reason == "not_found":
        raise CliError(InstanceNotFoundError(args.id).message, 2)
    if not answer.cancelled:
        raise CliError(f"instance {args.id!r} already ended ({answer.previous_status})", 1)
    print(f"{args.id} cancelled (was {answer.previous_status})")
    return 0


async def cancel_by_filter(engine: Engine, args: argparse.Namespace, out: Console) -> int:
    """``durably cancel --workflow W --status S [--before AGE] [--dry-run]``."""
    filters = {"workflow": args.workflow, "status": args.status, "before": args.before}
    try:
        return await _cancel_by_filter(engine, args, out, filters)
    except ValueError as e:  # a final or unknown status, a bad --before
        raise CliError(str(e), 2) from e


async def _cancel_by_filter(
    engine: Engine, args: argparse.Namespace, out: Console, filters: dict[str, str | None]
) -> int:
    if args.dry_run:
        listed = await engine.cancel_candidates(**filters)
        if isinstance(listed, Failure):
            raise CliError(str(listed.failure()), 1)
        rows = listed.unwrap()
        print(f"would cancel {_count(len(rows))} (--dry-run: nothing was cancelled)")
    else:
        done = await engine.cancel_many(**filters, reason=args.reason)
        if isinstance(done, Failure):
            raise _refused(done.failure())
        rows = done.unwrap()
        print(f"cancelled {_count(len(rows))}")
    if rows:
        fmt.print_table(out, fmt.instances_table(rows, out.width, engine.now()))
    return 0


async def replay(engine: Engine, args: argparse.Namespace) -> int:
    """``durably replay``: exit 1 when a history does not fit the code."""
    if args.histories is not None:
        try:
            histories = histories_from(args.histories)
        except (OSError, ValueError) as e:
            raise CliError(f"cannot read histories from {args.histories!r}: {e}", 2) from e
        if args.workflow is not None:
            histories = [h for h in histories if h.workflow == args.workflow]
        histories = histories[: args.limit]
    else:
        histories = await read_histories(engine.host, workflow=args.workflow, limit=args.limit)
    workflows = [engine.registry.definition(name) for name in engine.registry.list()]
    diverged = await replay_histories(histories, workflows)
    for found in diverged:
        where = "" if found.position is None else f" at position {found.position}"
        print(f"{found.instance_id} ({found.workflow}){where}: {found.message}")
    summary = f"replayed {_count(len(histories), 'history', 'histories')}"
    if diverged:
        print(f"{summary}: {len(diverged)} do not fit this code")
        return 1
    print(f"{summary}: all fit this code")
    return 0


async def export(engine: Engine, args: argparse.Namespace) -> int:
    """``durably export [ID...]``: the histories as one JSON document on stdout."""
    try:
        histories = await read_histories(
            engine.host, args.ids, workflow=args.workflow, limit=args.limit
        )
    except LookupError as e:
        raise CliError(str(e.args[0]), 2) from e
    print(json.dumps(histories_document(histories), ensure_ascii=False))
    return 0


def _count(n: int, one: str = "instance", many: str = "instances") -> str:
    return f"{n} {one if n == 1 else many}"
