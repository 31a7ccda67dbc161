"""Executions (the seed contract): start, read, cancel, pause, resume, and a workflow's runs.

Included under ``/api/workflows``: ``/execute/{id}`` is the seed's, ``/{workflowId}/executions`` the listing.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import unquote

from aws_lambda_powertools.event_handler.openapi.params import Body, Header, Query
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter
from aws_lambda_powertools.metrics import MetricUnit

from stepwise.api.routing import UNAVAILABLE_RESPONSE, CurrentCaller, Cursor, Limit, Wired, answers
from stepwise.models.envelopes import (
    DataEnvelope,
    DataMessageEnvelope,
    ListEnvelope,
    MessageEnvelope,
    StartedExecution,
    StartedRerun,
)
from stepwise.models.events import EventsPage
from stepwise.models.execution import ExecutionState, ExecutionSummary, RerunRequest, WorkflowExecution
from stepwise.models.workflow import StartExecutionRequest
from stepwise.observability import metrics
from stepwise.service import executions, pausing, reruns, views

PREFIX = "/api/workflows"
router = APIGatewayHttpRouter()


@router.post(
    "/execute/<workflowId>",
    tags=["executions"],
    status_code=202,
    description="Start a run of the workflow's current version. Over a concurrency limit (the workflow's, or its "
    "owner's), the run waits in the queue, PENDING with queuedAt, and starts by itself in start order; a workflow "
    "whose concurrency says onLimit: reject answers 429 instead.",
    responses=answers(
        202, "Started: the execution's id (a retry with the same Idempotency-Key answers the same)", limited=True
    ),
)
def start_execution(
    workflowId: str,
    caller: CurrentCaller,
    wired: Wired,
    body: Annotated[StartExecutionRequest | None, Body()] = None,
    idempotency_key: Annotated[str | None, Header(alias="idempotency-key", max_length=200)] = None,
) -> DataMessageEnvelope[StartedExecution]:
    variables = body.variables if body else {}
    execution_id = executions.start(
        wired.store,
        wired.runs,
        wired.idempotency,
        caller,
        workflowId,
        variables,
        idempotency_key,
        router.lambda_context,
    )
    metrics.add_metric(name="ExecutionsStarted", unit=MetricUnit.Count, value=1)
    data = StartedExecution(workflowId=workflowId, executionId=execution_id)
    return DataMessageEnvelope(data=data, message="Workflow execution initiated successfully")


@router.post(
    "/execute/<executionId>/rerun",
    tags=["executions"],
    status_code=202,
    description="Start a new execution that goes on from a node of an ended one (COMPLETED, FAILED or CANCELED; "
    "else 409): the nodes that completed before fromNode's latest run in the source are not run again (nodeStates "
    "shows them COMPLETED, reused: true, with the source's times and output), and it begins at fromNode with the "
    "variables as they were just before that run, the body's variables set over them key by key. fromNode defaults "
    "to the node that failed (or was running when the execution was canceled), else where the source began; a node "
    "that is not in the chosen version, or that the source never ran, is a 400. version: 'same' (the source's, the "
    "default), 'latest' or a number. Only the source's owner may rerun it (403). A retry with the same "
    "Idempotency-Key answers the same rerun.",
    responses=answers(202, "Started: the new execution's id and the one it reruns"),
)
def rerun_execution(
    executionId: str,
    caller: CurrentCaller,
    wired: Wired,
    body: Annotated[RerunRequest | None, Body()] = None,
    idempotency_key: Annotated[str | None, Header(alias="idempotency-key", max_length=200)] = None,
) -> DataMessageEnvelope[StartedRerun]:
    started = reruns.rerun(
        wired.store,
        wired.runs,
        wired.idempotency,
        wired.blobs,
        caller,
        executionId,
        body or RerunRequest(),
        idempotency_key,
        router.lambda_context,
    )
    metrics.add_metric(name="ExecutionsRerun", unit=MetricUnit.Count, value=1)
    data = StartedRerun(workflowId=started.workflow_id, executionId=started.execution_id, rerunOf=executionId)
    message = (
        f"Rerun of {executionId} from node '{started.from_node}' (version {started.workflow_version}) "
        "initiated successfully"
    )
    return DataMessageEnvelope(data=data, message=message)


@router.get(
    "/execute/<executionId>",
    tags=["executions"],
    description="The execution: its state, variables, each node's latest run (with how many runs) and the newest "
    "1,000 log lines (every line is in the events). A value too large to show inline is a reference "
    '{"$ref": "<URL path>", "bytes": N}: GET that path for the value.',
    responses=answers(200, "The execution"),
)
def get_execution(executionId: str, caller: CurrentCaller, wired: Wired) -> DataEnvelope[WorkflowExecution]:
    return DataEnvelope(data=views.get(wired.store, caller, executionId, wired.load_value))


@router.get(
    "/execute/<executionId>/events",
    tags=["executions"],
    description="The execution's events after the cursor, in order: seq starts at 1 and grows by 1 with no gap; "
    "the terminal event (execution.completed, execution.failed or execution.canceled) is the last. When there are "
    "none after 'after' yet, waits up to waitSeconds for one and answers with an empty list if none came (an ended "
    "execution answers at once). Pass lastSeq back as 'after' to go on.",
    responses=answers(200, "The events after the cursor, the cursor to go on from, and the execution's state"),
)
def execution_events(
    executionId: str,
    caller: CurrentCaller,
    wired: Wired,
    after: Annotated[int, Query(ge=0, description="the last seq seen (0: from the start)")] = 0,
    limit: Annotated[int, Query(ge=1, le=500, description="at most this many events")] = 100,
    waitSeconds: Annotated[int, Query(ge=0, le=25, description="wait this long for an event, when none is there")] = 0,
) -> DataEnvelope[EventsPage]:
    page = views.events(wired.store, caller, executionId, after=after, limit=limit, wait_seconds=waitSeconds)
    return DataEnvelope(data=page)


@router.get(
    "/execute/<executionId>/variables/<name>",
    tags=["executions"],
    description="A variable's value, whole: as it is now, or as event 'seq' set it (the references the execution "
    "and its events show name both).",
    responses=answers(200, "The value"),
)
def execution_variable(
    executionId: str,
    name: str,
    caller: CurrentCaller,
    wired: Wired,
    seq: Annotated[int | None, Query(ge=1, description="the event that set it (default: its value now)")] = None,
) -> DataEnvelope[Any]:
    return DataEnvelope(data=views.value(wired.store, caller, executionId, unquote(name), seq, wired.load_value))


@router.delete("/execute/<executionId>", tags=["executions"], responses=answers(200, "Canceled"))
def cancel_execution(executionId: str, caller: CurrentCaller, wired: Wired) -> MessageEnvelope:
    executions.cancel(wired.store, wired.runs, caller, executionId)
    metrics.add_metric(name="ExecutionsCanceled", unit=MetricUnit.Count, value=1)
    return MessageEnvelope(message=f"Execution {executionId} canceled")


@router.post(
    "/execute/<executionId>/pause",
    tags=["executions"],
    description="Pause before the next node; the execution shows pauseRequested until it pauses. 409 when it is "
    "already PAUSED, a pause is already requested, or it ended.",
    responses=answers(200, "Pause requested"),
)
def pause_execution(executionId: str, caller: CurrentCaller, wired: Wired) -> MessageEnvelope:
    return MessageEnvelope(message=pausing.pause(wired.store, caller, executionId))


@router.post(
    "/execute/<executionId>/resume",
    tags=["executions"],
    description="Resume a PAUSED execution (and approve the approval node it waits at), or withdraw a pause "
    "requested and not yet taken ('pause withdrawn'). 409 when it is neither, or when its Step Functions run no "
    "longer waits for the resume (an approval that timed out); 503 when Step Functions did not take it for now "
    "(it is still PAUSED: resume it again). A paused run holds no concurrency slot: over a limit, the resume "
    "waits in the queue (the execution stays PAUSED with queuedAt) and happens by itself, or is a 429 for a "
    "workflow that rejects.",
    responses={
        **answers(200, "Resumed, waiting for a slot to resume, or the pending pause withdrawn", limited=True),
        **UNAVAILABLE_RESPONSE,
    },
)
def resume_execution(executionId: str, caller: CurrentCaller, wired: Wired) -> MessageEnvelope:
    return MessageEnvelope(message=pausing.resume(wired.store, caller, executionId, wired.runs))


@router.get("/<workflowId>/executions", tags=["executions"], responses=answers(200, "A page of executions"))
def list_executions(
    workflowId: str,
    caller: CurrentCaller,
    wired: Wired,
    state: Annotated[ExecutionState | None, Query()] = None,
    limit: Limit = 20,
    cursor: Cursor = None,
) -> ListEnvelope[ExecutionSummary]:
    rows, next_cursor = executions.list_for_workflow(wired.store, caller, workflowId, state, limit, cursor)
    return ListEnvelope(data=rows, nextCursor=next_cursor)
