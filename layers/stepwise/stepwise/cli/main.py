"""The command line itself: every command, its arguments and help, and ``main``."""

from __future__ import annotations

import argparse
import os
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from stepwise.cli.api import DEFAULT_URL, Api, ApiError
from stepwise.cli.commands import (
    Command,
    cmd_dev,
    cmd_execution_rerun,
    cmd_execution_watch,
    cmd_open,
    cmd_run,
    cmd_schedule_create,
    cmd_token,
    execution_list_command,
    file_command,
    get_command,
    list_command,
    message_command,
    switch_command,
)
from stepwise.cli.inputs import VAR_RULE, UsageError
from stepwise.cli.output import EXIT_API, EXIT_INTERRUPTED, EXIT_OK

WORKFLOW_COLUMNS = ("id", "version", "name", "updatedAt")
AGENT_COLUMNS = ("id", "protocol", "name", "endpoint")
# Who started a run is shown by name (its sub is in --json, and in startedBy of the API); a run that waits for a
# concurrency slot shows its place in the queue and the limit it waits for.
EXECUTION_COLUMNS = (
    "id",
    "workflowId",
    "state",
    "queuePosition",
    "queueLimit",
    "startedAt",
    "completedAt",
    "startedByName",
    "error",
)
SCHEDULE_COLUMNS = ("id", "enabled", "expression", "timezone", "description")
EXECUTION_STATES = ("PENDING", "RUNNING", "COMPLETED", "FAILED", "CANCELED", "PAUSED")

_EXITS = {
    "started": "  0  started (without --watch), or the execution COMPLETED",
    "completed": "  0  the execution COMPLETED",
    "failed": "  1  the execution FAILED (its error is printed on stderr)",
    "usage": "  2  usage error (bad arguments, unreadable --var-file)",
    "canceled": "  3  the execution was CANCELED",
    "api": "  4  the API refused the request or could not be reached",
    "interrupted": "  130 interrupted (Ctrl-C) while watching; the execution goes on",
}
_WATCHING = """\
Progress goes to stderr (a live table on a terminal, one line per change otherwise) and the execution's
output, as JSON, to stdout. Each node's time is how long it ran, waits (delay, approval) included."""


def _epilog(*exits: str, before: str = "") -> str:
    intro = [*textwrap.wrap(before, 100), ""] if before else []
    return "\n".join([*intro, "exit codes:", *(_EXITS[e] for e in exits), "", _WATCHING]) + "\n"


RUN_EPILOG = _epilog(
    "started", "failed", "usage", "canceled", "api", "interrupted", before=f"--var KEY=VALUE: {VAR_RULE}."
)
WATCH_EPILOG = _epilog("completed", "failed", "canceled", "api", "interrupted")
RERUN_EPILOG = _epilog(
    "started",
    "failed",
    "usage",
    "canceled",
    "api",
    "interrupted",
    before="The rerun is a new execution: the nodes that completed before --from's latest run in the source are not "
    "run again, and it begins at --from with the variables as they were just before that run, each --var set over "
    f"them. --var KEY=VALUE: {VAR_RULE}.",
)


