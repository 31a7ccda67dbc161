"""``stepwise``: the command line for the stepwise API, local (``make dev``) or deployed.

Every command but ``dev`` talks HTTP to ``--url`` (default ``$STEPWISE_URL``, else the local stack at
http://127.0.0.1:3000) and, except ``token``, sends ``--token`` (default ``$STEPWISE_TOKEN``) as the bearer
token. ``stepwise token --user NAME`` asks the local stack for a token (it exists only there)::

    export STEPWISE_TOKEN=$(stepwise token --user demo)
    stepwise run wf_0000000000000000000000DEM0 --watch

Results go to stdout (JSON for one resource, aligned columns for lists, ``--json`` for raw lists);
messages, progress and errors go to stderr. Exit codes: 0 success (``run --watch``: COMPLETED),
1 FAILED, 2 usage error, 3 CANCELED, 4 the API refused the request or could not be reached,
130 interrupted. rich, PyYAML and requests are imported only by the commands that use them, so
``stepwise --help`` stays fast.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import requests
    from rich.console import RenderableType

DEFAULT_URL = "http://127.0.0.1:3000"
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_CANCELED = 3
EXIT_API = 4
EXIT_INTERRUPTED = 130
TERMINAL_STATES = ("COMPLETED", "FAILED", "CANCELED")
WATCH_INTERVAL_SECONDS = 0.5
REQUEST_TIMEOUT_SECONDS = 30
MAX_PAGES = 100
WORKFLOW_COLUMNS = ("id", "version", "name", "updatedAt")
AGENT_COLUMNS = ("id", "protocol", "name", "endpoint")
EXECUTION_COLUMNS = ("id", "state", "startedAt", "completedAt", "startedBy", "error")
SCHEDULE_COLUMNS = ("id", "enabled", "expression", "timezone", "description")

RUN_EPILOG = """\
exit codes:
  0  started (without --watch), or the execution COMPLETED
  1  the execution FAILED (its error is printed on stderr)
  2  usage error (bad arguments, unreadable --var-file)
  3  the execution was CANCELED
  4  the API refused the request or could not be reached
  130 interrupted (Ctrl-C) while watching; the execution goes on

With --watch, progress goes to stderr (a live table on a terminal, one line per change otherwise)
and the execution's output, as JSON, to stdout.
"""


class UsageError(Exception):
    """A mistake in the command line or its files (exit code 2)."""


class ApiError(Exception):
    """The API refused the request or could not be reached (exit code 4)."""


# --------------------------------------------------------------------------------------------- http


class Api:
    """The one HTTP helper: JSON in, JSON out, errors as :class:`ApiError` with the API's own words."""

    def __init__(self, url: str, token: str | None) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self._session: requests.Session | None = None

    def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        auth: bool = True,
    ) -> Any:
        """Send one request and return the parsed JSON answer; raise :class:`ApiError` on any failure."""
        import requests

        if self._session is None:
            self._session = requests.Session()
        all_headers = {"accept": "application/json", **(headers or {})}
        if auth and self.token:
            all_headers["authorization"] = f"Bearer {self.token}"
        try:
            answer = self._session.request(
                method,
                self.url + path,
                json=json_body,
                params=params,
                headers=all_headers,
                timeout=REQUEST_TIMEOUT_SECONDS,
            )
        except requests.ConnectionError as error:
            raise ApiError(f"cannot reach {self.url}: is `make dev` running?") from error
        except requests.RequestException as error:
            raise ApiError(f"{method} {self.url}{path} failed: {error}") from error
        try:
            body = answer.json() if answer.content else None
        except ValueError:
            body = None
        if answer.status_code >= 400:
            message = None
            if isinstance(body, dict):
                message = body.get("error") or body.get("message")
            raise ApiError(f"{message or answer.text[:200] or answer.reason} (HTTP {answer.status_code})")
        if body is None and answer.content:
            raise ApiError(f"{method} {self.url}{path} answered something that is not JSON")
        return body

    def data(self, method: str, path: str, **kwargs: Any) -> Any:
        """The ``data`` of an API envelope."""
        body = self.request(method, path, **kwargs)
        return body.get("data") if isinstance(body, dict) else body

    def message(self, method: str, path: str, **kwargs: Any) -> str:
        """The ``message`` of an API envelope."""
        body = self.request(method, path, **kwargs)
        return str(body.get("message", "")) if isinstance(body, dict) else ""

    def all_pages(self, path: str, params: dict[str, str] | None = None) -> list[Any]:
        """Every row of a listing, following ``nextCursor``."""
        rows: list[Any] = []
        query = {**(params or {}), "limit": "100"}
        for _ in range(MAX_PAGES):
            body = self.request("GET", path, params=query)
            rows.extend(body.get("data") or [])
            cursor = body.get("nextCursor")
            if not cursor:
                break
            query["cursor"] = str(cursor)
        return rows


