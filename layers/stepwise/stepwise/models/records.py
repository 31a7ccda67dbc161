"""What the store keeps for an execution, beyond what the API shows.

- :class:`Control`: the control state (state, cursor, counts, flags, the active node). Each group of events
  appended to the log carries it as it is after them (:class:`Group`), so the newest group is the control
  state: one small item, no variables. :meth:`Control.after` is how events change it.
- :class:`ExecutionRecord`: the ``EXECUTION`` item, the summary listings and the cancel poll read.
- :class:`NodeItem`, :class:`VariableItem`: the latest run of each node, and each top-level variable.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel

from stepwise.models.events import Actor, Event, ValueRef
from stepwise.models.execution import ExecutionState, ExecutionSummary, NodeState


class ActiveNode(BaseModel):
    """The node an execution is running, or waiting in (a delay or an approval)."""

    nodeId: str
    run: int
    startedAt: str
    waitingFor: str | None = None
    seconds: int = 0
    approvedBy: str | None = None
    approvedByName: str | None = None
    approvedAt: str | None = None


class Control(BaseModel):
    """The control state of an execution, as the newest group of its log leaves it.

    ``workflowId`` and ``workflowVersion`` name the version it runs (cached per process: versions never change),
    so a step reads nothing else to know what to run.

    ``variablesBytes`` is an upper bound of its variables' total size (JSON bytes): a node that sets a variable
    adds the new size without reading the old one, and the bound is recounted from the variables' items only
    when it would pass the limit (:mod:`stepwise.service.steps`), so the common node reads nothing for it.

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
        elif kind in ("execution.pause_requested", "execution.pause_withdrawn"):
            self.pauseRequested = kind == "execution.pause_requested"
            self.pauseRequestedBy = event.by if self.pauseRequested else None
        elif kind == "execution.paused":
            self.state, self.pauseRequested, self.pauseRequestedBy = "PAUSED", False, None
        elif kind == "execution.resumed":
            self.state, self.pauseRequested, self.pauseRequestedBy = "RUNNING", False, None
            if self.activeNode and self.activeNode.waitingFor == "approval" and event.by:
                self.activeNode.approvedBy = event.by.sub
                self.activeNode.approvedByName = event.by.name
                self.activeNode.approvedAt = event.at
        elif event.terminal:
            self.state = {"execution.completed": "COMPLETED", "execution.failed": "FAILED"}.get(kind, "CANCELED")  # type: ignore[assignment]
            self.completedAt, self.activeNode, self.pauseRequested, self.pauseRequestedBy = event.at, None, False, None
            if event.error:
                self.error = event.error
        elif kind == "node.started" and event.nodeId and event.run:
            self.activeNode = ActiveNode(nodeId=event.nodeId, run=event.run, startedAt=event.at)
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
    taskToken: str | None = None
    seq: int = 0

    def summary(self) -> ExecutionSummary:
        """The execution as a listing shows it; a pause request shows only while the run can still pause."""
        pending = self.pauseRequested and self.state in ("PENDING", "RUNNING")
        shown = self.model_dump(include=set(ExecutionSummary.model_fields))
        return ExecutionSummary.model_validate(
            {**shown, "pauseRequested": pending, "startedByName": self.startedByName or self.startedBy}
        )

    def with_control(self, control: Control, seq: int) -> ExecutionRecord:
        """This record with the state that ``control`` (of group ``seq``) holds."""
        return self.model_copy(
            update={
                "state": control.state,
                "completedAt": control.completedAt,
                "error": control.error,
                "pauseRequested": control.pauseRequested,
                "seq": seq,
            }
        )

    def shows(self, control: Control) -> bool:
        """True when this record already shows what ``control`` holds (its projection is up to date)."""
        return (self.state, self.completedAt, self.error, self.pauseRequested) == (
            control.state,
            control.completedAt,
            control.error,
            control.pauseRequested,
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


class VariableItem(BaseModel):
    """One top-level variable as the newest event that set it (``seq``) left it: its value, or where S3 keeps it."""

    name: str
    value: Any = None
    ref: ValueRef | None = None
    bytes: int
    seq: int
