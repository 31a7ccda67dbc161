"""The node runner's use cases: what the state machine asks for, one step at a time.

The state machine owns the loop (and every wait); each step reads the newest group of the execution's log (its
control state: one small item) and runs nodes from the cursor (:mod:`stepwise.service.steps`): every instant
node it meets, then at most one node that calls out or waits, which ends the step. The nodes' events are
appended in batches (:mod:`stepwise.service.batches`), each conditional on the group before it, so a cancel that
lands while nodes run wins: what the step had not appended is dropped and nothing further starts. The first
step of an execution also marks it RUNNING (no step of its own).

A step ends, and answers the state machine, at a node that calls out (after its call) or waits, at the end of
the run, at a pause request, when the Lambda's time runs short, and at the steps' ceiling: a run takes at most
``MAX_STEPS`` steps that changed its log, since each is one round of the state machine that Step Functions keeps
in the run's history (7 to 20 events; at most 25,000 per run). Instant nodes no longer count against it: 100
of them in a row cost one step, not 100.

``retried`` is true when Step Functions runs a step again after an error of the previous attempt, which may
have died between a group and its projections: that step writes the newest group's projections again first.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from typing import Any, Literal

from stepwise import stepfunctions
from stepwise.clock import now_iso, parse_iso
from stepwise.errors import ExecutionNotFound
from stepwise.models.events import Actor, Event
from stepwise.models.records import ActiveNode, Control, Group
from stepwise.models.workflow import WorkflowDefinition
from stepwise.nodes import REGISTRY
from stepwise.service import claims
from stepwise.service.batches import Batch, BatchLost, Budget
from stepwise.service.history import MAX_TRIES, Change, approving, ending, event, record_change, resumed_event, tail_of
from stepwise.service.steps import CANCEL_POLL_SECONDS, Answer, NodeStep, StepLimits, answer
from stepwise.service.variables import ExecutionVariables, Values
from stepwise.store import Store, terminal

__all__ = [
    "CANCEL_POLL_SECONDS",
    "MAX_STEPS",
    "Answer",
    "Budget",
    "StepLimits",
    "answer",
    "approval_timeout",
    "fail",
    "pause",
    "resumed",
    "start",
    "step",
]


# Steps that changed the log, at most, in one run: 1,200 rounds of the state machine at 7 to 20 history events
# each stay under the 25,000 events Step Functions keeps for a Standard run.
MAX_STEPS = 1_200


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
    """PENDING → RUNNING (a retried start finds it RUNNING and goes on).

    For runs of a state machine definition older than this one (it began with a ``start`` task); a run of the
    current one is marked RUNNING by its first step.
    """

    def decide(tail: Group) -> Change | Answer:
        if tail.control.queued is not None:
            # Waiting for a concurrency slot: a run started by mistake ends here, and the record waits on.
            return answer("ended")
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
    """Run the next nodes (after finishing the one that waited), then say what the state machine does next.

    ``time_left_ms`` is the Lambda context's clock: no node starts too close to the end of the invocation, and a
    node that calls out fails cleanly before it runs out. ``values`` keeps the big values a node sets in S3
    (without it, every value stays in the table).
    """
    began = time.monotonic()
    tail = tail_of(store, execution_id)
    if retried:
        store.project(execution_id, tail)
    # Every group this step appends carries its number; a retried invocation of the same step counts once.
    number = tail.control.steps + 1
    for _ in range(MAX_TRIES):
        batch = Batch(store, execution_id, tail, step_limits.budget, step=number)
        try:
            decided = _StepRun(store, step_limits, execution_id, batch, values or Values(), time_left_ms, began).run()
        except BatchLost as lost:
            decided = lost.newest
        if not isinstance(decided, Group):
            return decided
        # The log changed under the step (a cancel, a pause request, a retried step): decide anew on the newest group.
        tail = decided
    raise RuntimeError(f"execution {execution_id} kept changing; giving up this step")


class _StepRun:
    """One try of a step on one newest group: its batch, and the variables its nodes see."""

    def __init__(
        self,
        store: Store,
        step_limits: StepLimits,
        execution_id: str,
        batch: Batch,
        values: Values,
        time_left_ms: Callable[[], int] | None,
        began: float,
    ) -> None:
        self.store = store
        self.step_limits = step_limits
        self.execution_id = execution_id
        self.batch = batch
        self.values = values
        self.time_left_ms = time_left_ms
        self.began = began
        self.variables = ExecutionVariables(store, execution_id, values.load)
        self.ran = 0

    def node_step(self, definition: WorkflowDefinition) -> NodeStep:
        return NodeStep(
            self.store,
            self.step_limits,
            self.execution_id,
            self.batch.tail,
            definition,
            values=self.values,
            time_left_ms=self.time_left_ms,
            batch=self.batch,
            variables=self.variables,
        )

    def handing_back(self, kind: Literal["call", "node"]) -> bool:
        """True when the step should end before this node: a call out would start late in the invocation, or the
        Lambda's time runs short (the first node of a step always runs: an invocation starts with its whole time)."""
        budget = self.step_limits.budget
        if kind == "call" and (time.monotonic() - self.began) * 1000 > budget.call_out_within_ms:
            return True
        return bool(self.ran and self.time_left_ms and self.time_left_ms() < budget.time_margin_ms)

    def ended(self, decided: Answer) -> Answer:
        """The step ends: the batch is appended first."""
        self.batch.commit()
        return decided

    def run(self) -> Answer | Group:
        """Run nodes until one ends the step; a Group when the log changed under a claim (decide anew on it)."""
        batch = self.batch
        definition: WorkflowDefinition | None = None
        while True:
            if batch.full():
                batch.commit()  # a chunk: the step goes on with the next one
            control = batch.control
            if terminal(control.state):
                return self.ended(answer("ended"))
            if control.state == "PAUSED":
                # A retried invocation, or a new run the reconciler started: park again (pause() keeps the newest
                # token).
                return self.ended(_park_again(control))
            if control.queued is not None:
                # Waiting for a concurrency slot: a run started by mistake ends here, and the record waits on.
                return self.ended(answer("ended"))
            if control.state == "PENDING":
                # The first step marks the execution RUNNING, in the group of its first nodes.
                batch.add([event("execution.running")], node_run=False)
                continue
            if control.state != "RUNNING":
                raise RuntimeError(f"execution {self.execution_id} is {control.state}; expected RUNNING")
            definition = definition or _definition(self.store, batch.tail)
            current = self.node_step(definition)
            active = control.activeNode
            if active and not active.waitingFor:
                # A node run in flight: another invocation still calls out for it, or it died doing so.
                self.batch.commit()
                return _in_flight(self.store, current, active, self.time_left_ms)
            if active and active.waitingFor:
                unfinished = _unfinished_wait(active)
                decided = unfinished or current.finish_waiting(active)
                if decided["status"] != "continue":
                    return self.ended(decided)
                self.ran += 1
                continue
            if control.pauseRequested:
                return self.ended(answer("pause"))
            if control.cursor is None:
                raise RuntimeError(f"execution {self.execution_id} is RUNNING with no node left to run")
            node = definition.node(control.cursor)
            node_type = REGISTRY[node.type]
            if self.handing_back("call" if node_type.calls_out else "node"):
                return self.ended(answer("continue"))
            run, started_at = control.nodeRuns + 1, now_iso()
            if control.nodeRuns >= control.maxNodeRuns:
                message = (
                    f"step limit reached: {control.maxNodeRuns} node runs (a loop?); raise the workflow's "
                    "maxNodeRuns if the run really needs more"
                )
                return current.fail(node, run, started_at, message)
            if batch.step > MAX_STEPS:
                message = (
                    f"history limit reached: {MAX_STEPS} steps of the state machine (Step Functions keeps at most "
                    "25,000 history events per run; every node that calls out or waits takes a step)"
                )
                return current.fail(node, run, started_at, message)
            if node_type.calls_out:
                current.owner = _owner(self.store, self.execution_id)
                if current.claim(node, run):
                    return current.run_node(node, run, started_at)
                return current.tail
            decided = current.run_node(node, run, started_at)
            self.ran += 1
            if decided["status"] != "continue" or not node_type.instant:
                return self.ended(decided)


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
