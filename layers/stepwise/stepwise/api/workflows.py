"""Workflow definitions: create, list, read, new version, delete. Included under ``/api/workflows``."""

from __future__ import annotations

from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter

from stepwise.api.routing import CurrentCaller, Cursor, Limit, answers, store
from stepwise.models.envelopes import DataEnvelope, ListEnvelope, MessageEnvelope
from stepwise.models.workflow import WorkflowDefinition, WorkflowUpdate, WorkflowView
from stepwise.service import workflows

PREFIX = "/api/workflows"
router = APIGatewayHttpRouter()


@router.post("/", tags=["workflows"], status_code=201, responses=answers(201, "Created: the workflow, version 1"))
def create_workflow(body: WorkflowDefinition, caller: CurrentCaller) -> DataEnvelope[WorkflowView]:
    return DataEnvelope(data=workflows.create(store(), caller, body))


@router.get("/", tags=["workflows"], responses=answers(200, "A page of your workflows, newest first"))
def list_workflows(caller: CurrentCaller, limit: Limit = 20, cursor: Cursor = None) -> ListEnvelope[WorkflowView]:
    rows, next_cursor = workflows.list_mine(store(), caller, limit, cursor)
    return ListEnvelope(data=rows, nextCursor=next_cursor)


@router.get("/<workflowId>", tags=["workflows"], responses=answers(200, "The workflow's current version"))
def get_workflow(workflowId: str, caller: CurrentCaller) -> DataEnvelope[WorkflowView]:
    return DataEnvelope(data=workflows.get(store(), caller, workflowId))


@router.put("/<workflowId>", tags=["workflows"], responses=answers(200, "The new version"))
def update_workflow(workflowId: str, body: WorkflowUpdate, caller: CurrentCaller) -> DataEnvelope[WorkflowView]:
    return DataEnvelope(data=workflows.update(store(), caller, workflowId, body.definition(workflowId)))


@router.delete("/<workflowId>", tags=["workflows"], responses=answers(200, "Deleted, with its schedules"))
def delete_workflow(workflowId: str, caller: CurrentCaller) -> MessageEnvelope:
    workflows.delete(store(), caller, workflowId)
    return MessageEnvelope(message=f"Workflow {workflowId} deleted")