# ------------------------------------------------------------------------------------------- output


def print_json(value: Any) -> None:
    """One resource, as indented JSON on stdout."""
    print(json.dumps(value, indent=2, ensure_ascii=False))


def print_rows(rows: Sequence[dict[str, Any]], columns: Sequence[str], as_json: bool) -> None:
    """A listing: aligned columns (or a JSON array with ``--json``) on stdout."""
    if as_json:
        print_json(list(rows))
        return
    cells = [[str(row.get(c) if row.get(c) is not None else "-") for c in columns] for row in rows]
    widths = [max([len(c), *(len(line[i]) for line in cells)]) for i, c in enumerate(columns)]
    for line in [list(columns), *cells]:
        print("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip())


def load_document(path: str) -> Any:
    """A JSON or YAML file (``-`` is stdin); YAML for ``.yaml``/``.yml``, else JSON, else YAML."""
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise UsageError(f"cannot read {path}: {error.strerror}") from error
    suffix = Path(path).suffix.lower()
    if suffix != ".yaml" and suffix != ".yml":
        try:
            return json.loads(text)
        except ValueError as error:
            if suffix == ".json":
                raise UsageError(f"{path} is not valid JSON: {error}") from error
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise UsageError(f"{path} is neither JSON nor YAML: {error}") from error


def _not_json(name: str) -> Any:
    raise ValueError(name)


def parse_variables(pairs: Sequence[str], var_file: str | None) -> dict[str, Any]:
    """``--var-file`` then each ``--var key=value`` over it; a value is JSON when it parses, else text."""
    variables: dict[str, Any] = {}
    if var_file:
        loaded = load_document(var_file)
        if not isinstance(loaded, dict):
            raise UsageError(f"{var_file} must hold an object of variables")
        variables.update(loaded)
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"--var {pair!r}: expected key=value")
        try:
            # JSON when it parses (7, true, {"a": 1}); NaN and Infinity are not JSON, so they stay text.
            variables[key] = json.loads(raw, parse_constant=_not_json)
        except ValueError:
            variables[key] = raw
    return variables


# -------------------------------------------------------------------------------------------- watch


def _seconds_between(start: str | None, end: str | None) -> float | None:
    if not start:
        return None
    begin = datetime.fromisoformat(start.replace("Z", "+00:00"))
    finish = datetime.fromisoformat(end.replace("Z", "+00:00")) if end else datetime.now(UTC)
    return max(0.0, (finish - begin).total_seconds())


def _duration(start: str | None, end: str | None) -> str:
    seconds = _seconds_between(start, end)
    if seconds is None:
        return ""
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.1f} s"


@dataclass(frozen=True)
class NodeRow:
    """One node as the watch shows it."""

    node_id: str
    node_type: str
    state: str
    duration: str
    last_log: str


def node_rows(execution: dict[str, Any], node_types: dict[str, str]) -> list[NodeRow]:
    """The execution's nodes in definition order, each with its latest log line."""
    last_logs: dict[str | None, str] = {}
    for line in execution.get("logs") or []:
        last_logs[line.get("nodeId")] = str(line.get("message", ""))
    rows = []
    for node_id, state in (execution.get("nodeStates") or {}).items():
        message = state.get("error") or last_logs.get(node_id, "")
        rows.append(
            NodeRow(
                node_id=node_id,
                node_type=node_types.get(node_id, ""),
                state=str(state.get("state", "")),
                duration=_duration(state.get("startedAt"), state.get("completedAt")),
                last_log=str(message).replace("\n", " ")[:100],
            )
        )
    return rows


