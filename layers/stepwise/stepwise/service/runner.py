"""The node runner's use cases: what the state machine asks for, one step at a time.

The state machine owns the loop (and every wait); each call here reads the newest group of the execution's
log (its control state: one small item), does at most one node (:mod:`stepwise.service.steps`), and appends
what happened as one group, conditional on the group it read, so a cancel that lands while a node runs wins:
the node's result is discarded and nothing further starts. A node that sets one small variable costs one read
of the newest group, the append, and two projections (the variable, the node run).

``retried`` is true when Step Functions runs a step again after an error of the previous attempt, which may
have died between a group and its projections: that step writes the newest group's projections again first.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from typing import Any

from stepwise import stepfunctions
from stepwise.clock import now_iso, parse_iso
from stepwise.errors import ExecutionNotFound
from stepwise.models.events import Actor, Event
from stepwise.models.records import ActiveNode, Control, Group
from stepwise.models.workflow import WorkflowDefinition
from stepwise.nodes import REGISTRY
from stepwise.service import claims
from stepwise.service.history import Change, approving, ending, event, record_change, resumed_event, tail_of
from stepwise.service.steps import CANCEL_POLL_SECONDS, Answer, NodeStep, StepLimits, answer
from stepwise.service.variables import Values
from stepwise.store import Store, terminal

__all__ = [
    "CANCEL_POLL_SECONDS",
    "Answer",
    "StepLimits",
    "answer",
    "approval_timeout",
    "fail",
    "pause",
    "resumed",
    "start",
    "step",
]


def _definition(store: Store, tail: Group) -> WorkflowDefinition:
    """The version the execution runs (cached per process: versions never change)."""
    control = tail.control
    definition = store.get_workflow_version(control.workflowId, control.workflowVersion)
    if definition is None:
        raise RuntimeError(f"workflow {control.workflowId} version {control.workflowVersion} is missing")
    return definition


def _owner(store: Store, execution_id: str) -> str:
    """Whose execution it is (only a node that calls an agent needs to know: one more small read)."""
    record = store.get_execution(execution_id)
    if record is None:
        raise ExecutionNotFound(execution_id)
    return record.owner


def start(store: Store, execution_id: str, *, retried: bool = False) -> Answer:
    """PENDING → RUNNING (a retried start finds it RUNNING and goes on)."""

    def decide(tail: Group) -> Change | Answer:
        if tail.control.state == "PENDING":
            return Change([event("execution.running")])
        return answer("ended") if terminal(tail.control.state) else answer("continue")

    _, decided = record_change(store, execution_id, decide, repair=retried)
    return answer("continue") if isinstance(decided, Change) else decided


def _unfinished_wait(active: ActiveNode) -> Answer | None:
    """The answer that parks a wait again when a step arrives before it is over (a retried invocation)."""
    if active.waitingFor == "approval" and not active.approvedBy:
        return answer("approval", timeout_seconds=active.seconds) if active.seconds else answer("pause")
    if active.waitingFor == "delay":
        remaining = parse_iso(active.startedAt).timestamp() + active.seconds - time.time()
        if remaining > 1:
            return answer("delay", seconds=math.ceil(remaining))
    return None


def _park_again(control: Control) -> Answer:
    """The answer that parks a PAUSED run again: an approval keeps what is left of its timeout."""
    active = control.activeNode
    if active and approving(control) and active.seconds:
        remaining = parse_iso(active.startedAt).timestamp() + active.seconds - time.time()
        return answer("approval", timeout_seconds=max(1, math.ceil(remaining)))
    return answer("pause")


def _in_flight(
    store: Store,
    current: NodeStep,
    active: ActiveNode,
    time_left_ms: Callable[[], int] | None,
) -> Answer | Group:
    """A node run in flight (:mod:`stepwise.service.claims`): wait while another invocation holds it, then the
    newest group to decide on; or, once its claim has lapsed, run it again as the same run (the answer)."""
    lapsed_before = current.step_limits.claims_lapsed_before
    settled = claims.settle(store, current.execution_id, current.tail, time_left_ms, lapsed_before)
    if isinstance(settled, Group):
        return settled
    if settled == claims.STEP_AGAIN:
        return answer("continue")
    node = current.definition.node(active.nodeId)
    current.owner = _owner(store, current.execution_id)
    current.log(node.id, active.run)("warning", claims.TAKEN_OVER)
    if not current.claim(node, active.run, started_at=active.startedAt):
        current.take_logs()
        return current.tail  # the log moved on first: decide anew
    return current.run_node(node, active.run, active.startedAt)


def step(
    store: Store,
    step_limits: StepLimits,
    execution_id: str,
    time_left_ms: Callable[[], int] | None = None,
    *,
    retried: bool = False,
    values: Values | None = None,
) -> Answer:
    """Run the next node (or finish the one that waited), then say what the state machine does next.

    ``time_left_ms`` is the Lambda context's clock: a node that calls out fails cleanly before it runs out.
    ``values`` keeps the big values a node sets in S3 (without it, every value stays in the table).
    """
    tail = tail_of(store, execution_id)
    if retried:
        store.project(execution_id, tail)
    for _ in range(3):
        control = tail.control
        if terminal(control.state):
            return answer("ended")
        if control.state == "PAUSED":
            # A retried invocation, or a new run the reconciler started: park again (pause() keeps the newest token).
            return _park_again(control)
        if control.state != "RUNNING":
            raise RuntimeError(f"execution {execution_id} is {control.state}; expected RUNNING")
        definition = _definition(store, tail)
        current = NodeStep(
            store, step_limits, execution_id, tail, definition, values=values or Values(), time_left_ms=time_left_ms
        )
        active = control.activeNode
        if active and not active.waitingFor:
            # A node run in flight: another invocation still calls out for it, or it died doing so.
            in_flight = _in_flight(store, current, active, time_left_ms)
            if not isinstance(in_flight, Group):
                return in_flight
            tail = in_flight
            continue
        if active and active.waitingFor:
            return _unfinished_wait(active) or current.finish_waiting(active)
        if control.pauseRequested:
            return answer("pause")
        if control.cursor is None:
            raise RuntimeError(f"execution {execution_id} is RUNNING with no node left to run")
        node = definition.node(control.cursor)
        run, started_at = control.nodeRuns + 1, now_iso()
        if control.nodeRuns >= control.maxNodeRuns:
            message = (
                f"step limit reached: {control.maxNodeRuns} node runs (a loop?); raise the workflow's "
                "maxNodeRuns if the run really needs more"
            )
            return current.fail(node, run, started_at, message)
        if not REGISTRY[node.type].calls_out:
            return current.run_node(node, run, started_at)
        current.owner = _owner(store, execution_id)
        if current.claim(node, run):
            return current.run_node(node, run, started_at)
        # The log changed under us (a cancel or a pause request): decide anew on the newest group.
        tail = current.tail
    raise RuntimeError(f"execution {execution_id} kept changing; giving up this step")


def pause(store: Store, execution_id: str, task_token: str) -> None:
    """The state machine waits on ``task_token``: record PAUSED and keep the token for resume."""

    def decide(tail: Group) -> Change | str:
        control = tail.control
        if terminal(control.state):
            return "ended"
        if control.state == "PAUSED":
            return "paused"
        active = control.activeNode
        if active and active.waitingFor == "approval" and not active.approvedBy:
            paused = event("execution.paused", reason="approval", nodeId=active.nodeId, run=active.run)
            return Change([paused], task_token=task_token)
        if control.pauseRequested:
            paused = event("execution.paused", reason="requested", by=control.pauseRequestedBy)
            return Change([paused], task_token=task_token)
        return "go on"  # the pause request was withdrawn before the state machine got here

    tail, decided = record_change(store, execution_id, decide, repair=False)
    if decided == "ended":
        # Canceled meanwhile: fail this task so the run does not wait for a resume that never comes.
        raise RuntimeError(f"execution {execution_id} is {tail.control.state}; not pausing")
    if decided == "paused":
        # A retried pause task: the state machine now waits on this newer token (the pause's projection may lag).
        store.project(execution_id, tail, task_token=task_token)
    elif decided == "go on":
        # Not paused (a withdrawn pause request, or an approval given already): the task releases itself.
        stepfunctions.resume(task_token, {})


def resumed(store: Store, execution_id: str, by: Actor | None) -> Answer:
    """The pause task ended with SendTaskSuccess: record the resume (unless resume recorded it first) and go on.

    ``by`` is who resumed, as the resume sent it; None when the task released itself (nothing was paused).
    """

    def decide(tail: Group) -> Change | Answer:
        control = tail.control
        if terminal(control.state):
            return answer("ended")
        if control.state != "PAUSED":
            return answer("continue")
        if by is None:
            return _park_again(control)  # nobody resumed it: a pause is never lifted without someone
        return Change([resumed_event(control, by)])

    _, decided = record_change(store, execution_id, decide, repair=False)
    return answer("continue") if isinstance(decided, Change) else decided


def approval_timeout(store: Store, execution_id: str) -> Answer:
    """Nobody resumed within the approval's timeout: the node and the execution fail."""

    def decide(tail: Group) -> Change | Answer:
        control = tail.control
        if terminal(control.state):
            return answer("ended")
        active = control.activeNode
        if active is None or active.waitingFor != "approval" or active.approvedBy:
            # Not waiting for an approval any more, or a resume landed just as the timeout fired: it stands.
            return answer("continue")
        definition = _definition(store, tail)
        node = definition.node(active.nodeId)
        message = f"nobody approved within {active.seconds} s"
        failed = event("node.failed", nodeId=node.id, run=active.run, startedAt=active.startedAt, error=message)
        last = event("execution.failed", error=f"Node '{node.id}' ({node.type}) failed: {message}")
        return Change(ending(store, execution_id, definition, [failed], last))

    _, decided = record_change(store, execution_id, decide, repair=False)
    return answer("failed") if isinstance(decided, Change) else decided


