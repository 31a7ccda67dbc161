"""What every writer of an execution's log shares: decide on its newest group, append, decide anew on a race.

A change is decided on the control state of the newest group (the tail) and appended right after it; when
another writer appended first, the store says so (``SeqTaken``) and the change is decided again on the new
tail: a cancel it now sees wins, a withdrawn pause is not taken. See :mod:`stepwise.store.history`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from stepwise.clock import now_iso
from stepwise.errors import ExecutionNotFound
from stepwise.identity import Caller
from stepwise.models.events import Actor, Event, EventType, new_event
from stepwise.models.records import Control, Group
from stepwise.models.workflow import WorkflowDefinition
from stepwise.store import Store
from stepwise.store.history import SeqTaken

# Writers race only with a cancel, a pause request or a retried step: a few tries always settle it.
MAX_TRIES = 5


@dataclass
class Change:
    """What to append: events, and what else changes in the control state (beyond what the events say)."""

    events: list[Event]
    updates: dict[str, Any] = field(default_factory=dict)
    task_token: str | None = None


def actor(caller: Caller) -> Actor:
    """Who did it, as events record it."""
    return Actor(sub=caller.sub, name=caller.display_name)


def event(event_type: EventType, *, at: str | None = None, **fields: Any) -> Event:
    """A new event that happens now (or ``at`` then)."""
    return new_event(event_type, at or now_iso(), **fields)


def tail_of(store: Store, execution_id: str) -> Group:
    """The newest group of the execution's log (``ExecutionNotFound`` without one)."""
    tail = store.tail(execution_id)
    if tail is None:
        raise ExecutionNotFound(execution_id)
    return tail


def record_change[T](
    store: Store,
    execution_id: str,
    decide: Callable[[Group], Change | T],
    *,
    repair: bool = True,
) -> tuple[Group, Change | T]:
    """Decide on the newest group and append the change it gives; on a race, read again and decide again.

    ``decide`` returns a :class:`Change` to append, or anything else to append nothing (a refusal, an answer).
    Returns the group the change was appended to (or decided on) and what ``decide`` gave. ``repair`` writes
    the newest group's projections again first: a writer that comes after someone else's failure (a crash
    between a group and its projections) leaves them complete.
    """
    tail = tail_of(store, execution_id)
    if repair:
        store.project(execution_id, tail)
    for _ in range(MAX_TRIES):
        decided = decide(tail)
        if not isinstance(decided, Change):
            return tail, decided
        control = tail.control.after(decided.events).model_copy(update=decided.updates)
        try:
            group = store.commit(execution_id, tail, decided.events, control, task_token=decided.task_token)
        except SeqTaken:
            tail = tail_of(store, execution_id)
            continue
        return group, decided
    raise RuntimeError(f"execution {execution_id} kept changing; giving up")


def skipped(store: Store, execution_id: str, definition: WorkflowDefinition | None, ran: Iterable[str]) -> list[Event]:
    """``node.skipped`` for each node of the definition that never ran (the execution is ending).

    ``ran`` names the nodes the ending change itself runs (its node run may not be projected yet).
    """
    if definition is None:
        return []
    have_run = {node.nodeId for node in store.nodes(execution_id)} | set(ran)
    return [event("node.skipped", nodeId=node.id) for node in definition.nodes if node.id not in have_run]


def ending(
    store: Store,
    execution_id: str,
    definition: WorkflowDefinition | None,
    node_events: Sequence[Event],
    last: Event,
    *,
    ran: Iterable[str] = (),
) -> list[Event]:
    """The events of a change that ends the execution: the node events, every never-run node skipped, then
    ``last`` (the terminal event is always the last event of an execution). ``ran`` names nodes that ran in
    events appended with these (a step's batch)."""
    ran_here = {each.nodeId for each in node_events if each.nodeId} | set(ran)
    return [*node_events, *skipped(store, execution_id, definition, ran_here), last]


def approving(control: Control) -> bool:
    """True when the run waits at an approval nobody gave yet (a resume then approves it)."""
    active = control.activeNode
    return bool(active and active.waitingFor == "approval" and not active.approvedBy)


def resumed_event(control: Control, by: Actor) -> Event:
    """``execution.resumed`` by ``by`` (naming the approval node run it approves, if it waits at one)."""
    active = control.activeNode
    if active and approving(control):
        return event("execution.resumed", by=by, nodeId=active.nodeId, run=active.run)
    return event("execution.resumed", by=by)
