"""The events of an execution's log: what happened, in order, each with its sequence number.

An execution's history is an append-only list of events numbered 1, 2, 3, ... with no gap (the store
allocates the numbers, :mod:`stepwise.store.history`). Every event has ``seq``, ``type`` and ``at``; one that
belongs to a node has ``nodeId`` and ``run`` (the execution-wide run number of that node run); each type
adds what belongs to it:

==========================  =====================================================================
type                        fields
==========================  =====================================================================
execution.started           workflowId, workflowVersion, startedBy, by, variables (the initial ones),
                            rerunOf (a rerun: the execution it reruns, and the node it begins at)
execution.queued            limit ("workflow" or "owner": the concurrency limit it waits for), concurrency (that
                            limit's value); a resume that waits for a slot also has by (and an approval's node)
execution.dequeued          waitedMs (a slot was free: it starts, or resumes, now)
execution.running           (the state machine took it up: PENDING -> RUNNING)
execution.pause_requested   by
execution.pause_withdrawn   by
execution.paused            reason ("requested", with by: who asked; or "approval", with the node)
execution.resumed           by (for an approval: who approved)
execution.restarted         message (why), runName (the new Step Functions run): the reconciler found the run
                            that drove it missing or ended, and started a new one that goes on from the log
execution.completed         (terminal)
execution.failed            error (terminal)
execution.canceled          by (terminal)
node.started                nodeId, run; claim, claimUntil for a node that calls out (which invocation runs it,
                            and until when that one may still be calling); startedAt when the same run is taken
                            over (run again, with the same Idempotency-Key) after its invocation stopped
node.waiting                nodeId, run, waitingFor ("delay" or "approval"), seconds
node.completed              nodeId, run, startedAt, output, variables (those it set), next, durationMs
node.failed                 nodeId, run, startedAt, error
node.skipped                nodeId (at the end: a node that never ran)
node.reused                 nodeId, startedAt, completedAt, output (a rerun: a node that ran in the execution it
                            reruns and is not run again; its times and output are the source's)
log                         level, message, and nodeId/run when the line belongs to a node run
==========================  =====================================================================

A terminal event is the last event of an execution. ``by`` is who did it: ``{"sub", "name"}``. A claim is internal
(the API does not show ``claim`` and ``claimUntil``).

Stored events keep two things the API shows differently (:func:`public_event`): a value too big for the
table is in S3, named in ``refs`` (``{name: {"key", "bytes"}}``) instead of in ``variables``; a node output
that is what the node set is not stored twice: ``outputFrom`` names the variable it is (or ``"*"``, the
variables it set, all of them).
"""

from __future__ import annotations

from typing import Any, Literal
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field

from stepwise.models.execution import ExecutionState, LogLevel, RerunOf

EventType = Literal[
    "execution.started",
    "execution.queued",
    "execution.dequeued",
    "execution.running",
    "execution.pause_requested",
    "execution.pause_withdrawn",
    "execution.paused",
    "execution.resumed",
    "execution.restarted",
    "execution.completed",
    "execution.failed",
    "execution.canceled",
    "node.started",
    "node.waiting",
    "node.completed",
    "node.failed",
    "node.skipped",
    "node.reused",
    "log",
]
TERMINAL_EVENTS: frozenset[str] = frozenset({"execution.completed", "execution.failed", "execution.canceled"})
# Who holds a node run: how the node runner's invocations tell theirs apart, never shown by the API.
INTERNAL_FIELDS = frozenset({"claim", "claimUntil"})
# The output of a node is every variable it set (setVariables), rather than one of them.
ALL_SET = "*"


class Actor(BaseModel):
    """Who did something: the token's ``sub``, and a name to show (see :mod:`stepwise.identity`)."""

    sub: str
    name: str


class ValueRef(BaseModel):
    """A value kept in S3 (:mod:`stepwise.blobs`): its key and its size as JSON."""

    key: str
    bytes: int


