"""Finding runs: the caller's executions across every workflow, filtered. Included under ``/api/executions``."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter

from stepwise.api.routing import CurrentCaller, Cursor, Limit, answers, store
from stepwise.models.envelopes import ListEnvelope
from stepwise.models.execution import ExecutionState, ExecutionSummary
from stepwise.service import executions

PREFIX = "/api/executions"
router = APIGatewayHttpRouter()


@router.get(
    "/",
    tags=["executions"],
    description="Your executions across all your workflows, newest first (an admin may add owner=).",
    responses=answers(200, "A page of executions"),
)
def find_executions(
    caller: CurrentCaller,
    workflowId: Annotated[str | None, Query(description="only this workflow's executions")] = None,
    state: Annotated[ExecutionState | None, Query()] = None,
    startedBy: Annotated[str | None, Query(max_length=200, description="a user's sub, or schedule:<id>")] = None,
    started_from: Annotated[
        str | None, Query(alias="from", max_length=64, description="ISO-8601; startedAt at or after it")
    ] = None,
    started_to: Annotated[
        str | None, Query(alias="to", max_length=64, description="ISO-8601; startedAt before it")
    ] = None,
    owner: Annotated[str | None, Query(max_length=200, description="another user's sub (admins only)")] = None,
    limit: Limit = 20,
    cursor: Cursor = None,
) -> ListEnvelope[ExecutionSummary]:
    rows, next_cursor = executions.find(
        store(),
        caller,
        owner=owner,
        workflow_id=workflowId,
        state=state,
        started_by=startedBy,
        started_from=started_from,
        started_to=started_to,
        limit=limit,
        cursor=cursor,
    )
    return ListEnvelope(data=rows, nextCursor=next_cursor)
