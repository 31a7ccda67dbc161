"""Executions: start, list and cancel (reading one: :mod:`stepwise.service.views`; pause and resume:
:mod:`stepwise.service.pausing`).

Each change is a group appended to the execution's log (:mod:`stepwise.service.history`), decided on the
newest group and decided again when another writer appended first: a cancel that lands while a node runs
wins, a resume that withdraws a pause request before the run pauses is never lost.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from typing import Any

from stepwise import ids, limits, stepfunctions
from stepwise.aws import TransientError
from stepwise.clock import iso
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
from stepwise.models.events import Actor, Event, ValueRef
from stepwise.models.execution import ExecutionSummary, RerunOf
from stepwise.models.records import Control, ExecutionRecord, Group
from stepwise.models.workflow import WorkflowView
from stepwise.observability import logger
from stepwise.service import concurrency, workflows
from stepwise.service.history import Change, actor, ending, event, record_change
from stepwise.service.paging import callers_cursor
from stepwise.store import ConditionFailed, ExecutionQuery, Store, terminal
from stepwise.store.history import SeqTaken
from stepwise.store.values import json_bytes

CANCELABLE = ("PENDING", "RUNNING", "PAUSED")
# A pause is asked for (or withdrawn) while the run has not paused yet.
PAUSABLE = ("PENDING", "RUNNING")
REUSED_KEY = "Idempotency-Key was already used for a start with different variables; use a new key"
START_DELAYED = (
    "Step Functions did not take the start for now (throttled); the execution stays PENDING until the reconciler "
    "starts it (within a few minutes)"
)
# A new execution's item is written again after these pauses (seconds) when AWS refuses it for now.
PROJECT_FIRST_PAUSES = (0.1, 0.3, 0.9)
_EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
_LATEST = datetime(9000, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Runs:
    """What starting and stopping runs takes beside the table: the state machine, and a new run's limits."""

    state_machine_arn: str
    max_variables_bytes: int
    default_max_node_runs: int
    # How many executions of one owner may run at once (0: no limit; see stepwise.service.concurrency).
    owner_concurrency_limit: int = 0

    def limits(self) -> concurrency.Limits:
        """The concurrency limits its starts keep to (and the state machine a queued start is started on)."""
        return concurrency.Limits(self.owner_concurrency_limit, self.state_machine_arn)


@dataclass(frozen=True)
class Idempotency:
    """Where a start's ``Idempotency-Key`` is remembered (a DynamoDB table of Powertools'), and how long."""

    table_name: str
    ttl_seconds: int

    def once(self, function: Callable[..., Any], *, key: str, payload: str) -> tuple[Any, Any]:
        """``function`` behind Powertools idempotency, and its config (for the Lambda context): one answer per
        value of the ``request`` argument's ``key`` (a JMESPath), a repeat with another ``payload`` refused."""
        from aws_lambda_powertools.utilities.idempotency import (
            DynamoDBPersistenceLayer,
            IdempotencyConfig,
            idempotent_function,
        )

        persistence = DynamoDBPersistenceLayer(table_name=self.table_name)
        config = IdempotencyConfig(
            event_key_jmespath=key,
            payload_validation_jmespath=payload,
            expires_after_seconds=self.ttl_seconds,
            raise_on_no_idempotency_key=True,
        )
        decorate = idempotent_function(data_keyword_argument="request", persistence_store=persistence, config=config)
        return decorate(function), config


@dataclass(frozen=True)
class Beginning:
    """Where a new execution begins when it is a rerun (:mod:`stepwise.service.reruns`), not a plain start.

    It begins at ``node_id``; ``refs`` are the variables S3 keeps (under the new execution's keys already);
    ``events`` follow ``execution.started`` in the first group (the nodes it reuses).
    """

    node_id: str
    rerun_of: RerunOf
    refs: dict[str, ValueRef] = field(default_factory=dict)
    events: tuple[Event, ...] = ()

    def started_fields(self) -> dict[str, Any]:
        """What ``execution.started`` holds beside a plain start's fields."""
        return {"rerunOf": self.rerun_of, **({"refs": self.refs} if self.refs else {})}