class Event(BaseModel):
    """One event as stored (the fields its type uses, see the module docstring; unset ones are not stored)."""

    model_config = ConfigDict(extra="forbid")

    seq: int = 0
    type: EventType
    at: str
    nodeId: str | None = None
    run: int | None = None
    workflowId: str | None = None
    workflowVersion: int | None = None
    startedBy: str | None = None
    by: Actor | None = None
    reason: Literal["requested", "approval"] | None = None
    error: str | None = None
    startedAt: str | None = None
    completedAt: str | None = None
    output: Any = None
    outputFrom: str | None = None
    variables: dict[str, Any] | None = None
    refs: dict[str, ValueRef] | None = None
    next: str | None = None
    durationMs: int | None = None
    waitingFor: Literal["delay", "approval"] | None = None
    seconds: int | None = None
    level: LogLevel | None = None
    message: str | None = None
    runName: str | None = None
    claim: str | None = None
    claimUntil: str | None = None
    rerunOf: RerunOf | None = None
    limit: Literal["workflow", "owner"] | None = None
    concurrency: int | None = None
    waitedMs: int | None = None

    @property
    def terminal(self) -> bool:
        """True for the event that ends the execution."""
        return self.type in TERMINAL_EVENTS

    def numbered(self, seq: int) -> Event:
        """This event with its sequence number."""
        return self.model_copy(update={"seq": seq})

    def stored(self) -> dict[str, Any]:
        """The JSON of the event as kept in the log: only the fields its type set."""
        return self.model_dump(mode="json", exclude_unset=True)

    def set_variables(self) -> dict[str, Any]:
        """The variables this event set (``execution.started``: the initial ones), S3 ones as their ``ValueRef``."""
        return {**(self.variables or {}), **(self.refs or {})}


def new_event(event_type: EventType, at: str, **fields: Any) -> Event:
    """An event not numbered yet (the store numbers it when its group is appended)."""
    return Event.model_validate({"type": event_type, "at": at, **fields})


class ExecutionEvent(BaseModel):
    """An event as the API shows it: ``seq``, ``type``, ``at``, ``nodeId`` and ``run`` when it belongs to a node
    run, plus the fields of its type (see the events route). A value too big to show inline is a reference
    ``{"$ref": "<URL path that returns it>", "bytes": N}``."""

    model_config = ConfigDict(extra="allow")

    seq: int = Field(description="1, 2, 3, ... with no gap; never reused")
    type: EventType
    at: str
    nodeId: str | None = None
    run: int | None = None


class EventsPage(BaseModel):
    """One answer of the events route: the events after the cursor, the cursor to go on from, the state."""

    events: list[ExecutionEvent]
    lastSeq: int = Field(description="the seq of the last event returned, else the 'after' asked for: pass it back")
    state: ExecutionState = Field(description="the execution's state now")


def value_path(execution_id: str, name: str, seq: int) -> str:
    """The API path that returns the value ``name`` as event ``seq`` set it."""
    return f"/api/workflows/execute/{execution_id}/variables/{quote(name, safe='')}?seq={seq}"


def reference(execution_id: str, name: str, seq: int, size: int) -> dict[str, Any]:
    """What a value too big to show inline is shown as."""
    return {"$ref": value_path(execution_id, name, seq), "bytes": size}


def shown_variables(event: Event, execution_id: str) -> dict[str, Any]:
    """The variables an event set, as the API shows them: those kept in S3 as references."""
    shown = dict(event.variables or {})
    for name, ref in (event.refs or {}).items():
        shown[name] = reference(execution_id, name, event.seq, ref.bytes)
    return shown


def shown_output(event: Event, execution_id: str) -> Any:
    """A node's output as the API shows it (when it is what the node set: those values, as shown)."""
    if event.outputFrom is None:
        return event.output
    variables = shown_variables(event, execution_id)
    return variables if event.outputFrom == ALL_SET else variables.get(event.outputFrom)


def public_event(event: Event, execution_id: str) -> ExecutionEvent:
    """The event as the API shows it: values kept in S3 as references to the route that returns them."""
    shown = event.model_dump(mode="json", exclude_unset=True, exclude={"refs", "outputFrom", *INTERNAL_FIELDS})
    if event.refs:
        shown["variables"] = shown_variables(event, execution_id)
    if event.outputFrom is not None:
        shown["output"] = shown_output(event, execution_id)
    return ExecutionEvent.model_validate(shown)