STATE_STYLES = {
    "PENDING": "dim",
    "RUNNING": "bold yellow",
    "COMPLETED": "green",
    "FAILED": "bold red",
    "SKIPPED": "dim",
    "CANCELED": "magenta",
    "PAUSED": "cyan",
}


def render_table(execution: dict[str, Any], node_types: dict[str, str]) -> RenderableType:
    """The live view: one row per node, and the execution's state in the title."""
    from rich.table import Table
    from rich.text import Text

    state = str(execution.get("state", ""))
    title = Text.assemble(
        ("execution ", "bold"),
        str(execution.get("id", "")),
        "  ",
        (state, STATE_STYLES.get(state, "")),
        f"  {_duration(execution.get('startedAt'), execution.get('completedAt'))}",
    )
    table = Table(title=title, title_justify="left", expand=False)
    for name in ("node", "type", "state", "time", "last log"):
        table.add_column(name, no_wrap=name != "last log", overflow="fold")
    for row in node_rows(execution, node_types):
        table.add_row(
            row.node_id, row.node_type, Text(row.state, STATE_STYLES.get(row.state, "")), row.duration, row.last_log
        )
    return table


def _change_lines(previous: dict[str, str], execution: dict[str, Any], node_types: dict[str, str]) -> list[str]:
    # What changed since the last poll, for a log file or a pipe; ``previous`` is updated in place.
    stamp = time.strftime("%H:%M:%S")
    lines = []
    for row in node_rows(execution, node_types):
        if previous.get(row.node_id) != row.state:
            previous[row.node_id] = row.state
            if row.state != "PENDING":
                detail = f" ({row.duration})" if row.duration and row.state != "RUNNING" else ""
                log = f": {row.last_log}" if row.last_log else ""
                lines.append(f"{stamp}   node {row.node_id} [{row.node_type}] {row.state}{detail}{log}")
    state = str(execution.get("state", ""))
    if previous.get("") != state:
        previous[""] = state
        line = f"{stamp} execution {execution.get('id')} {state}"
        # The execution's new state reads first while it runs, last once it has ended.
        lines = [*lines, line] if state in TERMINAL_STATES else [line, *lines]
    return lines


def watch(api: Api, execution_id: str, workflow_id: str, *, live: bool) -> dict[str, Any]:
    """Poll the execution until it ends, showing its nodes; returns its last state."""
    try:
        workflow = api.data("GET", f"/api/workflows/{workflow_id}")
        node_types = {str(n["id"]): str(n["type"]) for n in workflow.get("nodes", [])}
    except ApiError:
        node_types = {}  # deleted since, say; the types column stays empty
    path = f"/api/workflows/execute/{execution_id}"
    execution: dict[str, Any] = api.data("GET", path)
    if live:
        from rich.console import Console
        from rich.live import Live

        with Live(render_table(execution, node_types), console=Console(stderr=True), refresh_per_second=8) as view:
            while execution.get("state") not in TERMINAL_STATES:
                time.sleep(WATCH_INTERVAL_SECONDS)
                execution = api.data("GET", path)
                view.update(render_table(execution, node_types))
        return execution
    seen: dict[str, str] = {}
    while True:
        for line in _change_lines(seen, execution, node_types):
            print(line, file=sys.stderr, flush=True)
        if execution.get("state") in TERMINAL_STATES:
            return execution
        time.sleep(WATCH_INTERVAL_SECONDS)
        execution = api.data("GET", path)