def _error_text(error: dict[str, Any]) -> str:
    cause = str(error.get("Cause") or "")
    try:
        parsed = json.loads(cause)
        cause = str(parsed.get("errorMessage") or cause) if isinstance(parsed, dict) else cause
    except ValueError:
        pass
    return f"{error.get('Error') or 'Error'}: {cause[:1000]}".rstrip(": ")


def fail(store: Store, execution_id: str, error: dict[str, Any], *, run_name: str | None = None) -> Answer:
    """The state machine caught an error it could not retry: record FAILED with it (unless already ended).

    ``run_name``: the Step Functions run that ended (the backstop rule's event); a run the reconciler replaced
    since changes nothing. The step that failed may have died between a group and its projections: they are
    written again first.
    """
    message = _error_text(error)

    def decide(tail: Group) -> Change | Answer:
        if terminal(tail.control.state):
            return answer("ended")
        if run_name is not None and run_name != stepfunctions.run_name(execution_id, tail.control.restarts):
            return answer("ended")  # an older run, which the reconciler replaced: the current one goes on
        active = tail.control.activeNode
        where = f" at node '{active.nodeId}'" if active else ""
        node_events: list[Event] = []
        if active:
            node_events.append(
                event("node.failed", nodeId=active.nodeId, run=active.run, startedAt=active.startedAt, error=message)
            )
        # A version that no longer exists (the reconciler fails such executions) only skips no nodes.
        definition = store.get_workflow_version(tail.control.workflowId, tail.control.workflowVersion)
        last = event("execution.failed", error=f"Execution failed{where}: {message}")
        return Change(ending(store, execution_id, definition, node_events, last))

    try:
        _, decided = record_change(store, execution_id, decide)
    except ExecutionNotFound:
        return answer("ended")
    return answer("failed") if isinstance(decided, Change) else decided
