"""One node run: from the control state as the step left it to the events that record what the node did.

A node that neither calls out nor waits runs at once and its events (``node.started``, its log lines,
``node.completed``) join the step's batch (:mod:`stepwise.service.batches`), appended with the nodes around it
as one group. A node that calls out is claimed first (a group with the batch so far and its ``node.started``,
so watchers see it RUNNING and a cancel can name it), then recorded by a group of its own.

Every append is conditional on the newest group as this step knows it (:mod:`stepwise.store.history`). When
another writer appended first and the append carried a batch, the batch is lost (``BatchLost``) and the step
decides anew. Otherwise the step reads the newest group again: if the execution is where the step left it
(same state, node, run and claim: only a pause request or a withdrawal came in), the same events go on top of
it; otherwise the result is discarded (a cancel won, or a retried invocation of this step took the run over).
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, TypedDict

from stepwise import limits, secrets
from stepwise.aws import TransientError
from stepwise.clock import parse_iso
from stepwise.interpolation import InterpolationError
from stepwise.models.events import ALL_SET, Event
from stepwise.models.execution import LogLevel
from stepwise.models.records import ActiveNode, Control, Group
from stepwise.models.workflow import NodeDefinition, WorkflowDefinition
from stepwise.nodes import REGISTRY
from stepwise.nodes.base import CallDefaults, NodeContext, NodeFailed, Outcome
from stepwise.observability import logger
from stepwise.service import claims
from stepwise.service.batches import Batch, BatchLost, Budget
from stepwise.service.history import MAX_TRIES, ending, event
from stepwise.service.variables import ExecutionVariables, Values
from stepwise.store import Store
from stepwise.store.history import SeqTaken

Status = Literal["continue", "delay", "pause", "approval", "done", "failed", "ended"]
# How often a node that calls out looks for a cancel while it waits on the other side.
CANCEL_POLL_SECONDS = 0.5
# A call still waiting after this long has its log lines appended, so watchers see its progress.
LOG_FLUSH_SECONDS = 1.0
# A node that calls out gives up this long before the node runner's own timeout, so it fails cleanly.
TIME_MARGIN_MS = 10_000
CANCELED = "canceled"


@dataclass(frozen=True)
class StepLimits:
    """What a step keeps to (from the node runner's settings): a node's output and the execution's variables
    at most this big (JSON bytes; each named by its setting in errors), its calls' defaults, how much one step
    runs (its batch's budget), and the time before which every claim of a node run has lapsed
    (:func:`stepwise.service.claims.holds`)."""

    max_output_bytes: int
    max_variables_bytes: int
    calls: CallDefaults
    budget: Budget = field(default_factory=Budget)
    claims_lapsed_before: str | None = None


class Answer(TypedDict):
    """What the state machine's Choice reads (every key, always)."""

    status: Status
    seconds: int
    timeoutSeconds: int


def answer(status: Status, seconds: int = 0, timeout_seconds: int = 0) -> Answer:
    """An answer for the state machine."""
    return {"status": status, "seconds": seconds, "timeoutSeconds": timeout_seconds}


class Discarded(Exception):
    """The execution changed under the node (a cancel, a retried step): its result is not recorded."""


def _position(control: Control) -> tuple[Any, ...]:
    """Where the run is, and which invocation holds the node run in flight: a change elsewhere (a pause request,
    a withdrawal, a log flush) leaves it where it was; a takeover of the run by another invocation does not."""
    active = control.activeNode
    return (control.state, control.cursor, control.nodeRuns, active.run if active else None, active and active.claim)


def _output_from(outcome: Outcome) -> str | None:
    """Which of the values a node set its output is (stored once): all of them, one of them, or None."""
    if outcome.set_variables and outcome.output is outcome.set_variables:
        return ALL_SET
    return next((name for name, value in outcome.set_variables.items() if value is outcome.output), None)


def _letting_go_when_refused(
    run_node: Callable[[NodeStep, NodeDefinition, int, str], Answer],
) -> Callable[[NodeStep, NodeDefinition, int, str], Answer]:
    """``run_node`` that, when an AWS call refused for now stops it (the state machine runs the step again), lets go
    of the node run it holds, so the next step takes it over at once rather than when the claim would lapse."""

    @functools.wraps(run_node)
    def running(step: NodeStep, node: NodeDefinition, run: int, started_at: str) -> Answer:
        try:
            return run_node(step, node, run, started_at)
        except TransientError:
            if step.claim_id:
                claims.release(step.store, step.execution_id, run, step.claim_id)
            raise

    return running


class NodeStep:
    """One node run of a node runner's ``step``: the newest group as read, the step's batch (the events not
    appended yet; None: each record is appended at once), and the node's log lines."""

    def __init__(
        self,
        store: Store,
        step_limits: StepLimits,
        execution_id: str,
        tail: Group,
        definition: WorkflowDefinition,
        *,
        values: Values,
        time_left_ms: Callable[[], int] | None = None,
        batch: Batch | None = None,
        variables: ExecutionVariables | None = None,
    ) -> None:
        self.store = store
        self.step_limits = step_limits
        self.execution_id = execution_id
        self.tail = tail
        self.definition = definition
        self.time_left_ms = time_left_ms
        self.values = values
        self.batch = batch
        # Shared by the nodes of a step: each sees the values the nodes before it set, appended or not.
        if variables is None:  # (not "or": an empty Mapping is falsy, and asking would read every variable)
            variables = ExecutionVariables(store, execution_id, values.load)
        self.variables = variables
        # Whose run it is: only a node that calls an agent needs it (read from the EXECUTION item then).
        self.owner = ""
        self.pending: list[Event] = []
        self.pending_lock = threading.Lock()
        # A node that calls out is claimed (its node.started appended) before it runs; others are not.
        self.claimed = False
        # Which invocation this is, in the claim (stepwise.service.claims).
        self.claim_id = ""

    # --- appending -------------------------------------------------------------------------------

    @property
    def control(self) -> Control:
        """The control state as the step left it so far (the batch's events included)."""
        return self.batch.control if self.batch else self.tail.control

    def append(self, events: list[Event], **updates: Any) -> bool:
        """Append the batch and ``events`` after the newest group, on top of a newer one if the run is still where
        it was and there was no batch (``BatchLost`` if there was one).

        False when the execution moved on meanwhile (``self.tail`` is then the newest group).
        """
        where = _position(self.tail.control)
        for _ in range(MAX_TRIES):
            chunk = self.batch.events if self.batch else []
            control = self.control.after(events).model_copy(update=updates)
            try:
                self.tail = self.store.commit(self.execution_id, self.tail, [*chunk, *events], control)
            except SeqTaken:
                newest = self.store.tail(self.execution_id)
                if newest is None:
                    raise RuntimeError(f"execution {self.execution_id} lost its log") from None
                if chunk:
                    raise BatchLost(newest) from None
                self.tail = newest
                if self.batch:
                    self.batch.restart(newest)
                if _position(newest.control) != where:
                    return False
                continue
            if self.batch:
                self.batch.restart(self.tail)
            return True
        raise RuntimeError(f"execution {self.execution_id} kept changing; giving up this step")

    def take_logs(self) -> list[Event]:
        """The log lines not appended yet (they go with the next group)."""
        with self.pending_lock:
            lines, self.pending = self.pending, []
        return lines

    def log(self, node_id: str, run: int) -> Callable[[LogLevel, str], None]:
        def write(level: LogLevel, message: str) -> None:
            line = event("log", nodeId=node_id, run=run, level=level, message=message)
            with self.pending_lock:
                self.pending.append(line)

        return write

    def flush_logs(self) -> None:
        """Append the lines logged so far (a slow call's attempts show while it waits)."""
        lines = self.take_logs()
        try:
            appended = not lines or self.append(lines)
        except TransientError:
            # Not written (a group of log lines alone has nothing to project): they go with the next group.
            with self.pending_lock:
                self.pending[:0] = lines
            return
        if not appended:
            raise Discarded

    # --- running ---------------------------------------------------------------------------------

    def context(self, node: NodeDefinition, run: int, should_stop: Callable[[], bool]) -> NodeContext:
        return NodeContext(
            execution_id=self.execution_id,
            node_id=node.id,
            run=run,
            owner=self.owner,
            variables=self.variables,
            calls=self.step_limits.calls,
            timeout_seconds=node.timeoutSeconds,
            retry=node.retry,
            log=self.log(node.id, run),
            should_stop=should_stop,
            load_agent=self.store.get_agent,
            read_secret=secrets.read_credential,
        )

    def claim(self, node: NodeDefinition, run: int, *, started_at: str | None = None) -> bool:
        """Append the node's start, claimed by this invocation, before it calls out; False when the execution moved
        on first. ``started_at``: a run taken over (started again) keeps the time it first started."""
        self.claim_id, until = claims.new_claim(self.time_left_ms)
        fields: dict[str, Any] = {"claim": self.claim_id, "claimUntil": until}
        if started_at is not None:
            fields["startedAt"] = started_at
        try:
            self.claimed = self.append([event("node.started", nodeId=node.id, run=run, **fields), *self.take_logs()])
        except TransientError:
            claims.release(self.store, self.execution_id, run, self.claim_id)  # in, with only its projection refused?
            raise
        return self.claimed

    @_letting_go_when_refused
    def run_node(self, node: NodeDefinition, run: int, started_at: str) -> Answer:
        node_type = REGISTRY[node.type]
        begun = time.monotonic()
        try:
            config = node_type.config_model.model_validate(node.config)
            if node_type.calls_out:
                outcome = self._call_out(run, lambda stop: node_type.run(config, self.context(node, run, stop)))
            else:
                outcome = node_type.run(config, self.context(node, run, lambda: False))
        except Discarded:
            return self.discard(node, run, started_at)
        except TransientError:
            raise  # AWS refused a call for now: not the node's failure (see _letting_go_when_refused)
        except (NodeFailed, InterpolationError) as error:
            return self.fail(node, run, started_at, str(error))
        except Exception as error:
            # A bug in a node type still fails that node, by name, rather than the whole step.
            logger.exception("node raised unexpectedly", extra={"node_id": node.id})
            return self.fail(node, run, started_at, f"unexpected error: {type(error).__name__}: {error}")
        if outcome.wait:
            return self.wait(node, run, started_at, outcome)
        return self.complete(node, run, started_at, outcome, int((time.monotonic() - begun) * 1000))

    def _call_out(self, run: int, work: Callable[[Callable[[], bool]], Outcome]) -> Outcome:
        """Run a node that calls out in a worker thread, so a cancel, or a takeover of its run by another
        invocation, is noticed while it waits: the call is then told to stop (no further attempt)."""
        stop = threading.Event()
        result: list[Outcome] = []
        failure: list[BaseException] = []

        def target() -> None:
            try:
                result.append(work(stop.is_set))
            except BaseException as error:  # handed to the caller's thread below
                failure.append(error)

        worker = threading.Thread(target=target, name=f"node-{self.execution_id}", daemon=True)
        worker.start()
        waited = 0.0
        try:
            while True:
                worker.join(CANCEL_POLL_SECONDS)
                if not worker.is_alive():
                    break
                waited += CANCEL_POLL_SECONDS
                if waited >= LOG_FLUSH_SECONDS:
                    self.flush_logs()
                    waited = 0.0
                # The poll reads only the newest group: one small item (the claim's, or a log flush's, or a
                # cancel's), whatever the variables weigh. The run must still be this invocation's own.
                try:
                    newest = self.store.tail(self.execution_id)
                except TransientError:
                    continue  # a look AWS refused for now: the next one, half a second on, tells
                if newest is None or not claims.owns(newest.control, run, self.claim_id):
                    raise Discarded
                if self.time_left_ms and self.time_left_ms() < TIME_MARGIN_MS:
                    raise NodeFailed("ran out of time: the call outlasted the node runner's time limit")
        except BaseException:
            stop.set()
            raise
        if failure:
            raise failure[0]
        return result[0]

    # --- recording -------------------------------------------------------------------------------

    def _started(self, node: NodeDefinition, run: int, started_at: str) -> list[Event]:
        return [] if self.claimed else [event("node.started", nodeId=node.id, run=run, at=started_at)]

    def _ending(self, node_events: list[Event], last: Event) -> list[Event]:
        """The node's events, then every node that never ran skipped, then ``last`` (the batch's nodes ran)."""
        ran = self.batch.node_ids() if self.batch else set()
        return ending(self.store, self.execution_id, self.definition, node_events, last, ran=ran)

    def wait(self, node: NodeDefinition, run: int, started_at: str, outcome: Outcome) -> Answer:
        assert outcome.wait is not None
        waiting = event(
            "node.waiting", nodeId=node.id, run=run, waitingFor=outcome.wait.kind, seconds=outcome.wait.seconds
        )
        if not self.append([*self._started(node, run, started_at), *self.take_logs(), waiting]):
            return self.discard(node, run, started_at)
        if outcome.wait.kind == "delay":
            return answer("delay", seconds=outcome.wait.seconds)
        if outcome.wait.seconds:
            return answer("approval", timeout_seconds=outcome.wait.seconds)
        return answer("pause")

    def complete(self, node: NodeDefinition, run: int, started_at: str, outcome: Outcome, duration_ms: int) -> Answer:
        if limits.depth(outcome.output) > limits.MAX_DEPTH or limits.depth(outcome.set_variables) > limits.MAX_DEPTH:
            return self.fail(node, run, started_at, f"the result is nested more than {limits.MAX_DEPTH} levels deep")
        output_from = _output_from(outcome)
        sizes = {name: limits.json_size(value) for name, value in outcome.set_variables.items()}
        if output_from is None:
            sizes[""] = limits.json_size(outcome.output)
        biggest = max(sizes, key=lambda name: sizes[name], default=None)
        if biggest is not None and sizes[biggest] > self.step_limits.max_output_bytes:
            what = f"its value of '{biggest}'" if biggest else "its output"
            message = (
                f"{what} is {sizes[biggest]} bytes; a node's output is at most "
                f"{self.step_limits.max_output_bytes} (MAX_OUTPUT_BYTES)"
            )
            return self.fail(node, run, started_at, message)
        sizes.pop("", None)
        grown = self._variables_bytes(sizes)
        if grown > self.step_limits.max_variables_bytes:
            message = (
                f"variables would grow to {grown} bytes; an execution's variables are at most "
                f"{self.step_limits.max_variables_bytes} (MAX_VARIABLES_TOTAL_BYTES)"
            )
            return self.fail(node, run, started_at, message)
        first_seq = self.batch.next_seq if self.batch else self.tail.last + 1
        inline, refs = self.values.keep(self.execution_id, first_seq, outcome.set_variables)
        fields: dict[str, Any] = {"variables": inline}
        if refs:
            fields["refs"] = refs
        if output_from is None:
            # Every node type whose output may be big sets it as a variable too: this one is small.
            fields["output"] = outcome.output
        else:
            fields["outputFrom"] = output_from
        next_node = outcome.next_node or self.definition.following(node.id)
        completed = event(
            "node.completed",
            nodeId=node.id,
            run=run,
            startedAt=started_at,
            next=next_node,
            durationMs=duration_ms,
            **fields,
        )
        node_events = [*self._started(node, run, started_at), *self.take_logs(), completed]
        if next_node is not None and self.batch is not None and not REGISTRY[node.type].calls_out:
            # A node that did not call out is recorded with the rest of the step, when the batch is appended.
            self.batch.add(node_events, sizes=sizes, variablesBytes=grown)
            self.variables.remember(outcome.set_variables)
            return answer("continue")
        events = node_events
        if next_node is None:
            events = self._ending(node_events, event("execution.completed"))
        if not self.append(events, variablesBytes=grown):
            return self.discard(node, run, started_at)
        return answer("done") if next_node is None else answer("continue")

    def _variables_bytes(self, sizes: dict[str, int]) -> int:
        """The variables' total size once values of ``sizes`` are set: the bound kept in the control state,
        recounted from the variables' items only when it would pass the limit (see :class:`Control`)."""
        bound = self.control.variablesBytes + sum(sizes.values())
        if bound <= self.step_limits.max_variables_bytes:
            return bound
        counted = {item.name: item.bytes for item in self.store.variables(self.execution_id)}
        # The batch's variables are not written yet: their sizes as the batch set them.
        counted.update(self.batch.sizes if self.batch else {})
        counted.update(sizes)
        return sum(counted.values())

    def fail(self, node: NodeDefinition, run: int, started_at: str, message: str) -> Answer:
        error = f"Node '{node.id}' ({node.type}) failed: {message}"
        failed = event("node.failed", nodeId=node.id, run=run, startedAt=started_at, error=message)
        node_events = [*self._started(node, run, started_at), *self.take_logs(), failed]
        events = self._ending(node_events, event("execution.failed", error=error))
        if not self.append(events):
            return self.discard(node, run, started_at)
        return answer("failed")

    def discard(self, node: NodeDefinition, run: int, started_at: str) -> Answer:
        """The execution changed under the node: its result is dropped, nothing is appended, and the state machine
        carries on from the log.

        Ended (a cancel, which recorded this node run as canceled itself): ``ended``. Still RUNNING (or PAUSED):
        another invocation of this step took the node run over (:mod:`stepwise.service.claims`) and records it,
        or moved the execution on; the answer says to go on from the log.
        """
        newest = self.store.tail(self.execution_id)
        if newest is None or newest.control.state not in ("RUNNING", "PAUSED"):
            return answer("ended")
        logger.info(
            "node run superseded; its result is dropped", extra={"node_id": node.id, "run": run, "at": started_at}
        )
        return answer("continue") if newest.control.state == "RUNNING" else answer("pause")

    def finish_waiting(self, active: ActiveNode) -> Answer:
        """The delay is over, or the approval was given: the node completes (its time counts the wait)."""
        node = self.definition.node(active.nodeId)
        node_type = REGISTRY[node.type]
        assert node_type.finish is not None
        self.claimed = True  # its start is in the log already
        config = node_type.config_model.model_validate(node.config)
        outcome = node_type.finish(config, self.context(node, active.run, lambda: False), active.model_dump())
        waited_ms = max(0, int((time.time() - parse_iso(active.startedAt).timestamp()) * 1000))
        return self.complete(node, active.run, active.startedAt, outcome, waited_ms)
