"""Workflow definitions: create, list, read, new version, delete. Included under ``/api/workflows``."""

from __future__ import annotations

from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter

from stepwise.api.routing import CurrentCaller, Cursor, Limit, Wired, answers
from stepwise.models.envelopes import DataEnvelope, ListEnvelope, MessageEnvelope
from stepwise.models.workflow import WorkflowView
from stepwise.nodes.definitions import WorkflowInput, WorkflowUpdate
from stepwise.service import workflow_removal, workflows

PREFIX = "/api/workflows"
router = APIGatewayHttpRouter()


@router.post("/", tags=["workflows"], status_code=201, responses=answers(201, "Created: the workflow, version 1"))
def create_workflow(body: WorkflowInput, caller: CurrentCaller, wired: Wired) -> DataEnvelope[WorkflowView]:
    return DataEnvelope(data=workflows.create(wired.store, caller, body))


@router.get("/", tags=["workflows"], responses=answers(200, "A page of your workflows, newest first"))
def list_workflows(
    caller: CurrentCaller, wired: Wired, limit: Limit = 20, cursor: Cursor = None
) -> ListEnvelope[WorkflowView]:
    rows, next_cursor = workflows.list_mine(wired.store, caller, limit, cursor)
    return ListEnvelope(data=rows, nextCursor=next_cursor)


@router.get("/<workflowId>", tags=["workflows"], responses=answers(200, "The workflow's current version"))
def get_workflow(workflowId: str, caller: CurrentCaller, wired: Wired) -> DataEnvelope[WorkflowView]:
    return DataEnvelope(data=workflows.get(wired.store, caller, workflowId))


@router.put("/<workflowId>", tags=["workflows"], responses=answers(200, "The new version"))
def update_workflow(
    workflowId: str, body: WorkflowUpdate, caller: CurrentCaller, wired: Wired
) -> DataEnvelope[WorkflowView]:
    return DataEnvelope(data=workflows.update(wired.store, caller, workflowId, body.definition(workflowId)))


@router.delete("/<workflowId>", tags=["workflows"], responses=answers(200, "Deleted, with its schedules"))
def delete_workflow(workflowId: str, caller: CurrentCaller, wired: Wired) -> MessageEnvelope:
    workflow_removal.delete(wired.store, wired.scheduling.target.group, caller, workflowId)
    return MessageEnvelope(message=f"Workflow {workflowId} deleted")
