"""Concurrency limits: how many runs may run at once, per workflow and per owner, and the fair queue of the rest.

A workflow may set ``concurrency: {"limit": n, "onLimit": "queue" | "reject"}``; every owner has the stack's
owner-wide limit (``OWNER_CONCURRENCY_LIMIT``, 0: none). A run holds one **slot** of each limit that applies
from the moment it is admitted (a start, a resume, or leaving the queue) until it ends or pauses: the slots are
part of its control state, and the store takes and gives them back by the same transaction as the group of
events that changes them (:mod:`stepwise.store.slots`), so no path that ends a run can forget them.

- **A start over a limit** is refused with :class:`~stepwise.errors.TooManyRuns` (429, ``Retry-After``) when
  the workflow's own limit is full and says ``reject``; otherwise (``queue``, and always for the owner-wide
  limit) it is recorded PENDING with an ``execution.queued`` event naming the limit, and an entry in its owner's
  queue. No Step Functions run exists while it waits.
- **A paused run gives its slots back** (an approval waiting for days holds no one else up), and a resume
  takes them again, or waits in the queue (PAUSED with ``queuedAt``), or is refused like a start: a resume never
  overruns a limit.
- **When a run gives slots back** (it ended, failed, was canceled, paused, or repaired: any commit), the store
  tells :func:`promote`, which takes the oldest waiting runs of that owner out of the queue while they fit
  (``execution.dequeued``, the slots taken in the same write) and then starts their Step Functions run (or
  completes the paused run's task). Start order is kept within a workflow by its counter's count of waiting
  runs (a new start waits behind them); across an owner's workflows, the oldest run that fits goes first.

A crash between taking a run out of the queue and starting its Step Functions run leaves it PENDING, holding
its slots, with no run: exactly what the reconciler restarts. A queued run (``Control.queued``) has no run on
purpose: it is never restarted, only promoted; a reconciler that finds one calls :func:`wake` for its owner
(``Control.queued.owner``), which moves a queue that a crash between a release and its promotion left behind.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from stepwise import stepfunctions
from stepwise.clock import now_iso, parse_iso
from stepwise.errors import Conflict, TooManyRuns
from stepwise.identity import Caller
from stepwise.models.events import Actor, Event
from stepwise.models.execution import ExecutionSummary
from stepwise.models.records import Control, ExecutionRecord, Group, QueueSpot
from stepwise.models.workflow import Concurrency, WorkflowView
from stepwise.observability import logger
from stepwise.service.history import Change, actor, approving, ending, event, record_change
from stepwise.store import LimitReached, Store
from stepwise.store.slots import (
    QueueEntry,
    is_workflow_counter,
    owner_counter,
    queue_key,
    workflow_counter,
)

# What a 429 suggests: slots free as runs end, and a client that waits a little before it tries again costs less.
RETRY_AFTER_SECONDS = 5
LimitName = Literal["workflow", "owner"]


@dataclass(frozen=True)
class Limits:
    """The owner-wide limit (0: none), and the state machine a queued start is started on (None where no
    function that may queue a start runs: the node runner only promotes runs queued by others)."""

    owner_limit: int
    state_machine_arn: str | None = None


def slots_for(limits: Limits, owner: str, workflow_id: str, concurrency: Concurrency | None) -> dict[str, int]:
    """The slots a run of the workflow holds: its workflow's (when limited) and its owner's (when limited)."""
    slots: dict[str, int] = {}
    if concurrency is not None:
        slots[workflow_counter(owner, workflow_id)] = concurrency.limit
    if limits.owner_limit:
        slots[owner_counter(owner)] = limits.owner_limit
    return slots


def _limit_name(counter: str) -> LimitName:
    return "workflow" if is_workflow_counter(counter) else "owner"


def _held_by(store: Store, slots: dict[str, int], full: LimitReached) -> str:
    """The counter a run that could not take its slots waits for.

    A workflow's counter refuses a take when its slots are taken, and also when runs of the workflow wait already
    (a later run never overtakes them): with a slot free, they wait for the owner's limit, and so does this one.
    """
    if is_workflow_counter(full.counter) and store.slots_running(full.counter)[0] < slots[full.counter]:
        return next((counter for counter in slots if not is_workflow_counter(counter)), full.counter)
    return full.counter


def _refuse_if_rejecting(workflow_id: str, concurrency: Concurrency | None, counter: str, what: str) -> None:
    if concurrency is None or concurrency.onLimit != "reject" or not is_workflow_counter(counter):
        return
    raise TooManyRuns(
        f"Workflow {workflow_id} is at its concurrency limit ({concurrency.limit} running; onLimit: reject): "
        f"{what} later",
        retry_after=RETRY_AFTER_SECONDS,
    )


def _spot(
    owner: str,
    execution_id: str,
    workflow_id: str,
    slots: dict[str, int],
    counter: str,
    *,
    at: str,
    state_machine_arn: str | None = None,
    resume_by: Actor | None = None,
) -> QueueSpot:
    workflow_slot = workflow_counter(owner, workflow_id)
    return QueueSpot(
        owner=owner,
        key=queue_key(at, execution_id),
        queuedAt=at,
        limit=_limit_name(counter),
        workflowId=workflow_id,
        workflowSlot=workflow_slot if workflow_slot in slots else None,
        stateMachineArn=state_machine_arn,
        resumeBy=resume_by,
    )


def start_new(
    store: Store,
    limits: Limits,
    workflow: WorkflowView,
    execution_id: str,
    owner: str,
    first: list[Event],
    control: Control,
) -> tuple[Group, bool]:
    """Append a new execution's first group holding its slots (True: start its run now), or waiting in its
    owner's queue (False); the caller projects the group.

    ``TooManyRuns`` when the workflow's own limit is full and says ``reject``; ``SeqTaken`` when the execution
    was recorded already.
    """
    slots = slots_for(limits, owner, workflow.id, workflow.concurrency)
    started = first[0]
    try:
        return store.append(execution_id, None, first, control.model_copy(update={"slots": slots})), True
    except LimitReached as full:
        counter = _held_by(store, slots, full)
        _refuse_if_rejecting(workflow.id, workflow.concurrency, counter, "start it again")
        spot = _spot(
            owner, execution_id, workflow.id, slots, counter, at=started.at, state_machine_arn=limits.state_machine_arn
        )
        queued = event("execution.queued", at=started.at, limit=spot.limit, concurrency=slots[counter])
        group = store.append(execution_id, None, [*first, queued], control.model_copy(update={"queued": spot}))
    _wake_if_room(store, limits, owner, slots)
    return group, False


def _wake_if_room(store: Store, limits: Limits, owner: str, slots: dict[str, int]) -> None:
    """After a run joined the queue: a run that ended between its take and its entry looked at the queue before
    the entry was there, and left a slot free. Only then is the queue moved on (one read when the limit is full)."""
    if all(store.slots_running(counter)[0] < limit for counter, limit in slots.items()):
        wake(store, limits, owner)


def resume_slots(store: Store, limits: Limits, record: ExecutionRecord) -> dict[str, int]:
    """The slots a resume of the run takes (its workflow's limit as the workflow is now)."""
    current = store.get_workflow(record.workflowId)
    return slots_for(limits, record.owner, record.workflowId, current.concurrency if current else None)


def take_resume_slots(store: Store, execution_id: str, slots: dict[str, int]) -> None:
    """A resume takes the paused run's slots before Step Functions resumes it (``LimitReached`` when one is full),
    so a resumed run never goes over a limit; the execution stays PAUSED until the resume is recorded."""

    def decide(tail: Group) -> Change | None:
        control = tail.control
        if not slots or control.state != "PAUSED" or control.slots == slots:
            return None
        return Change([event("execution.dequeued", waitedMs=0)], updates={"slots": slots})

    record_change(store, execution_id, decide)


def give_back_resume_slots(store: Store, execution_id: str, task_token: str | None) -> None:
    """The resume did not reach the run: it is paused still, on the same task, and gives back the slots it took."""

    def decide(tail: Group) -> Change | None:
        control = tail.control
        if control.state != "PAUSED" or not control.slots:
            return None
        active = control.activeNode
        if active and approving(control):
            paused = event("execution.paused", reason="approval", nodeId=active.nodeId, run=active.run)
        else:
            paused = event("execution.paused", reason="requested")
        return Change([paused], task_token=task_token)

    record_change(store, execution_id, decide)


def queue_resume(
    store: Store, limits: Limits, record: ExecutionRecord, caller: Caller, slots: dict[str, int], full: LimitReached
) -> str:
    """A resume found a limit full: refuse it (the workflow rejects) or let the paused run wait in the queue."""
    current = store.get_workflow(record.workflowId)
    counter = _held_by(store, slots, full)
    _refuse_if_rejecting(record.workflowId, current.concurrency if current else None, counter, "resume it")
    execution_id = record.id

    def decide(tail: Group) -> Change:
        control = tail.control
        if control.state != "PAUSED" or control.queued is not None:
            raise Conflict(f"Execution {execution_id} changed meanwhile ({control.state}); look at it again")
        at = now_iso()
        spot = _spot(record.owner, execution_id, record.workflowId, slots, counter, at=at, resume_by=actor(caller))
        queued = event(
            "execution.queued",
            at=at,
            limit=spot.limit,
            concurrency=slots[counter],
            by=spot.resumeBy,
            **_approval(control),
        )
        return Change([queued], updates={"queued": spot})

    record_change(store, execution_id, decide)
    _wake_if_room(store, limits, record.owner, slots)
    now = store.get_execution(execution_id)
    if now is None or now.queuedAt is None:
        return f"Execution {execution_id} resumed"
    position = positions(store, [now]).get(execution_id)
    return (
        f"Execution {execution_id} waits for a slot of its {now.queueLimit}'s concurrency limit to resume "
        f"(position {position}); it resumes by itself when a run ends"
    )


def _approval(control: Control) -> dict[str, Any]:
    """The approval node a resume approves (its events name it), else nothing."""
    active = control.activeNode
    return {"nodeId": active.nodeId, "run": active.run} if active and active.waitingFor == "approval" else {}


def waiting_conflict(execution_id: str, control: Control) -> None:
    """A second resume of a run already waiting for a slot to resume is a 409."""
    if control.queued is not None:
        raise Conflict(f"Execution {execution_id} already waits for a slot to resume; it resumes by itself")


# --------------------------------------------------------------------------------------------- promotion

_promoting = threading.local()


@dataclass(frozen=True)
class _Leaving:
    """A run taken out of the queue: where it waited, and the task a queued resume completes."""

    spot: QueueSpot
    task_token: str | None


def promote(store: Store, limits: Limits, owner: str) -> list[str]:
    """Take the owner's oldest waiting runs out of the queue while their slots are free, and start (or resume)
    them; returns their ids.

    Called after every commit that gave slots back, and after a run joined the queue. A promoted run whose start
    fails ends FAILED and gives its slots back, which calls this again from within: that call only asks the pass
    under way to look at the queue once more.
    """
    pending: set[str] | None = getattr(_promoting, "owners", None)
    if pending is not None:
        pending.add(owner)
        return []
    owners = _promoting.owners = {owner}
    promoted: list[str] = []
    try:
        while owners:
            promoted += _promote_owner(store, limits, owners.pop())
    finally:
        _promoting.owners = None
    return promoted


def wake(store: Store, limits: Limits, owner: str) -> None:
    """:func:`promote` for a caller whose own change is recorded already (a run ended, or joined the queue).

    A failure is logged, not raised: the change it follows stands, and the queue moves on at the next run of the
    owner that ends or joins it, or at the reconciler's pass (as after a crash between the two).
    """
    try:
        promote(store, limits, owner)
    except Exception:
        logger.exception("the queue could not be moved on; it is at the next run that ends", extra={"owner": owner})


def _promote_owner(store: Store, limits: Limits, owner: str) -> list[str]:
    """One pass over the owner's queue, oldest first: each run whose slots are free leaves it and goes.

    Runs of a workflow that is full are skipped; once the runs left to read are all of full workflows (the
    counters' counts of waiting runs say so), the pass stops: a thousand runs waiting for one workflow cost one
    page of the queue, not a thousand entries, each time a run ends.
    """
    running, waiting = store.slots_running(owner_counter(owner))
    if not waiting or (limits.owner_limit and running >= limits.owner_limit):
        return []
    promoted: list[str] = []
    full_workflows: dict[str, int] = {}
    concurrency: dict[str, Concurrency | None] = {}
    for entry in store.queue(owner):
        if entry.workflow_id in full_workflows:
            continue
        if entry.workflow_id not in concurrency:
            current = store.get_workflow(entry.workflow_id)
            concurrency[entry.workflow_id] = current.concurrency if current else None
        limit = concurrency[entry.workflow_id]
        if limit is not None:
            taken, queued = store.slots_running(workflow_counter(owner, entry.workflow_id))
            if taken >= limit.limit:
                full_workflows[entry.workflow_id] = queued
                if sum(full_workflows.values()) + len(promoted) >= waiting:
                    break  # every run still waiting is a run of a full workflow
                continue
        try:
            leaving = _take_out(store, entry, slots_for(limits, owner, entry.workflow_id, limit))
        except LimitReached as full:
            if not is_workflow_counter(full.counter):
                break  # the owner's slots are all taken: nothing else fits
            full_workflows[entry.workflow_id] = store.slots_running(full.counter)[1]
            continue
        if leaving is not None:
            _go(store, entry.execution_id, leaving)
            promoted.append(entry.execution_id)
    return promoted


def _take_out(store: Store, entry: QueueEntry, slots: dict[str, int]) -> _Leaving | None:
    """Take the run out of the queue, holding its slots (``LimitReached`` if one is not free); the spot it left
    (and a paused run's task token), or None when it no longer waits there (canceled, or taken out already)."""
    left: list[_Leaving] = []

    def decide(tail: Group) -> Change | None:
        spot = tail.control.queued
        if spot is None or spot.key != entry.key:
            return None
        at = now_iso()
        waited = round((parse_iso(at) - parse_iso(spot.queuedAt)).total_seconds() * 1000)
        events = [event("execution.dequeued", at=at, waitedMs=max(0, waited))]
        token = None
        if tail.control.state == "PAUSED" and spot.resumeBy is not None:
            events.append(event("execution.resumed", by=spot.resumeBy, **_approval(tail.control)))
            # Read before the resume is recorded: the execution item keeps the token only while PAUSED.
            record = store.get_execution(entry.execution_id)
            token = record.taskToken if record else None
        left[:] = [_Leaving(spot, token)]
        return Change(events, updates={"slots": slots})

    _, decided = record_change(store, entry.execution_id, decide, repair=False)
    return left[0] if isinstance(decided, Change) else None


def _go(store: Store, execution_id: str, leaving: _Leaving) -> None:
    """Start the promoted run's Step Functions run, or complete its paused task (a queued resume)."""
    spot = leaving.spot
    if spot.resumeBy is not None:
        try:
            if leaving.task_token is None:
                raise stepfunctions.TaskGone("no task token kept", "TaskDoesNotExist")
            stepfunctions.resume(leaving.task_token, {"resumedBy": spot.resumeBy.model_dump()})
        except stepfunctions.TaskGone:
            logger.warning("a resumed run's task is gone", extra={"execution_id": execution_id})
        except stepfunctions.StepFunctionsError:
            logger.exception("a resume out of the queue failed", extra={"execution_id": execution_id})
        return
    if spot.stateMachineArn is None:
        raise RuntimeError(f"execution {execution_id} left the queue with no state machine to start it on")
    try:
        stepfunctions.start(spot.stateMachineArn, execution_id)
    except stepfunctions.StartRefused as error:
        _fail_refused(store, execution_id, f"Execution could not be started: {error}")


def _fail_refused(store: Store, execution_id: str, reason: str) -> None:
    """Step Functions refused a promoted run: it ends FAILED (giving its slots back to the next one)."""

    def decide(tail: Group) -> Change | None:
        if tail.control.state != "PENDING":
            return None
        control = tail.control
        definition = store.get_workflow_version(control.workflowId, control.workflowVersion)
        return Change(ending(store, execution_id, definition, [], event("execution.failed", error=reason)))

    record_change(store, execution_id, decide, repair=False)


# --------------------------------------------------------------------------------------------- positions


def positions(store: Store, records: Iterable[ExecutionRecord]) -> dict[str, int]:
    """Each waiting run's place among the runs it waits behind (1: the next to go when a slot of its limit frees).

    A run that waits for its workflow's limit waits behind that workflow's earlier runs; one that waits for its
    owner's, behind all of the owner's earlier ones. One read of the owner's queue (up to the newest of them).
    """
    waiting = [record for record in records if record.queuedAt]
    found: dict[str, int] = {}
    for owner in {record.owner for record in waiting}:
        mine = [record for record in waiting if record.owner == owner]
        keys = {record.id: queue_key(record.queuedAt or "", record.id) for record in mine}
        entries = list(store.queue(owner, through=max(keys.values())))
        place = {entry.key: index for index, entry in enumerate(entries)}
        for record in mine:
            index = place.get(keys[record.id])
            if index is None:
                continue  # it left the queue since the record was read
            ahead = entries[: index + 1]
            if record.queueLimit == "workflow":
                ahead = [entry for entry in ahead if entry.workflow_id == record.workflowId]
            found[record.id] = len(ahead)
    return found


def summaries(store: Store, records: list[ExecutionRecord]) -> list[ExecutionSummary]:
    """The records as a listing shows them, a waiting run with its place in the queue."""
    places = positions(store, records)
    return [record.summary().model_copy(update={"queuePosition": places.get(record.id)}) for record in records]
