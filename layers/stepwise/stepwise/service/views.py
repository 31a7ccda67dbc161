"""Reading an execution: the bounded view (GET), its events after a cursor (long-poll), and one value.

The view costs the same for 10 or 10,000 node runs: the ``EXECUTION`` item, the newest group (the control
state), one item per node (its latest run and how many runs), one per variable, and the newest
:data:`MAX_LOG_LINES` log lines (the rest are in the events). Values kept in S3 are shown inline while the
view stays within :data:`VALUES_BUDGET_BYTES` (Lambda answers at most 6 MB), and as references to the route
that returns them past it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from itertools import chain
from typing import Any

from stepwise.errors import NotFound
from stepwise.identity import Caller
from stepwise.models.events import Event, EventsPage, ValueRef, public_event, reference
from stepwise.models.execution import TERMINAL_STATES, LogLine, NodeStateView, WorkflowExecution
from stepwise.models.records import ExecutionRecord, Group, NodeItem, VariableItem
from stepwise.models.workflow import WorkflowDefinition
from stepwise.service.concurrency import summaries
from stepwise.service.executions import execution_record
from stepwise.service.log_lines import labels, log_lines
from stepwise.service.variables import LoadValue
from stepwise.store import Store, terminal

MAX_LOG_LINES = 1_000
# Values inlined in one view, in all: a view's logs and nodes stay well under Lambda's 6 MB beside them.
VALUES_BUDGET_BYTES = 4_000_000
# One page of events holds at most this much (and at least one event): each event's values are at most the
# inline threshold (bigger ones are references), but a page of 500 events could add up past 6 MB.
EVENTS_BUDGET_BYTES = 4_000_000
# A long-poll looks again this soon, then a little later each time (a watcher hears of an event within
# half a second, and a wait of 25 s reads the log about 55 times, not 170).
FIRST_LOOK_SECONDS = 0.15
LAST_LOOK_SECONDS = 0.5


def _readable(store: Store, caller: Caller, execution_id: str) -> ExecutionRecord:
    record = execution_record(store, execution_id)
    caller.ensure_can_read(record.owner, f"execution {execution_id}")
    return record


def _newest_lines(groups: Iterable[list[Event]], definition: WorkflowDefinition | None) -> list[LogLine]:
    """The newest log lines: group after group, from the newest back, until there are enough."""
    chunks: list[list[LogLine]] = []
    count = 0
    label = labels(definition)
    for events in groups:
        lines = list(log_lines(events, label))
        chunks.append(lines)
        count += len(lines)
        if count >= MAX_LOG_LINES:
            break
    ordered = [line for chunk in reversed(chunks) for line in chunk]
    return ordered[-MAX_LOG_LINES:]


def _shown_variables(execution_id: str, items: list[VariableItem], load: LoadValue) -> dict[str, Any]:
    budget = VALUES_BUDGET_BYTES
    shown: dict[str, Any] = {}
    for item in sorted(items, key=lambda each: each.bytes):
        if item.ref is None:
            shown[item.name] = item.value
        elif item.bytes <= budget:
            shown[item.name] = load(item.ref)
        else:
            shown[item.name] = reference(execution_id, item.name, item.seq, item.bytes)
            continue
        budget -= item.bytes
    return {item.name: shown[item.name] for item in items}


def _node_view(item: NodeItem, record: ExecutionRecord) -> NodeStateView:
    view = NodeStateView.model_validate(item.model_dump(include=set(NodeStateView.model_fields)))
    if item.state == "RUNNING" and terminal(record.state):
        # Ended while it ran (canceled, or failed outside the node): its result will be discarded.
        view.state, view.completedAt, view.output = "FAILED", record.completedAt, None
        view.error = "canceled" if record.state == "CANCELED" else record.error
    return view


def node_states(
    record: ExecutionRecord, nodes: list[NodeItem], definition: WorkflowDefinition | None
) -> dict[str, NodeStateView]:
    """Every node of the pinned version: its latest run (and how many runs), or PENDING / SKIPPED."""
    latest = {item.nodeId: item for item in nodes}
    node_ids = [node.id for node in definition.nodes] if definition else list(latest)
    never = "SKIPPED" if terminal(record.state) else "PENDING"
    return {
        node_id: _node_view(latest[node_id], record)
        if node_id in latest
        else NodeStateView(state=never, startedAt=None, completedAt=None, error=None, output=None, runs=0)
        for node_id in node_ids
    }


def get(store: Store, caller: Caller, execution_id: str, load: LoadValue) -> WorkflowExecution:
    """The execution: its state, variables, every node's latest run and the newest log lines."""
    record = _readable(store, caller, execution_id)
    tail = store.tail(execution_id)
    if tail is None:
        raise NotFound(f"Execution {execution_id} has no history (run python -m stepwise.store.migrations)")
    if record.seq < tail.last and not record.shows(tail.control):
        store.project(execution_id, tail)  # a writer died before it projected the newest group
        record = record.with_control(tail.control, tail.last)
    definition = store.get_workflow_version(record.workflowId, record.workflowVersion)
    variables = _shown_variables(execution_id, store.variables(execution_id), load)
    return WorkflowExecution(
        **summaries(store, [record])[0].model_dump(),
        variables=variables,
        logs=_newest_lines(chain([tail.events], store.newest_events(execution_id, before=tail.first)), definition),
        # Derived, not stored: the log holds the variables once.
        output=definition.output_of(variables) if definition and record.state == "COMPLETED" else None,
        nodeStates=node_states(record, list(store.nodes(execution_id)), definition),
    )


