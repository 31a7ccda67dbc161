"""Executions: start, read, list, cancel, pause and resume."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache
from typing import Any

from stepwise import ids, limits, stepfunctions
from stepwise.clock import iso, now_iso
from stepwise.errors import (
    BadRequest,
    Conflict,
    ExecutionExists,
    ExecutionNotFound,
    NotOwner,
    StartFailed,
    WorkflowNotFound,
)
from stepwise.identity import Caller
from stepwise.models.execution import (
    TERMINAL_STATES,
    ExecutionSummary,
    LogLine,
    NodeStateView,
    WorkflowExecution,
)
from stepwise.models.records import ExecutionRecord, NodeRun
from stepwise.models.workflow import WorkflowDefinition, WorkflowView
from stepwise.service import workflows
from stepwise.service.paging import callers_cursor
from stepwise.settings import Settings
from stepwise.store import ConditionFailed, ExecutionQuery, Store, terminal

CANCELABLE = ("PENDING", "RUNNING", "PAUSED")
# A pause is asked for (or withdrawn) while the run has not paused yet.
PAUSABLE = ("PENDING", "RUNNING")
_EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
_LATEST = datetime(9000, 1, 1, tzinfo=UTC)


def _state_machine(settings: Settings) -> str:
    if not settings.state_machine_arn:
        raise RuntimeError("STATE_MACHINE_ARN is not set")
    return settings.state_machine_arn


def launch(
    store: Store,
    settings: Settings,
    workflow: WorkflowView,
    variables: dict[str, Any],
    *,
    owner: str,
    started_by: str,
    execution_id: str | None = None,
) -> str:
    """Record a PENDING execution of the workflow's current version and start its state machine run.

    ``execution_id`` makes the start idempotent (a scheduled tick delivered twice starts one run). If Step
    Functions refuses, the record ends FAILED with the reason and ``StartFailed`` is raised. ``ExecutionExists``
    when another start with the same ``execution_id`` recorded it first.
    """
    merged = {**workflow.variables, **variables}
    if limits.depth(merged) > limits.MAX_DEPTH:
        raise BadRequest(f"variables are nested too deeply; the limit is {limits.MAX_DEPTH} levels")
    size = limits.json_size(merged)
    if size > settings.max_variables_bytes:
        raise BadRequest(f"variables are {size} bytes; the limit is {settings.max_variables_bytes}")
    if execution_id is None:
        execution_id = ids.new_id("exe")
    elif (existing := store.get_execution(execution_id)) is not None:
        if existing.state == "PENDING":
            # A repeated start (a scheduled tick delivered again) of one whose start did not go through.
            _start_state_machine(store, settings, execution_id)
        return execution_id
    record = ExecutionRecord(
        id=execution_id,
        workflowId=workflow.id,
        workflowVersion=workflow.version,
        owner=owner,
        state="PENDING",
        startedAt=now_iso(),
        startedBy=started_by,
        variables=merged,
        cursor=workflow.nodes[0].id,
        maxNodeRuns=workflow.maxNodeRuns or settings.default_max_node_runs,
    )
    try:
        store.create_execution(record)
    except ConditionFailed as error:
        raise ExecutionExists(execution_id) from error
    _start_state_machine(store, settings, execution_id)
    return execution_id


def _start_state_machine(store: Store, settings: Settings, execution_id: str) -> None:
    """Start the run; if Step Functions refuses, the record ends FAILED with the reason (never PENDING forever)."""
    try:
        stepfunctions.start(_state_machine(settings), execution_id)
    except (stepfunctions.StartRefused, RuntimeError) as error:
        reason = f"Execution could not be started: {error}"
        store.transition(
            execution_id,
            "FAILED",
            allowed_from=("PENDING",),
            set_values={"error": reason, "completedAt": now_iso()},
        )
        raise StartFailed(f"Execution {execution_id} could not be started; it is recorded as FAILED") from error


@cache
def _idempotent_launch(table: str, ttl_seconds: int) -> tuple[Any, Any]:
    """``launch`` behind Powertools idempotency: one execution per (owner, workflow, Idempotency-Key)."""
    from aws_lambda_powertools.utilities.idempotency import (
        DynamoDBPersistenceLayer,
        IdempotencyConfig,
        idempotent_function,
    )

    persistence = DynamoDBPersistenceLayer(table_name=table)
    config = IdempotencyConfig(
        event_key_jmespath="[owner, workflowId, idempotencyKey]",
        payload_validation_jmespath="variables",
        expires_after_seconds=ttl_seconds,
        raise_on_no_idempotency_key=True,
    )

    def start_once(request: dict[str, Any], store: Store, settings: Settings, workflow: WorkflowView) -> dict[str, str]:
        execution_id = launch(
            store,
            settings,
            workflow,
            request["variables"],
            owner=request["owner"],
            started_by=request["owner"],
        )
        return {"workflowId": workflow.id, "executionId": execution_id}

    decorate = idempotent_function(data_keyword_argument="request", persistence_store=persistence, config=config)
    return decorate(start_once), config


def start(
    store: Store,
    settings: Settings,
    caller: Caller,
    workflow_id: str,
    variables: dict[str, Any],
    idempotency_key: str | None,
    lambda_context: Any = None,
) -> str:
    """Start the caller's workflow; a repeated ``Idempotency-Key`` returns the first execution's id.

    ``lambda_context`` lets an in-progress idempotency record expire with the invocation that wrote it.
    """
    workflow = workflows.get_owned(store, caller, workflow_id)
    if not idempotency_key:
        return launch(store, settings, workflow, variables, owner=caller.sub, started_by=caller.sub)
    if not settings.idempotency_table_name:
        raise RuntimeError("IDEMPOTENCY_TABLE_NAME is not set")
    from aws_lambda_powertools.utilities.idempotency.exceptions import (
        IdempotencyAlreadyInProgressError,
        IdempotencyValidationError,
    )

    start_once, config = _idempotent_launch(settings.idempotency_table_name, settings.idempotency_ttl_seconds)
    if lambda_context is not None:
        config.register_lambda_context(lambda_context)
    request = {
        "owner": caller.sub,
        "workflowId": workflow_id,
        "idempotencyKey": idempotency_key,
        "variables": variables,
    }
    try:
        result: dict[str, str] = start_once(request=request, store=store, settings=settings, workflow=workflow)
    except IdempotencyValidationError as error:
        raise Conflict(
            "Idempotency-Key was already used for a start with different variables; use a new key"
        ) from error
    except IdempotencyAlreadyInProgressError as error:
        raise Conflict("A start with this Idempotency-Key is in progress; retry in a moment") from error
    return result["executionId"]


def _record(store: Store, caller: Caller, execution_id: str, *, change: bool) -> ExecutionRecord:
    record = store.get_execution(execution_id) if ids.is_id(execution_id, "exe") else None
    if record is None:
        raise ExecutionNotFound(execution_id)
    if change:
        caller.ensure_owns(record.owner, f"execution {execution_id}")
    else:
        caller.ensure_can_read(record.owner, f"execution {execution_id}")
    return record


def node_states(
    record: ExecutionRecord, runs: list[NodeRun], definition: WorkflowDefinition | None
) -> dict[str, NodeStateView]:
    """Every node of the pinned version: its latest run, the running node, or PENDING / SKIPPED."""
    latest: dict[str, NodeRun] = {}
    for each in sorted(runs, key=lambda r: r.run):
        latest[each.nodeId] = each
    ended = terminal(record.state)
    states: dict[str, NodeStateView] = {}
    node_ids = [node.id for node in definition.nodes] if definition else list(latest)
    for node_id in node_ids:
        run = latest.get(node_id)
        if run is not None:
            states[node_id] = NodeStateView(
                state=run.state,
                startedAt=run.startedAt,
                completedAt=run.completedAt,
                error=run.error,
                output=run.output,
            )
        else:
            states[node_id] = NodeStateView(
                state="SKIPPED" if ended else "PENDING",
                startedAt=None,
                completedAt=None,
                error=None,
                output=None,
            )
    active = record.activeNode
    if active and (active.nodeId not in latest or latest[active.nodeId].run < active.run):
        if ended:
            # Canceled (or failed) while this node ran: its result will be discarded.
            states[active.nodeId] = NodeStateView(
                state="FAILED",
                startedAt=active.startedAt,
                completedAt=record.completedAt,
                error="canceled" if record.state == "CANCELED" else record.error,
                output=None,
            )
        else:
            states[active.nodeId] = NodeStateView(
                state="RUNNING", startedAt=active.startedAt, completedAt=None, error=None, output=None
            )
    return states


def get(store: Store, caller: Caller, execution_id: str) -> WorkflowExecution:
    """The whole execution: state, variables, node states and every log line in time order."""
    if not ids.is_id(execution_id, "exe"):
        raise ExecutionNotFound(execution_id)
    record, runs, logs = store.load_execution(execution_id)
    if record is None:
        raise ExecutionNotFound(execution_id)
    caller.ensure_can_read(record.owner, f"execution {execution_id}")
    definition = store.get_workflow_version(record.workflowId, record.workflowVersion)
    lines: list[LogLine] = list(logs)
    for run in runs:
        lines.extend(run.logs)
    lines.sort(key=lambda line: line.timestamp)
    view = WorkflowExecution(
        **record.summary().model_dump(),
        variables=record.variables,
        logs=lines,
        # Derived, not stored: it would double what the execution item holds.
        output=definition.output_of(record.variables) if definition and record.state == "COMPLETED" else None,
        nodeStates=node_states(record, runs, definition),
    )
    return _within_response_limit(view)


# Lambda answers at most 6 MB; a long run's node outputs and log lines could add up to more.
MAX_VIEW_BYTES = 5_000_000
MAX_LOG_LINES = 5_000


def _within_response_limit(view: WorkflowExecution) -> WorkflowExecution:
    """The view, with node outputs and older log lines left out if it would not fit in one answer."""
    size = len(view.model_dump_json().encode())
    if size <= MAX_VIEW_BYTES:
        return view
    for state in view.nodeStates.values():
        if state.output is not None:
            state.output = {"omitted": True, "reason": "the execution is too large to show every node output"}
    if len(view.logs) > MAX_LOG_LINES:
        omitted = len(view.logs) - MAX_LOG_LINES
        first = view.logs[0]
        note = LogLine(
            nodeId=None,
            level="warning",
            timestamp=first.timestamp,
            message=f"{omitted} earlier log lines omitted: the execution is too large to show them all",
        )
        view.logs = [note, *view.logs[-MAX_LOG_LINES:]]
    return view


def list_for_workflow(
    store: Store, caller: Caller, workflow_id: str, state: str | None, limit: int, cursor: str | None
) -> tuple[list[ExecutionSummary], str | None]:
    """The caller's executions of a workflow, newest first."""
    workflow = store.get_workflow(workflow_id) if ids.is_id(workflow_id, "wf") else None
    owner = caller.sub
    if workflow is not None:
        caller.ensure_can_read(workflow.owner, f"workflow {workflow_id}")
        owner = workflow.owner
    with callers_cursor():
        records, next_cursor = store.find_executions(ExecutionQuery(owner, workflow_id, state), limit, cursor)
    if workflow is None and not records and cursor is None:
        raise WorkflowNotFound(workflow_id)
    return [record.summary() for record in records], next_cursor


