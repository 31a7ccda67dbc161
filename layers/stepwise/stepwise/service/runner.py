"""The node runner's use cases: what the state machine asks for, one step at a time.

The state machine owns the loop (and every wait); each call here reads the execution, does at most one
node, and records it with conditional writes, so a cancel that lands while a node runs wins: the node's
result is discarded and nothing further starts. Per node: one read, one claim write (only for nodes that
call out or wait), then the node run and the execution's variables and cursor, as two plain writes
(the execution's variables and cursor, plus the node run with its log lines).
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable
from typing import Any, Literal, TypedDict

from stepwise import limits, secrets, stepfunctions
from stepwise.clock import now_iso, parse_iso
from stepwise.errors import ExecutionNotFound
from stepwise.interpolation import InterpolationError
from stepwise.models.execution import LogLevel, LogLine
from stepwise.models.records import ActiveNode, ExecutionRecord, NodeRun
from stepwise.models.workflow import NodeDefinition, WorkflowDefinition
from stepwise.nodes import REGISTRY
from stepwise.nodes.base import NodeContext, NodeFailed, Outcome
from stepwise.observability import logger
from stepwise.settings import Settings
from stepwise.store import Store, terminal

Status = Literal["continue", "delay", "pause", "approval", "done", "failed", "ended"]
# How often a node that calls out looks for a cancel while it waits on the other side.
CANCEL_POLL_SECONDS = 0.5
# A call still waiting after this long has its log lines stored, so watchers see its progress.
LOG_FLUSH_SECONDS = 1.0
# A node that calls out gives up this long before the node runner's own timeout, so it fails cleanly.
TIME_MARGIN_MS = 10_000


class Answer(TypedDict):
    """What the state machine's Choice reads (every key, always)."""

    status: Status
    seconds: int
    timeoutSeconds: int


def answer(status: Status, seconds: int = 0, timeout_seconds: int = 0) -> Answer:
    """An answer for the state machine."""
    return {"status": status, "seconds": seconds, "timeoutSeconds": timeout_seconds}


class _Canceled(Exception):
    """The execution was canceled while a node was running."""


def _line(node_id: str | None, level: LogLevel, message: str) -> LogLine:
    return LogLine(nodeId=node_id, level=level, message=message, timestamp=now_iso())


def _load(store: Store, execution_id: str) -> ExecutionRecord:
    record = store.get_execution(execution_id)
    if record is None:
        raise ExecutionNotFound(execution_id)
    return record


def _definition(store: Store, record: ExecutionRecord) -> WorkflowDefinition:
    definition = store.get_workflow_version(record.workflowId, record.workflowVersion)
    if definition is None:
        raise RuntimeError(f"workflow {record.workflowId} version {record.workflowVersion} is missing")
    return definition