def launch(
    store: Store,
    runs: Runs,
    workflow: WorkflowView,
    variables: dict[str, Any],
    *,
    owner: str,
    started_by: str,
    started_by_name: str | None = None,
    execution_id: str | None = None,
    beginning: Beginning | None = None,
) -> str:
    """Record a PENDING execution of the workflow's current version and start its state machine run.

    The record is the first group of its log (``execution.started``, with the variables), then its projections.
    ``execution_id`` makes the start idempotent (a scheduled tick delivered twice starts one run). If Step
    Functions refuses, the record ends FAILED with the reason and ``StartFailed`` is raised; if it does not take the
    start for now (throttled), the execution stays PENDING and the reconciler starts it. ``ExecutionExists``
    when another start with the same ``execution_id`` recorded it first. ``beginning``: a rerun, which begins
    elsewhere than at the first node. Over a concurrency limit, the execution waits in its owner's queue (no run
    is started) or, for a workflow that rejects, ``TooManyRuns``.
    """
    merged = {**workflow.variables, **variables}
    if beginning is not None:  # a value S3 keeps is not inline too
        merged = {name: value for name, value in merged.items() if name not in beginning.refs}
    if limits.depth(merged) > limits.MAX_DEPTH:
        raise BadRequest(f"variables are nested too deeply; the limit is {limits.MAX_DEPTH} levels")
    size = limits.json_size(merged)
    if size > runs.max_variables_bytes:
        raise BadRequest(f"variables are {size} bytes; the limit is {runs.max_variables_bytes}")
    if execution_id is None:
        execution_id = ids.new_id("exe")
    elif (tail := store.tail(execution_id)) is not None:
        # A repeated start (a scheduled tick delivered again, a start retried with its Idempotency-Key): finish
        # what a start that died between its record and its state machine run left undone.
        store.project(execution_id, tail)
        if tail.control.state == "PENDING" and tail.control.queued is None:
            _start_state_machine(store, runs, workflow, execution_id, tail.control.restarts)
        return execution_id
    started = event(
        "execution.started",
        workflowId=workflow.id,
        workflowVersion=workflow.version,
        startedBy=started_by,
        by=Actor(sub=owner, name=started_by_name or started_by),
        variables=merged,
        **(beginning.started_fields() if beginning else {}),
    )
    control = Control(
        state="PENDING",
        workflowId=workflow.id,
        workflowVersion=workflow.version,
        cursor=beginning.node_id if beginning else workflow.nodes[0].id,
        maxNodeRuns=workflow.maxNodeRuns or runs.default_max_node_runs,
        variablesBytes=sum(json_bytes(value) for value in merged.values())
        + sum(ref.bytes for ref in (beginning.refs.values() if beginning else ())),
    )
    try:
        first = [started, *(beginning.events if beginning else ())]
        group, admitted = concurrency.start_new(store, runs.limits(), workflow, execution_id, owner, first, control)
    except SeqTaken as error:
        raise ExecutionExists(execution_id) from error
    _project_first(store, execution_id, group)
    if admitted:
        _start_state_machine(store, runs, workflow, execution_id)
    return execution_id


def _project_first(store: Store, execution_id: str, first: Group) -> None:
    """Write the new execution's item and variables, trying again a few times when AWS refuses it for now.

    They are what lists it (and what the reconciler finds it by): written later by whoever reads it by id, but a
    start answered with an error leaves nobody who knows the id unless it was keyed.
    """
    for pause in (*PROJECT_FIRST_PAUSES, None):
        try:
            store.project(execution_id, first)
            return
        except TransientError:
            if pause is None:
                raise
            time.sleep(pause)


def _start_state_machine(
    store: Store, runs: Runs, workflow: WorkflowView, execution_id: str, restarts: int = 0
) -> None:
    """Start the run; if Step Functions refuses, the record ends FAILED with the reason (never PENDING forever).

    When it did not take the start for now (throttled, or no answer), the execution stays PENDING, a warning in its
    log says so, and the reconciler starts it once its grace period is over (or finds it started after all).
    """
    try:
        stepfunctions.start(runs.state_machine_arn, stepfunctions.run_name(execution_id, restarts))
    except stepfunctions.StartDelayed as error:
        logger.warning("StartExecution delayed; the reconciler starts the run", extra={"error": str(error)})
        _note_start_delayed(store, execution_id)
    except stepfunctions.StartRefused as error:
        reason = f"Execution could not be started: {error}"

        def decide(tail: Group) -> Change | None:
            if tail.control.state != "PENDING":
                return None
            return Change(ending(store, execution_id, workflow, [], event("execution.failed", error=reason)))

        record_change(store, execution_id, decide, repair=False)
        raise StartFailed(f"Execution {execution_id} could not be started; it is recorded as FAILED") from error


def _note_start_delayed(store: Store, execution_id: str) -> None:
    """A warning in the log of an execution whose run did not start yet (for watchers: the reconciler needs none)."""

    def decide(tail: Group) -> Change | None:
        if tail.control.state != "PENDING":
            return None
        return Change([event("log", level="warning", message=START_DELAYED)])

    with contextlib.suppress(TransientError):
        record_change(store, execution_id, decide, repair=False)