def parse_time_bound(name: str, text: str | None) -> datetime | None:
    """A ``from``/``to`` bound as given in a query (ISO-8601; UTC unless it says otherwise), to the millisecond."""
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError as error:
        raise BadRequest(
            f"{name}: '{text}' is not an ISO-8601 time; write it like 2024-05-01T09:30:00Z "
            "(a date alone, 2024-05-01, is that day at 00:00 UTC)"
        ) from error
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    # No execution started before 1970 or after 9000: outside that, a bound changes nothing.
    if moment.year in (1, 9999):
        return _EARLIEST if moment.year == 1 else _LATEST
    moment = min(max(moment.astimezone(UTC), _EARLIEST), _LATEST)
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def find(
    store: Store,
    caller: Caller,
    *,
    owner: str | None = None,
    workflow_id: str | None = None,
    state: str | None = None,
    started_by: str | None = None,
    started_from: str | None = None,
    started_to: str | None = None,
    limit: int,
    cursor: str | None = None,
) -> tuple[list[ExecutionSummary], str | None]:
    """The caller's executions across all their workflows, newest first, narrowed by what is given.

    ``started_from`` (included) and ``started_to`` (excluded) bound ``startedAt``; ``owner`` lists someone
    else's executions, for an admin only.
    """
    if owner is not None and owner != caller.sub and not caller.is_admin:
        raise NotOwner("Only an admin may list another user's executions (owner=)")
    if workflow_id is not None and not ids.is_id(workflow_id, "wf"):
        raise BadRequest(f"workflowId: '{workflow_id}' is not a workflow id (wf_ followed by 26 characters)")
    first, last = parse_time_bound("from", started_from), parse_time_bound("to", started_to)
    if first and last and first >= last:
        raise BadRequest(f"from ({iso(first)}) must be before to ({iso(last)})")
    query = ExecutionQuery(owner or caller.sub, workflow_id, state, started_by, first, last)
    with callers_cursor():
        records, next_cursor = store.find_executions(query, limit, cursor)
    return [record.summary() for record in records], next_cursor


