"""Executions written before the log: turned into a log, once (a step of :mod:`stepwise.store.migrations`).

Before the log, an execution was one ``EXECUTION`` item holding its variables, its cursor and a revision, a
``RUN#<n>`` item per node run (with the run's log lines) and ``LOG#<time>#<rand>`` items for the lines of the
execution itself. :func:`log_execution` writes what they say as the execution's log, then its projections
(variables, node runs, the summary), then deletes the old items. What the old items did not keep stays
unknown: the ``execution.started`` event holds the variables as they were last recorded (the initial ones
were not kept), and a completed node's ``next`` is not known.

Each write is conditional and the events are built the same way every time, so running it twice, or after a
run that stopped half way, completes what is missing and changes nothing else. An execution in flight goes
on from its log once converted (its next step reads the newest group).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from stepwise.clock import parse_iso
from stepwise.models.events import Actor, Event, new_event
from stepwise.models.records import ActiveNode, Control
from stepwise.store.codec import from_json
from stepwise.store.errors import ConditionFailed
from stepwise.store.executions import EXECUTION, ExecutionStore
from stepwise.store.history import SeqTaken, execution_key
from stepwise.store.values import json_bytes

RUN_PREFIX = "RUN#"
LOG_PREFIX = "LOG#"
# Lines the old code logged for what the log now records as events (an event reads as that line again).
_EVENT_LINES = (
    "Node started: ",
    "Node completed in ",
    "Node failed: ",
    "Node canceled: ",
    "Execution started",
    "Execution completed",
    "Execution paused",
    "Execution canceled by ",
    "Waiting for approval at node ",
)
# Events per group: a group stays far below DynamoDB's 400 KB item limit.
GROUP_EVENTS = 100
_OLD_FIELDS = ("variables", "revision", "nodeRuns", "maxNodeRuns", "cursor", "activeNode")


def needs_log(item: Mapping[str, Any]) -> bool:
    """True for an ``EXECUTION`` item written before the log (it has a revision, not a ``seq``)."""
    return item.get("SK") == EXECUTION and "seq" not in item


def _kept(lines: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return [line for line in lines if not str(line.get("message", "")).startswith(_EVENT_LINES)]


def _log(line: Mapping[str, Any], run: int | None) -> Event:
    fields: dict[str, Any] = {"level": line.get("level") or "info", "message": str(line.get("message", ""))}
    if line.get("nodeId"):
        fields.update(nodeId=line["nodeId"], run=run)
    return new_event("log", str(line["timestamp"]), **fields)


def _run_events(run: Mapping[str, Any]) -> list[Event]:
    node, number, started = str(run["nodeId"]), int(run["run"]), str(run.get("startedAt") or "")
    events = [new_event("node.started", started, nodeId=node, run=number)]
    events += [_log(line, number) for line in _kept(run.get("logs") or [])]
    ended = str(run.get("completedAt") or started)
    if run["state"] == "COMPLETED":
        took = int((parse_iso(ended) - parse_iso(started)).total_seconds() * 1000) if started else 0
        completed = {"startedAt": started, "output": run.get("output"), "durationMs": max(0, took)}
        events.append(new_event("node.completed", ended, nodeId=node, run=number, **completed))
    elif run["state"] == "FAILED":
        failed = {"startedAt": started, "error": run.get("error")}
        events.append(new_event("node.failed", ended, nodeId=node, run=number, **failed))
    return events


def _active_events(active: ActiveNode | None, runs: list[Mapping[str, Any]]) -> list[Event]:
    """The node in flight (its run was not recorded yet): its start, and its wait if it waits."""
    if active is None or any(int(run["run"]) == active.run for run in runs):
        return []
    events = [new_event("node.started", active.startedAt, nodeId=active.nodeId, run=active.run)]
    if active.waitingFor:
        waiting = {"waitingFor": active.waitingFor, "seconds": active.seconds}
        events.append(new_event("node.waiting", active.startedAt, nodeId=active.nodeId, run=active.run, **waiting))
    return events


def _ending(record: Mapping[str, Any], active: ActiveNode | None, node_ids: list[str], ran: set[str]) -> list[Event]:
    """The events after the node runs: a pause, or (once ended) the nodes never run and the end."""
    state, at, owner = str(record["state"]), str(record.get("completedAt") or record["startedAt"]), str(record["owner"])
    if state == "PAUSED":
        reason = "approval" if active and active.waitingFor == "approval" else "requested"
        return [new_event("execution.paused", at, reason=reason)]
    last = {
        "COMPLETED": new_event("execution.completed", at),
        "FAILED": new_event("execution.failed", at, error=record.get("error")),
        "CANCELED": new_event("execution.canceled", at, by=Actor(sub=owner, name=owner)),
    }.get(state)
    if last is None:
        return []
    return [*(new_event("node.skipped", at, nodeId=node) for node in node_ids if node not in ran), last]


def history_of(
    record: Mapping[str, Any], items: Sequence[Mapping[str, Any]], node_ids: list[str]
) -> tuple[list[Event], Control]:
    """The events an old execution's items tell, in order, and its control state after them."""
    variables = from_json(record.get("variables"), {})
    owner, started_at = str(record["owner"]), str(record["startedAt"])
    started = new_event(
        "execution.started",
        started_at,
        workflowId=record["workflowId"],
        workflowVersion=record["workflowVersion"],
        startedBy=record.get("startedBy") or owner,
        by=Actor(sub=owner, name=str(record.get("startedBy") or owner)),
        variables=variables,
    )
    runs = sorted(
        (from_json(item["body"]) for item in items if str(item["SK"]).startswith(RUN_PREFIX)),
        key=lambda run: int(run["run"]),
    )
    active = ActiveNode.model_validate(from_json(record["activeNode"])) if record.get("activeNode") else None
    # Each piece of the history at the time it began; the order the old items were written breaks ties.
    pieces: list[tuple[str, int, list[Event]]] = [
        (str(run.get("startedAt") or ""), n, _run_events(run)) for n, run in enumerate(runs)
    ]
    if flight := _active_events(active, runs):
        pieces.append((flight[0].at, len(runs), flight))
    lines = _kept(
        line for item in items if str(item["SK"]).startswith(LOG_PREFIX) for line in from_json(item.get("logs"), [])
    )
    pieces += [(str(line["timestamp"]), len(runs) + 1 + n, [_log(line, None)]) for n, line in enumerate(lines)]
    events = [started]
    if record["state"] in ("RUNNING", "PAUSED", "COMPLETED") or runs:
        events.append(new_event("execution.running", started_at))
    events += [event for _, _, piece in sorted(pieces, key=lambda each: each[:2]) for event in piece]
    events += _ending(record, active, node_ids, {str(run["nodeId"]) for run in runs})
    control = Control(
        state=record["state"],
        workflowId=str(record["workflowId"]),
        workflowVersion=int(record["workflowVersion"]),
        cursor=record.get("cursor"),
        nodeRuns=int(record.get("nodeRuns") or 0),
        maxNodeRuns=int(record.get("maxNodeRuns") or 1000),
        activeNode=active,
        pauseRequested=bool(record.get("pauseRequested")),
        error=record.get("error"),
        completedAt=record.get("completedAt"),
        variablesBytes=sum(json_bytes(value) for value in variables.values()),
    )
    return events, control


