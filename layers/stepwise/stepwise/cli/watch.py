"""Watching an execution: a live table on a terminal, one line per change otherwise, then its outcome.

The execution is read once, then followed by its events (``GET .../events``): each request names the last
event seen and waits for the next ones (a long-poll), and the view is the first read with the events folded
in. Once the terminal event came, one last read gives the output.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from stepwise.cli.api import Api, ApiError
from stepwise.cli.output import EXIT_CANCELED, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, print_json

if TYPE_CHECKING:
    from rich.console import RenderableType

TERMINAL_STATES = ("COMPLETED", "FAILED", "CANCELED")
TERMINAL_EVENTS = {"execution.completed": "COMPLETED", "execution.failed": "FAILED", "execution.canceled": "CANCELED"}
# Each events request waits this long for the next event (the API allows 25 s; the CLI's timeout is 30 s).
WATCH_WAIT_SECONDS = 20
EVENTS_PER_REQUEST = 500
_STATE_OF = {"execution.running": "RUNNING", "execution.paused": "PAUSED", "execution.resumed": "RUNNING"}
STATE_STYLES = {
    "PENDING": "dim",
    "RUNNING": "bold yellow",
    "COMPLETED": "green",
    "FAILED": "bold red",
    "SKIPPED": "dim",
    "CANCELED": "magenta",
    "PAUSED": "cyan",
}


def seconds_between(start: str | None, end: str | None, now: datetime | None = None) -> float | None:
    """Seconds from ``start`` to ``end`` (ISO-8601), or to ``now`` while there is no end; None without start."""
    if not start:
        return None
    begin = datetime.fromisoformat(start.replace("Z", "+00:00"))
    finish = datetime.fromisoformat(end.replace("Z", "+00:00")) if end else (now or datetime.now(UTC))
    return max(0.0, (finish - begin).total_seconds())


def format_duration(seconds: float | None) -> str:
    """``850 ms``, ``1.0 s``, ``2 min 05 s``, ``3 h 07 min``: as precise as a glance needs."""
    if seconds is None:
        return ""
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {rest:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def duration(start: str | None, end: str | None, now: datetime | None = None) -> str:
    """How long something that started at ``start`` ran (so far, without ``end``), as the watch shows it."""
    return format_duration(seconds_between(start, end, now))


@dataclass(frozen=True)
class NodeRow:
    """One node as the watch shows it."""

    node_id: str
    node_type: str
    state: str
    duration: str
    last_log: str


def node_rows(execution: dict[str, Any], node_types: dict[str, str], now: datetime | None = None) -> list[NodeRow]:
    """The execution's nodes in definition order, each with its duration and latest log line."""
    last_logs: dict[str | None, str] = {}
    for line in execution.get("logs") or []:
        last_logs[line.get("nodeId")] = str(line.get("message", ""))
    rows = []
    for node_id, state in (execution.get("nodeStates") or {}).items():
        message = state.get("error") or last_logs.get(node_id, "")
        if state.get("reused"):
            message = "reused: ran in the execution this reruns"
        rows.append(
            NodeRow(
                node_id=node_id,
                node_type=node_types.get(node_id, ""),
                state=str(state.get("state", "")),
                duration=duration(state.get("startedAt"), state.get("completedAt"), now),
                last_log=str(message).replace("\n", " ")[:100],
            )
        )
    return rows


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
        f"  {duration(execution.get('startedAt'), execution.get('completedAt'))}",
        f"  started by {execution.get('startedByName') or execution.get('startedBy') or '?'}",
    )
    table = Table(title=title, title_justify="left", expand=False)
    for name in ("node", "type", "state", "time", "last log"):
        table.add_column(name, no_wrap=name != "last log", overflow="fold")
    for row in node_rows(execution, node_types):
        table.add_row(
            row.node_id, row.node_type, Text(row.state, STATE_STYLES.get(row.state, "")), row.duration, row.last_log
        )
    return table


def change_lines(previous: dict[str, str], execution: dict[str, Any], node_types: dict[str, str]) -> list[str]:
    """What changed since the last poll, one line each, for a log file or a pipe.

    ``previous`` (node id, or "" for the execution, to the state last shown) is updated in place.
    """
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
        by = f" by {execution['canceledBy']}" if state == "CANCELED" and execution.get("canceledBy") else ""
        line = f"{stamp} execution {execution.get('id')} {state}{by}"
        # The execution's new state reads first while it runs, last once it has ended.
        lines = [*lines, line] if state in TERMINAL_STATES else [line, *lines]
    return lines


def _node_types(api: Api, workflow_id: str) -> dict[str, str]:
    try:
        workflow = api.data("GET", f"/api/workflows/{workflow_id}")
    except ApiError:
        return {}  # deleted since, say; the types column stays empty
    return {str(n["id"]): str(n["type"]) for n in workflow.get("nodes", [])}