def cancel(store: Store, settings: Settings, caller: Caller, execution_id: str) -> None:
    """CANCELED at once (a conditional write), then the state machine run is stopped."""
    record = _record(store, caller, execution_id, change=True)
    moved, before = store.transition(
        execution_id,
        "CANCELED",
        allowed_from=CANCELABLE,
        set_values={"completedAt": now_iso()},
        remove=("taskToken",),
    )
    if not moved:
        state = before.state if before else record.state
        raise Conflict(f"Execution {execution_id} already ended ({state}); it cannot be canceled")
    store.append_logs(
        execution_id,
        [LogLine(nodeId=None, level="info", message=f"Execution canceled by {caller.sub}", timestamp=now_iso())],
    )
    if settings.state_machine_arn:
        stepfunctions.stop(settings.state_machine_arn, execution_id, f"canceled by {caller.sub}")
    if before and before.taskToken:
        stepfunctions.abandon(before.taskToken, "execution canceled")


def pause(store: Store, caller: Caller, execution_id: str) -> str:
    """Ask the run to pause before its next node (``pauseRequested`` shows it until then)."""
    _record(store, caller, execution_id, change=True)
    requested, current = store.request_pause(execution_id, True, allowed_from=PAUSABLE)
    if requested:
        return f"Execution {execution_id} will pause before its next node"
    if current is None:
        raise ExecutionNotFound(execution_id)
    if current.state == "PAUSED":
        raise Conflict(f"Execution {execution_id} is already paused")
    if current.state in PAUSABLE:
        raise Conflict(f"Execution {execution_id}: a pause is already requested; it pauses before its next node")
    raise Conflict(f"Execution {execution_id} already ended ({current.state}); it cannot be paused")