def finish(execution: dict[str, Any]) -> int:
    """Print the output (COMPLETED) or the error, and return the exit code for the final state."""
    state = execution.get("state")
    if state == "COMPLETED":
        print_json(execution.get("output"))
        return EXIT_OK
    if state == "CANCELED":
        print(f"stepwise: execution {execution.get('id')} was canceled", file=sys.stderr)
        return EXIT_CANCELED
    print(f"stepwise: execution {execution.get('id')} failed: {execution.get('error')}", file=sys.stderr)
    return EXIT_FAILED


# ----------------------------------------------------------------------------------------- commands

Command = Callable[[argparse.Namespace, Api], int]


def cmd_token(args: argparse.Namespace, api: Api) -> int:
    """Print a token for a local user (local stack only)."""
    try:
        body = api.request("POST", "/local/token", json_body={"user": args.user, "admin": args.admin}, auth=False)
    except ApiError as error:
        raise ApiError(f"{error}; `stepwise token` works only against the local stack (make dev)") from error
    print(body["token"])
    return EXIT_OK


def cmd_dev(args: argparse.Namespace, api: Api) -> int:
    """Run the local stack in the foreground."""
    from stepwise.local.dev import serve

    return serve(args.port, args.aws_port)


def file_command(method: str, path: str) -> Command:
    """A command that sends the JSON or YAML document in FILE and prints the resource it answers."""

    def command(args: argparse.Namespace, api: Api) -> int:
        print_json(api.data(method, path.format(**vars(args)), json_body=load_document(args.file)))
        return EXIT_OK

    return command


def get_command(path: str) -> Command:
    """A command that prints the ``data`` of ``GET path`` (``{id}`` is the ID argument)."""

    def command(args: argparse.Namespace, api: Api) -> int:
        print_json(api.data("GET", path.format(**vars(args))))
        return EXIT_OK

    return command


def list_command(path: str, columns: Sequence[str]) -> Command:
    """A command that prints every row of a listing (``--state`` filters, where the command has it)."""

    def command(args: argparse.Namespace, api: Api) -> int:
        state = getattr(args, "state", None)
        rows = api.all_pages(path.format(**vars(args)), {"state": state} if state else None)
        print_rows(rows, columns, args.json)
        return EXIT_OK

    return command


def message_command(method: str, path: str) -> Command:
    """A command that prints the API's ``message`` for ``method path``."""

    def command(args: argparse.Namespace, api: Api) -> int:
        print(api.message(method, path.format(**vars(args))))
        return EXIT_OK

    return command


def cmd_schedule_create(args: argparse.Namespace, api: Api) -> int:
    """Create a schedule that starts the workflow on a timetable."""
    body: dict[str, Any] = {
        "expression": args.expression,
        "variables": parse_variables(args.var or [], args.var_file),
        "enabled": not args.disabled,
    }
    if args.timezone:
        body["timezone"] = args.timezone
    if args.description:
        body["description"] = args.description
    print_json(api.data("POST", f"/api/workflows/{args.workflow_id}/schedules", json_body=body))
    return EXIT_OK


def switch_command(enabled: bool) -> Command:
    """A command that enables or disables a schedule."""

    def command(args: argparse.Namespace, api: Api) -> int:
        path = f"/api/workflows/{args.workflow_id}/schedules/{args.schedule_id}"
        print_json(api.data("PATCH", path, json_body={"enabled": enabled}))
        return EXIT_OK

    return command