def build_parser() -> argparse.ArgumentParser:
    """The whole command line."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--url", default=argparse.SUPPRESS, help=f"API base URL (default: $STEPWISE_URL or {DEFAULT_URL})"
    )
    common.add_argument("--token", default=argparse.SUPPRESS, help="bearer token (default: $STEPWISE_TOKEN)")

    parser = argparse.ArgumentParser(
        prog="stepwise",
        parents=[common],
        description="Drive the stepwise API: workflows, agents and executions; `stepwise dev` runs it locally.",
        epilog="exit codes: 0 ok, 1 execution FAILED, 2 usage, 3 execution CANCELED, 4 API refused or unreachable",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def leaf(
        group: Any, name: str, func: Command, help_text: str, *, token: bool = True, **kwargs: Any
    ) -> argparse.ArgumentParser:
        sub: argparse.ArgumentParser = group.add_parser(
            name, parents=[common], help=help_text, description=help_text, **kwargs
        )
        sub.set_defaults(func=func, needs_token=token)
        return sub

    token = leaf(commands, "token", cmd_token, "print a bearer token for a local user (local stack only)", token=False)
    token.add_argument("--user", required=True, help="user name; created on first use")
    token.add_argument("--admin", action="store_true", help="put the user in the admin group (else take it out)")

    dev = leaf(commands, "dev", cmd_dev, "run the local stack in the foreground (what `make dev` runs)", token=False)
    dev.add_argument(
        "--port", type=int, default=int(os.environ.get("PORT") or 3000), help="API port (default: $PORT or 3000)"
    )
    dev.add_argument("--aws-port", type=int, default=None, help="the local AWS endpoint's port (default: port + 1)")
    dev.add_argument(
        "--state-dir",
        type=Path,
        default=Path(os.environ["STEPWISE_STATE_DIR"]) if os.environ.get("STEPWISE_STATE_DIR") else None,
        help="where the stack keeps its state across restarts (default: $STEPWISE_STATE_DIR, else .stepwise)",
    )
    dev.add_argument("--fresh", action="store_true", help="forget the kept state and start empty")
    dev.add_argument(
        "--faults",
        default=os.environ.get("STEPWISE_FAULTS"),
        metavar="SPEC",
        help="inject faults, e.g. 'crash-after=0.05,throttle=0.1,seed=7' (default: $STEPWISE_FAULTS; see the README)",
    )

    # Workflows and agents take the same five commands over their own collection.
    for noun, path, columns, update_help in (
        ("workflow", "/api/workflows", WORKFLOW_COLUMNS, "store a new version of a workflow"),
        ("agent", "/api/agents", AGENT_COLUMNS, "replace an agent's definition"),
    ):
        group = commands.add_parser(noun, help=f"create, update, list, get and delete {noun}s").add_subparsers(
            dest="action", required=True, metavar="ACTION"
        )
        one = path + "/{id}"
        create = leaf(group, "create", file_command("POST", path), f"create a {noun} from a JSON or YAML file")
        create.add_argument("file")
        create.add_argument("-q", "--quiet", action="store_true", help=f"print only the new {noun}'s id")
        update = leaf(group, "update", file_command("PUT", one), update_help)
        update.add_argument("id")
        update.add_argument("file")
        for sub in (create, update):
            sub.add_argument(
                "--set",
                action="append",
                metavar="FIELD=VALUE",
                help="set a field of the file's document first (a.b for a nested one; VALUE as for run --var)",
            )
        leaf(group, "list", list_command(path, columns), f"your {noun}s").add_argument("--json", action="store_true")
        leaf(group, "get", get_command(one), f"one {noun}").add_argument("id")
        delete = leaf(group, "delete", message_command("DELETE", one), f"delete a {noun}")
        delete.add_argument("id")
        if noun == "agent":
            delete.add_argument("--force", action="store_true", help="delete it even if workflows call it")

    run = leaf(
        commands,
        "run",
        cmd_run,
        "start an execution of a workflow (and --watch it)",
        epilog=RUN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument("workflow_id")
    run.add_argument("--var", action="append", metavar="KEY=VALUE", help="a variable (VALUE: see below)")
    run.add_argument("--var-file", metavar="FILE", help="a JSON or YAML object of variables (--var wins)")
    run.add_argument("--watch", action="store_true", help="follow the execution until it ends")
    run.add_argument("--idempotency-key", metavar="KEY", help="a retried start with the same key starts one run")

    execution = commands.add_parser(
        "execution", help="get, watch, list, pause, resume, cancel and rerun executions"
    ).add_subparsers(dest="action", required=True, metavar="ACTION")
    leaf(execution, "get", get_command("/api/workflows/execute/{id}"), "one execution").add_argument("id")
    leaf(
        execution,
        "watch",
        cmd_execution_watch,
        "follow any execution to its end (however it was started), as run --watch does",
        epilog=WATCH_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    ).add_argument("id")
    listing = leaf(
        execution,
        "list",
        execution_list_command(EXECUTION_COLUMNS),
        "your executions across all your workflows, newest first",
        epilog="times: ISO-8601 (2024-05-01T09:30:00Z; a date alone is that day at 00:00 UTC); "
        "--from is included, --to excluded",
    )
    listing.add_argument("--workflow", metavar="ID", help="only this workflow's executions")
    listing.add_argument("--state", choices=EXECUTION_STATES)
    listing.add_argument("--started-by", metavar="WHO", help="a user's sub, or schedule:<scheduleId>")
    started = listing.add_mutually_exclusive_group()
    started.add_argument("--since", metavar="AGE", help="started this long ago or later: 30m, 1h, 7d")
    started.add_argument("--from", metavar="TIME", help="started at or after TIME")
    listing.add_argument("--to", metavar="TIME", help="started before TIME")
    listing.add_argument("--owner", metavar="SUB", help="another user's executions (admins only)")
    listing.add_argument("--limit", type=int, default=100, help="at most this many, newest first (default 100)")
    listing.add_argument("--json", action="store_true")
    for name, verb, method, suffix in (
        ("pause", "pause an execution before its next node", "POST", "/pause"),
        ("resume", "resume a paused execution (approves an approval node)", "POST", "/resume"),
        ("cancel", "cancel an execution", "DELETE", ""),
    ):
        leaf(execution, name, message_command(method, "/api/workflows/execute/{id}" + suffix), verb).add_argument("id")
    rerun = leaf(
        execution,
        "rerun",
        cmd_execution_rerun,
        "go on from a node of an ended execution, in a new one, without running again what ran before it",
        epilog=RERUN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    rerun.add_argument("id")
    rerun.add_argument(
        "--from",
        dest="from_node",
        metavar="NODE",
        help="the node to begin at (default: the node that failed, or was running when it was canceled; else "
        "where it began)",
    )
    version = rerun.add_mutually_exclusive_group()
    version.add_argument("--latest", action="store_true", help="run the workflow's current version (default: the same)")
    version.add_argument("--version", type=int, metavar="N", help="run version N of the workflow")
    rerun.add_argument("--var", action="append", metavar="KEY=VALUE", help="set a variable (VALUE: see below)")
    rerun.add_argument("--var-file", metavar="FILE", help="a JSON or YAML object of variables to set (--var wins)")
    rerun.add_argument("--watch", action="store_true", help="follow the rerun until it ends")
    rerun.add_argument("--idempotency-key", metavar="KEY", help="a retried rerun with the same key starts one run")

    opener = leaf(
        commands,
        "open",
        cmd_open,
        "print the viewer's link to an execution or a workflow, and open it in a browser where there is one",
        epilog="The link carries your token (in its #fragment, which no server sees): anyone who has the link "
        "can act as you until the token expires.",
    )
    opener.add_argument("id", help="an execution id (exe_...) or a workflow id (wf_...)")
    opener.add_argument("--no-browser", action="store_true", help="only print the link")

    schedule = commands.add_parser(
        "schedule", help="create, list, enable, disable and delete schedules"
    ).add_subparsers(dest="action", required=True, metavar="ACTION")
    create_schedule = leaf(schedule, "create", cmd_schedule_create, "run a workflow on a timetable")
    create_schedule.add_argument("workflow_id")
    create_schedule.add_argument("expression", help="'rate(5 minutes)', 'cron(0 9 ? * MON-FRI *)' or 'at(...)'")
    create_schedule.add_argument("--timezone", help="IANA name, e.g. Europe/Paris (default UTC)")
    create_schedule.add_argument(
        "--var", action="append", metavar="KEY=VALUE", help="a variable of every run (VALUE as for run --var)"
    )
    create_schedule.add_argument("--var-file", metavar="FILE", help="a JSON or YAML object of variables")
    create_schedule.add_argument("--description")
    create_schedule.add_argument("--disabled", action="store_true", help="create it disabled")
    schedules = list_command("/api/workflows/{workflow_id}/schedules", SCHEDULE_COLUMNS)
    schedule_list = leaf(schedule, "list", schedules, "a workflow's schedules")
    schedule_list.add_argument("workflow_id")
    schedule_list.add_argument("--json", action="store_true")
    one = "/api/workflows/{workflow_id}/schedules/{schedule_id}"
    for name, func, help_text in (
        ("get", get_command(one), "one schedule"),
        ("enable", switch_command(True), "enable a schedule"),
        ("disable", switch_command(False), "disable a schedule"),
        ("delete", message_command("DELETE", one), "delete a schedule"),
    ):
        sub = leaf(schedule, name, func, help_text)
        sub.add_argument("workflow_id")
        sub.add_argument("schedule_id")
    return parser


def api_address(args: argparse.Namespace) -> tuple[str, str]:
    """The API's URL and where it came from: ``--url``, else ``STEPWISE_URL``, else the local default."""
    if getattr(args, "url", None):
        return str(args.url), "from --url"
    if os.environ.get("STEPWISE_URL"):
        return os.environ["STEPWISE_URL"], "from STEPWISE_URL"
    return DEFAULT_URL, "the default"


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the exit code (see the package docstring)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    url, source = api_address(args)
    token = getattr(args, "token", None) or os.environ.get("STEPWISE_TOKEN")
    if args.needs_token and not token:
        parser.error(
            "no token: pass --token or set STEPWISE_TOKEN "
            "(local stack: export STEPWISE_TOKEN=$(stepwise token --user demo))"
        )
    func: Command = args.func
    try:
        return func(args, Api(url, token, source))
    except UsageError as error:
        parser.error(str(error))
    except ApiError as error:
        print(f"stepwise: {error}", file=sys.stderr)
        return EXIT_API
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`stepwise ... | head`): not an error worth a traceback.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
