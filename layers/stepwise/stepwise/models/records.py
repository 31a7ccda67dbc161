"""What the store keeps for an execution, beyond what the API shows.

- :class:`Control`: the control state (state, cursor, counts, flags, the active node). Each group of events
  appended to the log carries it as it is after them (:class:`Group`), so the newest group is the control
  state: one small item, no variables. :meth:`Control.after` is how events change it.
- :class:`ExecutionRecord`: the ``EXECUTION`` item, the summary listings read.
- :class:`NodeItem`, :class:`VariableItem`: the latest run of each node, and each top-level variable.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

from pydantic import BaseModel, Field

from stepwise.models.events import Actor, Event, ValueRef
from stepwise.models.execution import ExecutionState, ExecutionSummary, NodeState, RerunOf


class ActiveNode(BaseModel):
    """The node an execution is running, or waiting in (a delay or an approval).

    A node that calls out is claimed by the invocation that runs it (``claim``) until ``claimUntil``, when that
    invocation has surely stopped calling (its time is up): before then no other invocation calls out for the
    same run; after it, one may take the run over (:mod:`stepwise.service.claims`).
    """

    nodeId: str
    run: int
    startedAt: str
    claim: str | None = None
    claimUntil: str | None = None
    claimedAt: str | None = None
    waitingFor: str | None = None
    seconds: int = 0
    approvedBy: str | None = None
    approvedByName: str | None = None
    approvedAt: str | None = None


class QueueSpot(BaseModel):
    """Where a queued execution waits: its entry in its owner's queue, and for which limit.

    ``key`` orders the owner's queue (``<queuedAt>#<executionId>``: start order). ``workflowSlot`` names the
    workflow's slots (when the workflow has a limit), whose count of waiting runs this one adds to, so a later
    start of that workflow never overtakes it. A queued start is started on ``stateMachineArn``; a queued resume
    (``resumeBy``: who resumed) completes the paused run's task.
    """

    owner: str
    key: str
    queuedAt: str
    limit: Literal["workflow", "owner"]
    workflowId: str
    workflowSlot: str | None = None
    stateMachineArn: str | None = None
    resumeBy: Actor | None = None


class Control(BaseModel):
    """The control state of an execution, as the newest group of its log leaves it.

    ``workflowId`` and ``workflowVersion`` name the version it runs (cached per process: versions never change),
    so a step reads nothing else to know what to run.

    ``variablesBytes`` is an upper bound of its variables' total size (JSON bytes): a node that sets a variable
    adds the new size without reading the old one, and the bound is recounted from the variables' items only
    when it would pass the limit (:mod:`stepwise.service.steps`), so the common node reads nothing for it.

    ``slots`` are the concurrency slots the run holds (each slot counter's key, and the limit it was taken
    under); ``queued`` is where it waits for them. The store takes and gives back slots, and puts and removes
    queue entries, in the same transaction as the group whose control state changes them
    (:mod:`stepwise.store.slots`): a run ending, failing, canceled or paused gives its slots back by the very
    write that records it.
    ``steps`` counts the node runner's steps that changed the log (each one round of the state machine, which
    Step Functions records as history events; instant nodes run many to a step, :mod:`stepwise.service.runner`).
    """

    state: ExecutionState
    workflowId: str
    workflowVersion: int
    cursor: str | None = None
    nodeRuns: int = 0
    maxNodeRuns: int
    activeNode: ActiveNode | None = None
    pauseRequested: bool = False
    # Who asked for the pending pause (its execution.paused names them).
    pauseRequestedBy: Actor | None = None
    error: str | None = None
    completedAt: str | None = None
    variablesBytes: int = 0
    # How many times the reconciler started a new Step Functions run for it (which run is current: its name).
    restarts: int = 0
    slots: dict[str, int] = Field(default_factory=dict)
    queued: QueueSpot | None = None
    steps: int = 0

    def after(self, events: Iterable[Event]) -> Control:
        """The control state once ``events`` happened (a new object; this one is left as it is)."""
        control = self.model_copy(deep=True)
        for event in events:
            control._apply(event)
        return control

    def _apply(self, event: Event) -> None:
        kind = event.type
        if kind == "execution.running":
            self.state = "RUNNING"
        elif kind == "execution.dequeued":
            self.queued = None
        elif kind in ("execution.pause_requested", "execution.pause_withdrawn"):
            self.pauseRequested = kind == "execution.pause_requested"
            self.pauseRequestedBy = event.by if self.pauseRequested else None
        elif kind == "execution.paused":
            # A paused run gives its slots back: an approval waiting for days holds no one else up.
            self.state, self.pauseRequested, self.pauseRequestedBy, self.slots = "PAUSED", False, None, {}
        elif kind == "execution.resumed":
            self.state, self.pauseRequested, self.pauseRequestedBy = "RUNNING", False, None
            if self.activeNode and self.activeNode.waitingFor == "approval" and event.by:
                self.activeNode.approvedBy = event.by.sub
                self.activeNode.approvedByName = event.by.name
                self.activeNode.approvedAt = event.at
        elif event.terminal:
            self.state = {"execution.completed": "COMPLETED", "execution.failed": "FAILED"}.get(kind, "CANCELED")  # type: ignore[assignment]
            self.completedAt, self.activeNode, self.pauseRequested, self.pauseRequestedBy = event.at, None, False, None
            # Whatever ends a run gives its slots back and takes it out of its queue, in the same write.
            self.slots, self.queued = {}, None
            if event.error:
                self.error = event.error
        elif kind == "execution.restarted":
            self.restarts += 1
        elif kind == "node.started" and event.nodeId and event.run:
            # A run taken over keeps the time it first started (its startedAt).
            started = event.startedAt or event.at
            self.activeNode = ActiveNode(
                nodeId=event.nodeId,
                run=event.run,
                startedAt=started,
                claim=event.claim,
                claimUntil=event.claimUntil,
                claimedAt=event.at if event.claim else None,
            )
            self.nodeRuns = max(self.nodeRuns, event.run)
        elif kind == "node.waiting" and self.activeNode and self.activeNode.run == event.run:
            self.activeNode.waitingFor = event.waitingFor
            self.activeNode.seconds = event.seconds or 0
        elif kind in ("node.completed", "node.failed"):
            if self.activeNode and self.activeNode.run == event.run:
                self.activeNode = None  # a superseded run's failure leaves the newer run active
            if kind == "node.completed":
                self.cursor = event.next
                self.nodeRuns = max(self.nodeRuns, event.run or 0)


class Group(BaseModel):
    """One item of the log: the events of one change (``first``..``last``) and the control state after them."""

    first: int
    last: int
    events: list[Event]
    control: Control

    @property
    def terminal(self) -> bool:
        """True when this group ended the execution (nothing is ever appended after it)."""
        return bool(self.events) and self.events[-1].terminal


class ExecutionRecord(BaseModel):
    """The ``EXECUTION`` item: who started what, and the state as projected from the log (``seq``: of which group).

    ``taskToken`` is the token the state machine waits on while PAUSED: internal, never part of the log.
    """

    id: str
    workflowId: str
    workflowVersion: int
    owner: str
    state: ExecutionState
    startedAt: str
    completedAt: str | None = None
    startedBy: str
    startedByName: str | None = None
    error: str | None = None
    pauseRequested: bool = False
    queuedAt: str | None = None
    queueLimit: Literal["workflow", "owner"] | None = None
    taskToken: str | None = None
    seq: int = 0
    # A rerun: the execution it reruns, and the node it began at (plain attributes of the item).
    rerunOfId: str | None = None
    rerunFromNode: str | None = None

    def summary(self) -> ExecutionSummary:
        """The execution as a listing shows it; a pause request shows only while the run can still pause."""
        pending = self.pauseRequested and self.state in ("PENDING", "RUNNING")
        shown = self.model_dump(include=set(ExecutionSummary.model_fields))
        rerun_of = (
            RerunOf(executionId=self.rerunOfId, fromNode=self.rerunFromNode)
            if self.rerunOfId and self.rerunFromNode
            else None
        )
        return ExecutionSummary.model_validate(
            {
                **shown,
                "pauseRequested": pending,
                "startedByName": self.startedByName or self.startedBy,
                "rerunOf": rerun_of,
            }
        )

    def with_control(self, control: Control, seq: int) -> ExecutionRecord:
        """This record with the state that ``control`` (of group ``seq``) holds."""
        return self.model_copy(
            update={
                "state": control.state,
                "completedAt": control.completedAt,
                "error": control.error,
                "pauseRequested": control.pauseRequested,
                "queuedAt": control.queued.queuedAt if control.queued else None,
                "queueLimit": control.queued.limit if control.queued else None,
                "seq": seq,
            }
        )

    def shows(self, control: Control) -> bool:
        """True when this record already shows what ``control`` holds (its projection is up to date)."""
        return (self.state, self.completedAt, self.error, self.pauseRequested, self.queuedAt) == (
            control.state,
            control.completedAt,
            control.error,
            control.pauseRequested,
            control.queued.queuedAt if control.queued else None,
        )


class NodeItem(BaseModel):
    """The latest run of one node (``runs``: how many times it ran), projected from the log at ``seq``.

    ``output`` is as the API shows it: a value stored in S3 is a reference to the route that returns it.
    """

    nodeId: str
    run: int
    runs: int = 1
    state: NodeState
    startedAt: str | None = None
    completedAt: str | None = None
    error: str | None = None
    output: Any = None
    seq: int
    # Not run in this execution (a rerun): the run of the execution it reruns, shown as it was there.
    reused: bool = False


class VariableItem(BaseModel):
    """One top-level variable as the newest event that set it (``seq``) left it: its value, or where S3 keeps it."""

    name: str
    value: Any = None
    ref: ValueRef | None = None
    bytes: int
    seq: int