def cmd_run(args: argparse.Namespace, api: Api) -> int:
    """Start an execution; with --watch, follow it to the end."""
    variables = parse_variables(args.var or [], args.var_file)
    headers = {"idempotency-key": args.idempotency_key} if args.idempotency_key else None
    started = api.data(
        "POST", f"/api/workflows/execute/{args.workflow_id}", json_body={"variables": variables}, headers=headers
    )
    execution_id = str(started["executionId"])
    if not args.watch:
        print(execution_id)
        return EXIT_OK
    print(f"stepwise: started execution {execution_id}", file=sys.stderr)
    live = sys.stdout.isatty() and sys.stderr.isatty()
    try:
        execution = watch(api, execution_id, args.workflow_id, live=live)
    except KeyboardInterrupt:
        print(
            f"\nstepwise: stopped watching; the execution goes on: stepwise execution get {execution_id}",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    return finish(execution)


# ------------------------------------------------------------------------------------------- parser


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

    # Workflows and agents take the same five commands over their own collection.
    for noun, path, columns, update_help in (
        ("workflow", "/api/workflows", WORKFLOW_COLUMNS, "store a new version of a workflow"),
        ("agent", "/api/agents", AGENT_COLUMNS, "replace an agent's definition"),
    ):
        group = commands.add_parser(noun, help=f"create, update, list, get and delete {noun}s").add_subparsers(
            dest="action", required=True, metavar="ACTION"
        )
        one = path + "/{id}"
        leaf(group, "create", file_command("POST", path), f"create a {noun} from a JSON or YAML file").add_argument(
            "file"
        )
        update = leaf(group, "update", file_command("PUT", one), update_help)
        update.add_argument("id")
        update.add_argument("file")
        leaf(group, "list", list_command(path, columns), f"your {noun}s").add_argument("--json", action="store_true")
        leaf(group, "get", get_command(one), f"one {noun}").add_argument("id")
        leaf(group, "delete", message_command("DELETE", one), f"delete a {noun}").add_argument("id")

    run = leaf(
        commands,
        "run",
        cmd_run,
        "start an execution of a workflow (and --watch it)",
        epilog=RUN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument("workflow_id")
    run.add_argument("--var", action="append", metavar="KEY=VALUE", help="a variable; VALUE is JSON if it parses")
    run.add_argument("--var-file", metavar="FILE", help="a JSON or YAML object of variables (--var wins)")
    run.add_argument("--watch", action="store_true", help="follow the execution until it ends")
    run.add_argument("--idempotency-key", metavar="KEY", help="a retried start with the same key starts one run")

    execution = commands.add_parser("execution", help="get, list, pause, resume and cancel executions").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    leaf(execution, "get", get_command("/api/workflows/execute/{id}"), "one execution").add_argument("id")
    executions = list_command("/api/workflows/{workflow_id}/executions", EXECUTION_COLUMNS)
    listing = leaf(execution, "list", executions, "a workflow's executions, newest first")
    listing.add_argument("workflow_id")
    listing.add_argument("--state", choices=["PENDING", "RUNNING", "COMPLETED", "FAILED", "CANCELED", "PAUSED"])
    listing.add_argument("--json", action="store_true")
    for name, verb, method, suffix in (
        ("pause", "pause an execution before its next node", "POST", "/pause"),
        ("resume", "resume a paused execution (approves an approval node)", "POST", "/resume"),
        ("cancel", "cancel an execution", "DELETE", ""),
    ):
        leaf(execution, name, message_command(method, "/api/workflows/execute/{id}" + suffix), verb).add_argument("id")

    schedule = commands.add_parser(
        "schedule", help="create, list, enable, disable and delete schedules"
    ).add_subparsers(dest="action", required=True, metavar="ACTION")
    create_schedule = leaf(schedule, "create", cmd_schedule_create, "run a workflow on a timetable")
    create_schedule.add_argument("workflow_id")
    create_schedule.add_argument("expression", help="'rate(5 minutes)', 'cron(0 9 ? * MON-FRI *)' or 'at(...)'")
    create_schedule.add_argument("--timezone", help="IANA name, e.g. Europe/Paris (default UTC)")
    create_schedule.add_argument("--var", action="append", metavar="KEY=VALUE", help="a variable of every run")
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


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the exit code (see the module docstring)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    url = getattr(args, "url", None) or os.environ.get("STEPWISE_URL") or DEFAULT_URL
    token = getattr(args, "token", None) or os.environ.get("STEPWISE_TOKEN")
    if args.needs_token and not token:
        parser.error(
            "no token: pass --token or set STEPWISE_TOKEN "
            "(local stack: export STEPWISE_TOKEN=$(stepwise token --user demo))"
        )
    func: Command = args.func
    try:
        return func(args, Api(url, token))
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


if __name__ == "__main__":
    sys.exit(main())