def resume(store: Store, caller: Caller, execution_id: str) -> str:
    """Resume a paused run (and approve the approval node it waits at), or withdraw a pause not yet taken."""
    record = _record(store, caller, execution_id, change=True)
    if record.state in PAUSABLE:
        withdrawn, current = store.request_pause(execution_id, False, allowed_from=PAUSABLE)
        if withdrawn:
            return f"Execution {execution_id}: pause withdrawn; it goes on running"
        # Not requested, or the run paused meanwhile: decide on the record as it is now.
        record = current or record
        if record.state in PAUSABLE:
            raise Conflict(f"Execution {execution_id} is not paused ({record.state}) and no pause is requested")
    if record.state != "PAUSED":
        if record.state in TERMINAL_STATES:
            raise Conflict(f"Execution {execution_id} already ended ({record.state}); it cannot be resumed")
        raise Conflict(f"Execution {execution_id} is not paused ({record.state})")
    set_values: dict[str, Any] = {"pauseRequested": False}
    approving = record.activeNode is not None and record.activeNode.waitingFor == "approval"
    if approving and record.activeNode:
        approved = record.activeNode.model_copy(update={"approvedBy": caller.sub, "approvedAt": now_iso()})
        set_values["activeNode"] = approved
    moved, before = store.transition(
        execution_id, "RUNNING", allowed_from=("PAUSED",), set_values=set_values, remove=("taskToken",)
    )
    if not moved or before is None or not before.taskToken:
        state = before.state if before else "unknown"
        raise Conflict(f"Execution {execution_id} is not paused ({state})")
    stepfunctions.resume(before.taskToken, {"resumedBy": caller.sub})
    if approving:
        return f"Execution {execution_id} approved and resumed"
    return f"Execution {execution_id} resumed"