def _within(events: list[Event], limit: int) -> list[Event]:
    """The first events, at most ``limit`` of them and :data:`EVENTS_BUDGET_BYTES` in all (at least one)."""
    kept: list[Event] = []
    size = 0
    for event in events[:limit]:
        size += len(event.model_dump_json(exclude_unset=True))
        if kept and size > EVENTS_BUDGET_BYTES:
            break
        kept.append(event)
    return kept


def _events_after(store: Store, execution_id: str, after: int, limit: int) -> tuple[list[Event], Group | None]:
    """Up to ``limit`` events after ``after``, and the newest group when they reach it (else None)."""
    events: list[Event] = []
    holding = store.group_holding(execution_id, after) if after > 0 else None
    if holding is not None and holding.last > after:
        events = [event for event in holding.events if event.seq > after]
    groups = list(store.groups_after(execution_id, after, limit=limit)) if len(events) < limit else []
    for group in groups:
        events.extend(group.events)
    newest = (groups[-1] if groups else holding) if len(groups) < limit else None
    kept = _within(events, limit)
    return kept, newest if len(kept) == len(events) else None


def events(
    store: Store,
    caller: Caller,
    execution_id: str,
    *,
    after: int,
    limit: int,
    wait_seconds: float,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> EventsPage:
    """The events after ``after`` in order (at most ``limit``); when there are none yet, wait for one up to
    ``wait_seconds`` (looking again every fraction of a second) and answer with none if none came."""
    _readable(store, caller, execution_id)
    deadline = clock() + wait_seconds
    found, newest = _events_after(store, execution_id, after, limit)
    if not found:
        newest = store.tail(execution_id)
        if newest is not None and newest.control.state in TERMINAL_STATES:
            deadline = clock()  # an ended execution has nothing more to come: no wait
    pause = FIRST_LOOK_SECONDS
    while not found and clock() < deadline:
        sleep(min(pause, max(0.0, deadline - clock())))
        pause = min(pause * 1.25, LAST_LOOK_SECONDS)
        groups = list(store.groups_after(execution_id, after, limit=limit))
        every = [event for group in groups for event in group.events]
        found = _within(every, limit)
        newest = groups[-1] if groups and len(groups) < limit and len(found) == len(every) else None
    if newest is None:
        newest = store.tail(execution_id)
    return EventsPage(
        events=[public_event(event, execution_id) for event in found],
        # Nothing new: the 'after' asked for, but never past the log's end (a client cannot skip ahead).
        lastSeq=found[-1].seq if found else min(after, newest.last) if newest else 0,
        state=newest.control.state if newest else "PENDING",
    )


def value(store: Store, caller: Caller, execution_id: str, name: str, seq: int | None, load: LoadValue) -> Any:
    """A variable's value: as it is now, or (``seq``) as event ``seq`` set it; whole, wherever it is kept."""
    _readable(store, caller, execution_id)
    if seq is None:
        item = store.variable(execution_id, name)
        if item is None:
            raise NotFound(f"Execution {execution_id} has no variable '{name}'")
        return load(item.ref) if item.ref else item.value
    group = store.group_holding(execution_id, seq)
    setter = next((event for event in group.events if event.seq == seq), None) if group else None
    values = setter.set_variables() if setter else {}
    if name not in values:
        raise NotFound(f"Event {seq} of execution {execution_id} did not set a variable '{name}'")
    stored = values[name]
    return load(stored) if isinstance(stored, ValueRef) else stored