def _node_ids(store: ExecutionStore, record: Mapping[str, Any]) -> list[str]:
    item = store.get(f"WORKFLOW#{record['workflowId']}", f"VERSION#{int(record['workflowVersion']):06d}")
    definition = from_json(item["definition"], {}) if item else {}
    return [str(node.get("id")) for node in definition.get("nodes", [])]


def log_execution(store: ExecutionStore, record: Mapping[str, Any]) -> bool:
    """Write an old execution's log, its projections and its new summary, then delete its old items.

    Returns False when there was nothing left to do (converted meanwhile).
    """
    execution_id = str(record["id"])
    items = [item for item in store.query(execution_key(execution_id), consistent=True) if item["SK"] != EXECUTION]
    events, control = history_of(record, items, _node_ids(store, record))
    after = None
    for start in range(0, len(events), GROUP_EVENTS):
        chunk = events[start : start + GROUP_EVENTS]
        try:
            after = store.append(execution_id, after, chunk, control)
        except SeqTaken:
            after = store.group_holding(execution_id, start + len(chunk))  # written by an earlier run
        assert after is not None
        store.project_variables(execution_id, after)
        store.project_nodes(execution_id, after)
    assert after is not None
    try:
        store.update(
            execution_key(execution_id),
            EXECUTION,
            expression="SET seq = :seq, startedByName = :name REMOVE "
            + ", ".join(f"#old{n}" for n in range(len(_OLD_FIELDS))),
            condition="attribute_exists(PK) AND attribute_not_exists(seq)",
            names={f"#old{n}": name for n, name in enumerate(_OLD_FIELDS)},
            values={":seq": after.last, ":name": str(record.get("startedBy") or record["owner"])},
        )
    except ConditionFailed:
        return False
    for item in items:
        if str(item["SK"]).startswith((RUN_PREFIX, LOG_PREFIX)):
            store.delete(execution_key(execution_id), str(item["SK"]))
    return True
