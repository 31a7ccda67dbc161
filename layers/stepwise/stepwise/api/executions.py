"""Executions (the seed contract): start, read, cancel, pause, resume, and a workflow's runs.

Included under ``/api/workflows``: ``/execute/{id}`` is the seed's, ``/{workflowId}/executions`` the listing.
"""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Body, Header, Query
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter
from aws_lambda_powertools.metrics import MetricUnit

from stepwise.api.routing import CurrentCaller, Cursor, Limit, answers, store
from stepwise.models.envelopes import DataEnvelope, DataMessageEnvelope, ListEnvelope, MessageEnvelope, StartedExecution
from stepwise.models.execution import ExecutionState, ExecutionSummary, WorkflowExecution
from stepwise.models.workflow import StartExecutionRequest
from stepwise.observability import metrics
from stepwise.service import executions
from stepwise.settings import get_settings

PREFIX = "/api/workflows"
router = APIGatewayHttpRouter()


@router.post(
    "/execute/<workflowId>",
    tags=["executions"],
    status_code=202,
    responses=answers(202, "Started: the execution's id (a retry with the same Idempotency-Key answers the same)"),
)
def start_execution(
    workflowId: str,
    caller: CurrentCaller,
    body: Annotated[StartExecutionRequest | None, Body()] = None,
    idempotency_key: Annotated[str | None, Header(alias="idempotency-key", max_length=200)] = None,
) -> DataMessageEnvelope[StartedExecution]:
    variables = body.variables if body else {}
    execution_id = executions.start(
        store(), get_settings(), caller, workflowId, variables, idempotency_key, router.lambda_context
    )
    metrics.add_metric(name="ExecutionsStarted", unit=MetricUnit.Count, value=1)
    data = StartedExecution(workflowId=workflowId, executionId=execution_id)
    return DataMessageEnvelope(data=data, message="Workflow execution initiated successfully")


@router.get("/execute/<executionId>", tags=["executions"], responses=answers(200, "The execution"))
def get_execution(executionId: str, caller: CurrentCaller) -> DataEnvelope[WorkflowExecution]:
    return DataEnvelope(data=executions.get(store(), caller, executionId))


@router.delete("/execute/<executionId>", tags=["executions"], responses=answers(200, "Canceled"))
def cancel_execution(executionId: str, caller: CurrentCaller) -> MessageEnvelope:
    executions.cancel(store(), get_settings(), caller, executionId)
    metrics.add_metric(name="ExecutionsCanceled", unit=MetricUnit.Count, value=1)
    return MessageEnvelope(message=f"Execution {executionId} canceled")


@router.post(
    "/execute/<executionId>/pause",
    tags=["executions"],
    description="Pause before the next node; the execution shows pauseRequested until it pauses. 409 when it is "
    "already PAUSED, a pause is already requested, or it ended.",
    responses=answers(200, "Pause requested"),
)
def pause_execution(executionId: str, caller: CurrentCaller) -> MessageEnvelope:
    return MessageEnvelope(message=executions.pause(store(), caller, executionId))


@router.post(
    "/execute/<executionId>/resume",
    tags=["executions"],
    description="Resume a PAUSED execution (and approve the approval node it waits at), or withdraw a pause "
    "requested and not yet taken ('pause withdrawn'). 409 when it is neither.",
    responses=answers(200, "Resumed, or the pending pause withdrawn"),
)
def resume_execution(executionId: str, caller: CurrentCaller) -> MessageEnvelope:
    return MessageEnvelope(message=executions.resume(store(), caller, executionId))


@router.get("/<workflowId>/executions", tags=["executions"], responses=answers(200, "A page of executions"))
def list_executions(
    workflowId: str,
    caller: CurrentCaller,
    state: Annotated[ExecutionState | None, Query()] = None,
    limit: Limit = 20,
    cursor: Cursor = None,
) -> ListEnvelope[ExecutionSummary]:
    rows, next_cursor = executions.list_for_workflow(store(), caller, workflowId, state, limit, cursor)
    return ListEnvelope(data=rows, nextCursor=next_cursor)
