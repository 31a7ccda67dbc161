"""An execution's log lines, read from its events: the lines nodes logged, and one line per thing that happened.

The log stores what happened once, as events; a line such as ``Node started: setVariables, run 3`` is how a
``node.started`` event reads, not a second record of it (and the log's groups stay small).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from stepwise.models.events import Event
from stepwise.models.execution import LogLevel, LogLine
from stepwise.models.workflow import WorkflowDefinition

Label = Callable[[str], str]


def labels(definition: WorkflowDefinition | None) -> Label:
    """How a node is named in its lines: ``name (type)``, or its type; its id when the definition is unknown."""
    named = (
        {node.id: f"{node.name} ({node.type})" if node.name else node.type for node in definition.nodes}
        if definition
        else {}
    )
    return lambda node_id: named.get(node_id, node_id)


def _message(event: Event, label: Label) -> tuple[LogLevel, str] | None:
    who = event.by.name if event.by else "someone"
    match event.type:
        case "log":
            return event.level or "info", event.message or ""
        case "execution.started" if event.rerunOf:
            return "info", f"Rerun of {event.rerunOf.executionId} from node {event.rerunOf.fromNode}"
        case "node.reused":
            return "info", f"Node reused: {label(event.nodeId or '')}, as it completed in the source; not run again"
        case "execution.queued":
            doing = f"resume (asked by {who})" if event.by else "start"
            limit = f"the {event.limit}'s concurrency limit ({event.concurrency})"
            return "info", f"Waiting for a slot to {doing}: {limit} is reached"
        case "execution.dequeued" if not event.waitedMs:
            return "info", "A concurrency slot is free: it goes on"
        case "execution.dequeued":
            return "info", f"A slot is free after {event.waitedMs} ms of waiting"
        case "execution.running":
            return "info", "Execution started"
        case "execution.pause_requested":
            return "info", f"Pause requested by {who}: it pauses before its next node"
        case "execution.pause_withdrawn":
            return "info", f"Pause withdrawn by {who}"
        case "execution.paused" if event.reason == "approval":
            return "info", f"Waiting for approval at node {event.nodeId}: resume to approve"
        case "execution.paused" if event.by:
            return "info", f"Execution paused, as {who} asked"
        case "execution.paused":
            return "info", "Execution paused"
        case "execution.resumed" if event.nodeId:
            return "info", f"Approved by {who}; execution resumed"
        case "execution.resumed":
            return "info", f"Execution resumed by {who}"
        case "execution.restarted":
            return "warning", f"Execution restarted as Step Functions run {event.runName}: {event.message}"
        case "execution.completed":
            return "info", "Execution completed"
        case "execution.failed":
            return "error", f"Execution failed: {event.error}"
        case "execution.canceled":
            return "info", f"Execution canceled by {who}"
        case "node.started" if event.startedAt:
            return "warning", f"Node started again: {label(event.nodeId or '')}, run {event.run} (same run)"
        case "node.started":
            return "info", f"Node started: {label(event.nodeId or '')}, run {event.run}"
        case "node.completed":
            return "info", f"Node completed in {event.durationMs} ms"
        case "node.failed" if event.error == "canceled":
            return "warning", "Node canceled: the execution was canceled while it ran; result discarded"
        case "node.failed":
            return "error", f"Node failed: {event.error}"
    return None


def _belongs_to_node(event: Event) -> bool:
    return (
        event.type.startswith("node.")
        or event.type == "log"
        or (event.type in ("execution.paused", "execution.resumed") and event.nodeId is not None)
    )


def log_lines(events: Iterable[Event], label: Label) -> Iterator[LogLine]:
    """The log lines of ``events``, in their order (``label`` names a node: see :func:`labels`)."""
    for event in events:
        said = _message(event, label)
        if said is None:
            continue
        level, message = said
        node_id = event.nodeId if _belongs_to_node(event) else None
        yield LogLine(nodeId=node_id, level=level, message=message, timestamp=event.at)