def _node_state(previous: dict[str, Any] | None, event: dict[str, Any]) -> dict[str, Any] | None:
    """A node's view after one of its events (None: the event is of an older run than the one shown)."""
    kind, at, run = event["type"], event["at"], event.get("run") or 0
    if previous and run < (previous.get("run") or 0):
        return None  # a superseded run's end: the newer run stands
    if kind == "node.skipped":
        return {**(previous or {}), "state": "SKIPPED"}
    if kind == "node.reused":
        completed_at = event.get("completedAt")
        return {"state": "COMPLETED", "startedAt": event.get("startedAt"), "completedAt": completed_at, "reused": True}
    if kind == "node.started":  # a run taken over (started again) keeps the time it first started
        started = event.get("startedAt") or at
        return {"state": "RUNNING", "startedAt": started, "completedAt": None, "error": None, "run": run}
    if kind == "node.completed":
        return {"state": "COMPLETED", "startedAt": event.get("startedAt"), "completedAt": at, "error": None, "run": run}
    if kind == "node.failed":
        error = event.get("error")
        return {"state": "FAILED", "startedAt": event.get("startedAt"), "completedAt": at, "error": error, "run": run}
    return previous


def followed(execution: dict[str, Any], events: list[dict[str, Any]], node_types: dict[str, str]) -> dict[str, Any]:
    """The execution as first read, with ``events`` folded in (a new dict: a live view may be drawing the old one)."""
    from stepwise.models.events import Event
    from stepwise.service.log_lines import log_lines

    execution = {**execution, "nodeStates": dict(execution.get("nodeStates") or {})}
    last_lines = {line.get("nodeId"): line for line in execution.get("logs") or []}
    for event in events:
        kind, node_id = event["type"], event.get("nodeId")
        if kind.startswith("node.") and node_id:
            state = _node_state(execution["nodeStates"].get(node_id), event)
            if state is None:
                continue
            execution["nodeStates"][node_id] = state
        elif kind in TERMINAL_EVENTS:
            execution.update(state=TERMINAL_EVENTS[kind], completedAt=event["at"], error=event.get("error"))
            if kind == "execution.canceled":
                execution["canceledBy"] = (event.get("by") or {}).get("name")
        elif kind in _STATE_OF:
            execution["state"] = _STATE_OF[kind]
        known = Event.model_validate({name: value for name, value in event.items() if name in Event.model_fields})
        for line in log_lines([known], lambda node: node_types.get(node) or node):
            last_lines[line.nodeId] = line.model_dump()
    execution["logs"] = list(last_lines.values())
    return execution


class _LiveView:
    """What the live table draws: the newest view, rendered anew at each refresh (so times go on)."""

    def __init__(self, execution: dict[str, Any], node_types: dict[str, str]) -> None:
        self.execution = execution
        self.node_types = node_types

    def __rich__(self) -> RenderableType:
        return render_table(self.execution, self.node_types)


def watch(api: Api, execution: dict[str, Any], *, live: bool) -> dict[str, Any]:
    """Follow ``execution`` (as last read) by its events until it ends, showing its nodes; returns its last state."""
    node_types = _node_types(api, str(execution.get("workflowId", "")))
    events_path = f"/api/workflows/execute/{execution['id']}/events"
    view = _LiveView(execution, node_types)
    seen: dict[str, str] = {}

    def show(current: dict[str, Any]) -> None:
        view.execution = current
        if not live:
            for line in change_lines(seen, current, node_types):
                print(line, file=sys.stderr, flush=True)

    def follow_events() -> dict[str, Any]:
        current, after, wait = execution, 0, 0
        show(current)
        while True:  # until the terminal event, always the last one
            params = {"after": str(after), "limit": str(EVENTS_PER_REQUEST), "waitSeconds": str(wait)}
            page = api.data("GET", events_path, params=params)
            events: list[dict[str, Any]] = page.get("events") or []
            current = followed(current, events, node_types)
            after = int(page.get("lastSeq") or after)
            show(current)
            if any(event["type"] in TERMINAL_EVENTS for event in events):
                break
            # A full page: more are waiting, read on at once; else wait for the next one.
            wait = 0 if len(events) == EVENTS_PER_REQUEST else WATCH_WAIT_SECONDS
        return current

    if not live:
        return follow_events()
    from rich.console import Console
    from rich.live import Live

    with Live(view, console=Console(stderr=True), refresh_per_second=4):
        return follow_events()


def finish(execution: dict[str, Any]) -> int:
    """Print the output (COMPLETED) or the error, and return the exit code for the final state."""
    state = execution.get("state")
    if state == "COMPLETED":
        print_json(execution.get("output"))
        return EXIT_OK
    if state == "CANCELED":
        by = f" by {execution['canceledBy']}" if execution.get("canceledBy") else ""
        print(f"stepwise: execution {execution.get('id')} was canceled{by}", file=sys.stderr)
        return EXIT_CANCELED
    print(f"stepwise: execution {execution.get('id')} failed: {execution.get('error')}", file=sys.stderr)
    return EXIT_FAILED


def follow(api: Api, execution_id: str) -> int:
    """Watch an execution, however it was started, to its end; the exit code says how it ended.

    A live table when stdout and stderr are a terminal, one line per change otherwise. Ctrl-C stops
    watching, not the execution.
    """
    path = f"/api/workflows/execute/{execution_id}"
    execution: dict[str, Any] = api.data("GET", path)
    try:
        watched = watch(api, execution, live=sys.stdout.isatty() and sys.stderr.isatty())
        # The output and the error as the execution records them (the events carry no derived output).
        execution = {**api.data("GET", path), "canceledBy": watched.get("canceledBy")}
    except KeyboardInterrupt:
        print(
            f"\nstepwise: stopped watching; the execution goes on: stepwise execution watch {execution_id}",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    return finish(execution)
