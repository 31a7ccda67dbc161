"""Watching an execution: a live table on a terminal, one line per change otherwise, then its outcome."""

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
WATCH_INTERVAL_SECONDS = 0.5
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
        line = f"{stamp} execution {execution.get('id')} {state}"
        # The execution's new state reads first while it runs, last once it has ended.
        lines = [*lines, line] if state in TERMINAL_STATES else [line, *lines]
    return lines


def _node_types(api: Api, workflow_id: str) -> dict[str, str]:
    try:
        workflow = api.data("GET", f"/api/workflows/{workflow_id}")
    except ApiError:
        return {}  # deleted since, say; the types column stays empty
    return {str(n["id"]): str(n["type"]) for n in workflow.get("nodes", [])}


def watch(api: Api, execution: dict[str, Any], *, live: bool) -> dict[str, Any]:
    """Poll ``execution`` (as last read) until it ends, showing its nodes; returns its last state."""
    node_types = _node_types(api, str(execution.get("workflowId", "")))
    path = f"/api/workflows/execute/{execution['id']}"
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
        for line in change_lines(seen, execution, node_types):
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


def follow(api: Api, execution_id: str) -> int:
    """Watch an execution, however it was started, to its end; the exit code says how it ended.

    A live table when stdout and stderr are a terminal, one line per change otherwise. Ctrl-C stops
    watching, not the execution.
    """
    execution: dict[str, Any] = api.data("GET", f"/api/workflows/execute/{execution_id}")
    try:
        execution = watch(api, execution, live=sys.stdout.isatty() and sys.stderr.isatty())
    except KeyboardInterrupt:
        print(
            f"\nstepwise: stopped watching; the execution goes on: stepwise execution watch {execution_id}",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    return finish(execution)