def _fit(value: Any, limit: int) -> tuple[Any, bool]:
    """The value, or a marker with a preview when its JSON is larger than ``limit`` bytes."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    size = len(text.encode())
    if size <= limit:
        return value, False
    preview = text.encode()[: limit // 2].decode(errors="ignore")
    return {"truncated": True, "bytes": size, "preview": preview}, True


def start(store: Store, execution_id: str) -> Answer:
    """PENDING → RUNNING (a retried start finds it RUNNING and goes on)."""
    moved, record = store.transition(execution_id, "RUNNING", allowed_from=("PENDING",))
    if moved:
        store.append_logs(execution_id, [_line(None, "info", "Execution started")])
        return answer("continue")
    if record is None:
        raise ExecutionNotFound(execution_id)
    return answer("ended") if terminal(record.state) else answer("continue")


class _Step:
    """One call of ``step``: the execution as read, and the log lines of the node being run."""

    def __init__(
        self, store: Store, settings: Settings, record: ExecutionRecord, time_left_ms: Callable[[], int] | None = None
    ) -> None:
        self.time_left_ms = time_left_ms
        self.store = store
        self.settings = settings
        self.record = record
        self.definition = _definition(store, record)
        self.logs: list[LogLine] = []
        self.logs_lock = threading.Lock()
        # A node that neither calls out nor waits finishes in microseconds: it is not claimed first (one
        # write fewer), and its run is counted when it is committed.
        self.unclaimed = False

    def log(self, node_id: str) -> Callable[[LogLevel, str], None]:
        def write(level: LogLevel, message: str) -> None:
            with self.logs_lock:
                self.logs.append(_line(node_id, level, message))

        return write

    def flush_logs(self) -> None:
        """Store the lines logged so far (a slow call's attempts show while it waits); the run keeps the rest."""
        with self.logs_lock:
            lines, self.logs = self.logs, []
        if lines:
            self.store.append_logs(self.record.id, lines)

    def context(self, node: NodeDefinition, should_stop: Callable[[], bool]) -> NodeContext:
        return NodeContext(
            execution_id=self.record.id,
            node_id=node.id,
            owner=self.record.owner,
            variables=self.record.variables,
            settings=self.settings,
            timeout_seconds=node.timeoutSeconds,
            retry=node.retry,
            log=self.log(node.id),
            should_stop=should_stop,
            load_agent=self.store.get_agent,
            read_secret=secrets.read_credential,
        )

    def canceled(self) -> bool:
        return self.store.execution_state(self.record.id) != "RUNNING"

    def run_node(self, node: NodeDefinition, active: ActiveNode) -> Answer:
        node_type = REGISTRY[node.type]
        config = node_type.config_model.model_validate(node.config)
        label = f"{node.name} ({node.type})" if node.name else node.type
        self.log(node.id)("info", f"Node started: {label}, run {active.run}")
        begun = time.monotonic()
        try:
            if node_type.calls_out:
                outcome = self._call_out(lambda stop: node_type.run(config, self.context(node, stop)))
            else:
                outcome = node_type.run(config, self.context(node, lambda: False))
        except _Canceled:
            return self.discard(node, active)
        except (NodeFailed, InterpolationError) as error:
            return self.fail(node, active, str(error))
        except Exception as error:
            # A bug in a node type still fails that node, by name, rather than the whole step.
            logger.exception("node raised unexpectedly", extra={"node_id": node.id})
            return self.fail(node, active, f"unexpected error: {type(error).__name__}: {error}")
        if outcome.wait:
            return self.wait(node, active, outcome)
        return self.commit(node, active, outcome, begun)

    def _call_out(self, work: Callable[[Callable[[], bool]], Outcome]) -> Outcome:
        """Run a node that calls out in a worker thread, so a cancel is noticed while it waits."""
        stop = threading.Event()
        result: list[Outcome] = []
        failure: list[BaseException] = []

        def target() -> None:
            try:
                result.append(work(stop.is_set))
            except BaseException as error:  # handed to the caller's thread below
                failure.append(error)

        worker = threading.Thread(target=target, name=f"node-{self.record.id}", daemon=True)
        worker.start()
        waited = 0.0
        while True:
            worker.join(CANCEL_POLL_SECONDS)
            if not worker.is_alive():
                break
            waited += CANCEL_POLL_SECONDS
            if waited >= LOG_FLUSH_SECONDS:
                # A slow call: let watchers see it started, and each attempt, while it waits.
                self.flush_logs()
                waited = 0.0
            if self.canceled():
                stop.set()
                raise _Canceled
            if self.time_left_ms and self.time_left_ms() < TIME_MARGIN_MS:
                stop.set()
                raise NodeFailed("ran out of time: the call outlasted the node runner's time limit")
        if failure:
            raise failure[0]
        return result[0]

    def wait(self, node: NodeDefinition, active: ActiveNode, outcome: Outcome) -> Answer:
        assert outcome.wait is not None
        waiting = active.model_copy(update={"waitingFor": outcome.wait.kind, "seconds": outcome.wait.seconds})
        if not self.store.set_active_node(self.record, waiting, count_run=self.unclaimed):
            return self.discard(node, active)
        if self.logs:
            self.store.append_logs(self.record.id, self.logs)
        if outcome.wait.kind == "delay":
            return answer("delay", seconds=outcome.wait.seconds)
        if outcome.wait.seconds:
            return answer("approval", timeout_seconds=outcome.wait.seconds)
        return answer("pause")

    def commit(self, node: NodeDefinition, active: ActiveNode, outcome: Outcome, begun: float) -> Answer:
        limit = self.settings.max_inline_output_bytes
        if limits.depth(outcome.output) > limits.MAX_DEPTH or limits.depth(outcome.set_variables) > limits.MAX_DEPTH:
            return self.fail(node, active, f"the result is nested more than {limits.MAX_DEPTH} levels deep")
        variables = dict(self.record.variables)
        for name, value in outcome.set_variables.items():
            fitted, truncated = _fit(value, limit)
            if truncated:
                self.log(node.id)("warning", f"value of '{name}' is larger than {limit} bytes; stored truncated")
            variables[name] = fitted
        size = limits.json_size(variables)
        if size > self.settings.max_variables_bytes:
            return self.fail(
                node,
                active,
                f"variables would grow to {size} bytes; the limit is {self.settings.max_variables_bytes}",
            )
        output, _ = _fit(outcome.output, limit)
        elapsed = int((time.monotonic() - begun) * 1000)
        self.log(node.id)("info", f"Node completed in {elapsed} ms")
        next_node = outcome.next_node or self.definition.following(node.id)
        completed = now_iso()
        run = NodeRun(
            run=active.run,
            nodeId=node.id,
            state="COMPLETED",
            startedAt=active.startedAt,
            completedAt=completed,
            output=output,
            logs=self.logs,
        )
        finish = None
        if next_node is None:
            run.logs.append(_line(None, "info", "Execution completed"))
            finish = ("COMPLETED", None)
        if not self.store.commit_node(
            self.record, run, variables=variables, cursor=next_node, finish=finish, count_run=self.unclaimed
        ):
            return self.discard(node, active)
        self.record.variables = variables
        self.record.cursor = next_node
        return answer("done") if finish else answer("continue")

    def fail(self, node: NodeDefinition, active: ActiveNode, message: str) -> Answer:
        error = f"Node '{node.id}' ({node.type}) failed: {message}"
        self.log(node.id)("error", f"Node failed: {message}")
        completed = now_iso()
        run = NodeRun(
            run=active.run,
            nodeId=node.id,
            state="FAILED",
            startedAt=active.startedAt,
            completedAt=completed,
            error=message,
            logs=self.logs,
        )
        finish = ("FAILED", error)
        if not self.store.commit_node(
            self.record, run, variables=self.record.variables, cursor=node.id, finish=finish, count_run=self.unclaimed
        ):
            return self.discard(node, active)
        return answer("failed")

    def discard(self, node: NodeDefinition, active: ActiveNode) -> Answer:
        """The execution changed under the node: its result is dropped, and the record says what comes next.

        Canceled: the run is recorded as canceled and nothing further starts. Still RUNNING (or PAUSED): a
        retried invocation of this step moved the execution on and its record stands; this run is recorded
        as superseded and the state machine carries on from the record.
        """
        state = self.store.execution_state(self.record.id)
        if state not in ("CANCELED", "RUNNING", "PAUSED"):
            return answer("ended")
        if state != "CANCELED" and self.unclaimed:
            # An unclaimed run shares its number with the winner's run of the same node: leave that one be.
            return answer("continue") if state == "RUNNING" else answer("pause")
        if state == "CANCELED":
            error = "canceled"
            self.log(node.id)("warning", "Node canceled: the execution was canceled while it ran; result discarded")
        else:
            error = "superseded by a retry of the same step; result discarded"
            self.log(node.id)("warning", f"Node run {error}")
        run = NodeRun(
            run=active.run,
            nodeId=node.id,
            state="FAILED",
            startedAt=active.startedAt,
            completedAt=now_iso(),
            error=error,
            logs=self.logs,
        )
        self.store.put_node_run(self.record.id, run)
        if state == "RUNNING":
            return answer("continue")
        return answer("pause") if state == "PAUSED" else answer("ended")

    def finish_waiting(self, active: ActiveNode) -> Answer:
        node = self.definition.node(active.nodeId)
        node_type = REGISTRY[node.type]
        assert node_type.finish is not None
        config = node_type.config_model.model_validate(node.config)
        outcome = node_type.finish(config, self.context(node, lambda: False), active.model_dump())
        # The node began when its wait did: "completed in" counts the wait, as the node's times do.
        waited = max(0.0, time.time() - parse_iso(active.startedAt).timestamp())
        return self.commit(node, active, outcome, time.monotonic() - waited)


def _unfinished_wait(active: ActiveNode) -> Answer | None:
    """The answer that parks a wait again when a step arrives before it is over (a retried invocation)."""
    if active.waitingFor == "approval" and not active.approvedBy:
        return answer("approval", timeout_seconds=active.seconds) if active.seconds else answer("pause")
    if active.waitingFor == "delay":
        remaining = parse_iso(active.startedAt).timestamp() + active.seconds - time.time()
        if remaining > 1:
            return answer("delay", seconds=math.ceil(remaining))
    return None


def step(store: Store, settings: Settings, execution_id: str, time_left_ms: Callable[[], int] | None = None) -> Answer:
    """Run the next node (or finish the one that waited), then say what the state machine does next.

    ``time_left_ms`` is the Lambda context's clock: a node that calls out fails cleanly before it runs out.
    """
    for _ in range(3):
        record = _load(store, execution_id)
        if terminal(record.state):
            return answer("ended")
        if record.state == "PAUSED":
            # A retried invocation after the pause was recorded: park again (pause() keeps the newest token).
            return answer("pause")
        if record.state != "RUNNING":
            raise RuntimeError(f"execution {execution_id} is {record.state}; expected RUNNING")
        current = _Step(store, settings, record, time_left_ms)
        if record.activeNode and record.activeNode.waitingFor:
            unfinished = _unfinished_wait(record.activeNode)
            return unfinished or current.finish_waiting(record.activeNode)
        if record.pauseRequested:
            return answer("pause")
        if record.cursor is None:
            raise RuntimeError(f"execution {execution_id} is RUNNING with no node left to run")
        node = current.definition.node(record.cursor)
        if record.nodeRuns >= record.maxNodeRuns:
            active = ActiveNode(nodeId=node.id, run=record.nodeRuns + 1, startedAt=now_iso())
            return current.fail(
                node,
                active,
                f"step limit reached: {record.maxNodeRuns} node runs (a loop?); raise the workflow's "
                "maxNodeRuns if the run really needs more",
            )
        active = ActiveNode(nodeId=node.id, run=record.nodeRuns + 1, startedAt=now_iso())
        node_type = REGISTRY[node.type]
        if not node_type.calls_out and node_type.finish is None:
            current.unclaimed = True
            return current.run_node(node, active)
        if store.claim_node(record, active):
            return current.run_node(node, active)
        # The record changed under us (a cancel or a pause request): read it again and decide anew.
    raise RuntimeError(f"execution {execution_id} kept changing; giving up this step")


def pause(store: Store, execution_id: str, task_token: str) -> None:
    """The state machine waits on ``task_token``: record PAUSED and keep the token for resume."""
    record = _load(store, execution_id)
    if terminal(record.state):
        # Canceled meanwhile: fail this task so the run does not wait for a resume that never comes.
        raise RuntimeError(f"execution {execution_id} is {record.state}; not pausing")
    if record.state == "PAUSED":
        # A retried pause task: the state machine now waits on this newer token.
        store.transition(execution_id, "PAUSED", allowed_from=("PAUSED",), set_values={"taskToken": task_token})
        return
    waiting_for_approval = bool(record.activeNode and record.activeNode.waitingFor == "approval")
    if not waiting_for_approval and not record.pauseRequested:
        # The pause request was withdrawn (resumed) before the state machine got here: go on at once.
        stepfunctions.resume(task_token, {})
        return
    # Only as things were read: a resume that withdraws the request meanwhile must not be lost.
    moved, now_record = store.transition(
        execution_id,
        "PAUSED",
        allowed_from=("RUNNING",),
        set_values={"taskToken": task_token, "pauseRequested": False},
        expected_revision=record.revision,
        pause_requested=None if waiting_for_approval else True,
    )
    if not moved:
        if now_record and terminal(now_record.state):
            raise RuntimeError(f"execution {execution_id} is {now_record.state}; not pausing")
        stepfunctions.resume(task_token, {})
        return
    if waiting_for_approval and record.activeNode:
        message = f"Waiting for approval at node {record.activeNode.nodeId}: resume to approve"
        store.append_logs(execution_id, [_line(record.activeNode.nodeId, "info", message)])
    else:
        store.append_logs(execution_id, [_line(None, "info", "Execution paused")])


def approval_timeout(store: Store, execution_id: str) -> Answer:
    """Nobody resumed within the approval's timeout: the node and the execution fail."""
    record = _load(store, execution_id)
    if terminal(record.state):
        return answer("ended")
    active = record.activeNode
    if active is None or active.waitingFor != "approval":
        return answer("continue")
    if active.approvedBy:
        # A resume landed just as the timeout fired: the approval stands.
        return answer("continue")
    node = _definition(store, record).node(active.nodeId)
    message = f"nobody approved within {active.seconds} s"
    error = f"Node '{node.id}' ({node.type}) failed: {message}"
    moved, _ = store.transition(
        execution_id,
        "FAILED",
        allowed_from=("PAUSED", "RUNNING"),
        set_values={"error": error, "completedAt": now_iso()},
        remove=("taskToken",),  # activeNode stays: it shows the node FAILED until its run is recorded
        expected_revision=record.revision,  # a resume that lands meanwhile wins
    )
    if not moved:
        current = store.get_execution(execution_id)
        if current is None or terminal(current.state):
            return answer("ended")
        return answer("continue")
    _record_failed_run(store, execution_id, active, message)
    return answer("failed")


def _record_failed_run(store: Store, execution_id: str, active: ActiveNode, message: str) -> None:
    """The active node failed outside a node step (an approval timeout, an error the state machine caught)."""
    run = NodeRun(
        run=active.run,
        nodeId=active.nodeId,
        state="FAILED",
        startedAt=active.startedAt,
        completedAt=now_iso(),
        error=message,
        logs=[_line(active.nodeId, "error", f"Node failed: {message}")],
    )
    store.put_node_run(execution_id, run)


def fail(store: Store, execution_id: str, error: dict[str, Any]) -> Answer:
    """The state machine caught an error it could not retry: record FAILED with it (unless already ended)."""
    record = store.get_execution(execution_id)
    if record is None or terminal(record.state):
        return answer("ended")
    cause = str(error.get("Cause") or "")
    try:
        parsed = json.loads(cause)
        cause = str(parsed.get("errorMessage") or cause) if isinstance(parsed, dict) else cause
    except ValueError:
        pass
    message = f"{error.get('Error') or 'Error'}: {cause[:1000]}".rstrip(": ")
    where = f" at node '{record.activeNode.nodeId}'" if record.activeNode else ""
    text = f"Execution failed{where}: {message}"
    moved, _ = store.transition(
        execution_id,
        "FAILED",
        allowed_from=("PENDING", "RUNNING", "PAUSED"),
        set_values={"error": text, "completedAt": now_iso()},
        remove=("taskToken",),  # activeNode stays: it shows the node FAILED until its run is recorded
    )
    if moved and record.activeNode:
        _record_failed_run(store, execution_id, record.activeNode, message)
    return answer("failed")