@cache
def _idempotent_launch(idempotency: Idempotency) -> tuple[Any, Any]:
    """``launch`` behind Powertools idempotency: one execution per (owner, workflow, Idempotency-Key)."""

    def start_once(request: dict[str, Any], store: Store, runs: Runs, workflow: WorkflowView) -> dict[str, str]:
        # The id is reserved for the key before the record is written: a retry after this start died between its
        # record and its state machine run (its idempotency record expired with it) starts that same execution.
        execution_id = _reserved_id(store, idempotency, request)
        with contextlib.suppress(ExecutionExists):  # a retry racing the start it repeats: that one starts it
            launch(
                store,
                runs,
                workflow,
                request["variables"],
                owner=request["owner"],
                started_by=request["owner"],
                started_by_name=request.get("ownerName"),
                execution_id=execution_id,
            )
        return {"workflowId": workflow.id, "executionId": execution_id}

    return idempotency.once(start_once, key="[owner, workflowId, idempotencyKey]", payload="variables")


def _reserved_id(store: Store, idempotency: Idempotency, request: dict[str, Any]) -> str:
    """The execution id of the start ``request`` names by its ``Idempotency-Key`` (a new one the first time)."""
    key = hashlib.sha256(json.dumps([request["owner"], request["workflowId"], request["idempotencyKey"]]).encode())
    fingerprint = hashlib.sha256(json.dumps(request["variables"], sort_keys=True).encode()).hexdigest()
    try:
        return store.reserve_execution_id(key.hexdigest(), ids.new_id("exe"), fingerprint, idempotency.ttl_seconds)
    except ConditionFailed as error:
        raise Conflict(REUSED_KEY) from error


def start(
    store: Store,
    runs: Runs,
    idempotency: Idempotency,
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
        return launch(
            store,
            runs,
            workflow,
            variables,
            owner=caller.sub,
            started_by=caller.sub,
            started_by_name=caller.display_name,
        )
    from aws_lambda_powertools.utilities.idempotency.exceptions import (
        IdempotencyAlreadyInProgressError,
        IdempotencyValidationError,
    )

    start_once, config = _idempotent_launch(idempotency)
    if lambda_context is not None:
        config.register_lambda_context(lambda_context)
    request = {
        "owner": caller.sub,
        "workflowId": workflow_id,
        "idempotencyKey": idempotency_key,
        "variables": variables,
        "ownerName": caller.display_name,
    }
    try:
        result: dict[str, str] = start_once(request=request, store=store, runs=runs, workflow=workflow)
    except IdempotencyValidationError as error:
        raise Conflict(REUSED_KEY) from error
    except IdempotencyAlreadyInProgressError as error:
        raise Conflict("A start with this Idempotency-Key is in progress; retry in a moment") from error
    return result["executionId"]


def record_for(store: Store, caller: Caller, execution_id: str, *, change: bool) -> ExecutionRecord:
    """The execution's record, if ``caller`` may change it (``change``) or read it."""
    record = execution_record(store, execution_id)
    if change:
        caller.ensure_owns(record.owner, f"execution {execution_id}")
    else:
        caller.ensure_can_read(record.owner, f"execution {execution_id}")
    return record


def execution_record(store: Store, execution_id: str) -> ExecutionRecord:
    """The ``EXECUTION`` item (written again from the log if a crash left it missing), else ``ExecutionNotFound``."""
    if not ids.is_id(execution_id, "exe"):
        raise ExecutionNotFound(execution_id)
    record = store.get_execution(execution_id)
    if record is None and (first := store.group_holding(execution_id, 1)) is not None:
        store.project(execution_id, first)
        record = store.get_execution(execution_id)
    if record is None:
        raise ExecutionNotFound(execution_id)
    return record


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
    return concurrency.summaries(store, records), next_cursor


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
    return concurrency.summaries(store, records), next_cursor


def cancel(store: Store, runs: Runs, caller: Caller, execution_id: str) -> None:
    """CANCELED at once (the node in flight, if any, recorded as canceled), then the state machine run is stopped."""
    record = record_for(store, caller, execution_id, change=True)
    definition = store.get_workflow_version(record.workflowId, record.workflowVersion)

    def decide(tail: Group) -> Change | str:
        control = tail.control
        if terminal(control.state):
            return control.state
        node_events: list[Event] = []
        if (active := control.activeNode) is not None:
            node_events.append(
                event("node.failed", nodeId=active.nodeId, run=active.run, startedAt=active.startedAt, error="canceled")
            )
        return Change(
            ending(store, execution_id, definition, node_events, event("execution.canceled", by=actor(caller)))
        )

    tail, decided = record_change(store, execution_id, decide)
    if not isinstance(decided, Change):
        raise Conflict(f"Execution {execution_id} already ended ({decided}); it cannot be canceled")
    run = stepfunctions.run_name(execution_id, tail.control.restarts)
    stepfunctions.stop(runs.state_machine_arn, run, f"canceled by {caller.sub}")
    if record.taskToken:
        # A parked pause task: StopExecution ends it in AWS; failing the task ends it wherever StopExecution
        # is not honoured (moto).
        stepfunctions.abandon(record.taskToken, "execution canceled")
