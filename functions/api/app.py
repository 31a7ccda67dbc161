"""The HTTP API (API Gateway HTTP API, payload 2.0): thin routes over ``stepwise.service``.

Each route parses, calls one use case and shapes the answer; every rule lives in the shared package.
Errors are domain exceptions mapped to status codes in one place (``_domain_error``).
"""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.event_handler.middlewares import NextMiddleware
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.openapi.params import Body, Header, Query
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter as Router
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from stepwise.errors import BadRequest, StepwiseError
from stepwise.identity import Caller, caller_from_claims
from stepwise.limits import parse_json_body
from stepwise.models.agent import AgentInput, AgentView
from stepwise.models.envelopes import (
    DataEnvelope,
    DataMessageEnvelope,
    ErrorEnvelope,
    ListEnvelope,
    MessageEnvelope,
    StartedExecution,
)
from stepwise.models.execution import ExecutionState, ExecutionSummary, WorkflowExecution
from stepwise.models.schedule import ScheduleInput, SchedulePatch, ScheduleView
from stepwise.models.workflow import StartExecutionRequest, WorkflowDefinition, WorkflowUpdate, WorkflowView
from stepwise.observability import logger, metrics, trace_handler
from stepwise.service import agents, executions, schedules, workflows
from stepwise.settings import get_settings
from stepwise.store import Store, default_store

# Bodies are strict JSON: Python's parser would take NaN and Infinity, and recurse without end.
app = APIGatewayHttpResolver(enable_validation=True, json_body_deserializer=parse_json_body)
app.enable_swagger(path="/api/docs", openapi_version="3.1.0", title="stepwise API", version="1.0.0")

Limit = Annotated[int, Query(ge=1, le=100, description="page size")]
Cursor = Annotated[str | None, Query(description="the nextCursor of the previous page")]


def store() -> Store:
    return default_store()


def caller() -> Caller:
    return caller_from_claims(app.current_event.request_context.authorizer.jwt_claim)


def _identity_first(app: APIGatewayHttpResolver, next_middleware: NextMiddleware) -> Response[Any]:
    # As behind API Gateway's authorizer, a request without identity is a 401 before the handler runs.
    if app.current_event.path != "/api/openapi.json":
        caller()
    return next_middleware(app)


def _bodies_as_json(event: dict[str, Any]) -> dict[str, Any]:
    # The API speaks only JSON: a body sent without its content type (`curl -d` says form-urlencoded) is
    # read as JSON all the same, rather than failing with a puzzling form-field error.
    headers = event.get("headers")
    if event.get("body") and isinstance(headers, dict) and "json" not in headers.get("content-type", ""):
        event = {**event, "headers": {**headers, "content-type": "application/json"}}
    return event


app.use(middlewares=[_identity_first])


def _json(status: HTTPStatus, body: Any) -> Response[Any]:
    return Response(status_code=status, content_type=content_types.APPLICATION_JSON, body=body)


# --- errors -------------------------------------------------------------------------------------


def _error_answer(error: StepwiseError) -> Response[Any]:
    if error.status_code >= 500:
        logger.exception("request failed")
    return _json(HTTPStatus(error.status_code), {"success": False, "error": error.message})


@app.exception_handler(StepwiseError)
def _domain_error(error: StepwiseError) -> Response[Any]:
    return _error_answer(error)


@app.exception_handler(RequestValidationError)
def _invalid_request(error: RequestValidationError) -> Response[Any]:
    problems = []
    for detail in error.errors():
        location = [str(part) for part in detail.get("loc", ()) if part not in ("body", "query", "path", "header")]
        message = str(detail.get("msg", "invalid")).removeprefix("Value error, ")
        if detail.get("type") == "json_invalid":
            problems.append("request body is not valid JSON")
            continue
        problems.append(f"{'.'.join(location)}: {message}" if location else message)
    return _json(HTTPStatus.BAD_REQUEST, {"success": False, "error": "; ".join(problems) or "invalid request"})


@app.exception_handler(UnicodeDecodeError)
def _not_utf8(_: UnicodeDecodeError) -> Response[Any]:
    return _error_answer(BadRequest("request body is not valid UTF-8"))


@app.not_found
def _no_route(_: Exception) -> Response[Any]:
    event = app.current_event
    return _json(HTTPStatus.NOT_FOUND, {"success": False, "error": f"No route {event.http_method} {event.path}"})


@app.exception_handler(Exception)
def _unexpected(error: Exception) -> Response[Any]:
    logger.exception("unexpected error")
    return _json(HTTPStatus.INTERNAL_SERVER_ERROR, {"success": False, "error": "Internal server error"})


# One Router per resource; the resolver includes them all (below) and holds the one exception map (above).
executions_api = Router()
workflows_api = Router()
agents_api = Router()
schedules_api = Router()


# --- executions (the seed contract) -------------------------------------------------------------


@executions_api.post("/api/workflows/execute/<workflowId>", tags=["executions"])
def start_execution(
    workflowId: str,
    body: Annotated[StartExecutionRequest | None, Body()] = None,
    idempotency_key: Annotated[str | None, Header(alias="idempotency-key", max_length=200)] = None,
) -> Response[DataMessageEnvelope[StartedExecution]]:
    variables = body.variables if body else {}
    execution_id = executions.start(
        store(), get_settings(), caller(), workflowId, variables, idempotency_key, app.lambda_context
    )
    metrics.add_metric(name="ExecutionsStarted", unit=MetricUnit.Count, value=1)
    data = StartedExecution(workflowId=workflowId, executionId=execution_id)
    return _json(
        HTTPStatus.ACCEPTED,
        DataMessageEnvelope(data=data, message="Workflow execution initiated successfully"),
    )


@executions_api.get("/api/workflows/execute/<executionId>", tags=["executions"])
def get_execution(executionId: str) -> DataEnvelope[WorkflowExecution]:
    return DataEnvelope(data=executions.get(store(), caller(), executionId))


@executions_api.delete("/api/workflows/execute/<executionId>", tags=["executions"])
def cancel_execution(executionId: str) -> MessageEnvelope:
    executions.cancel(store(), get_settings(), caller(), executionId)
    metrics.add_metric(name="ExecutionsCanceled", unit=MetricUnit.Count, value=1)
    return MessageEnvelope(message=f"Execution {executionId} canceled")


@executions_api.post(
    "/api/workflows/execute/<executionId>/pause",
    tags=["executions"],
    description="Pause before the next node; the execution shows pauseRequested until it pauses. 409 when it is "
    "already PAUSED, a pause is already requested, or it ended.",
)
def pause_execution(executionId: str) -> MessageEnvelope:
    return MessageEnvelope(message=executions.pause(store(), caller(), executionId))


@executions_api.post(
    "/api/workflows/execute/<executionId>/resume",
    tags=["executions"],
    description="Resume a PAUSED execution (and approve the approval node it waits at), or withdraw a pause "
    "requested and not yet taken ('pause withdrawn'). 409 when it is neither.",
)
def resume_execution(executionId: str) -> MessageEnvelope:
    return MessageEnvelope(message=executions.resume(store(), caller(), executionId))


@executions_api.get(
    "/api/executions",
    tags=["executions"],
    description="Your executions across all your workflows, newest first (an admin may add owner=).",
)
def find_executions(
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
        caller(),
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


@executions_api.get("/api/workflows/<workflowId>/executions", tags=["executions"])
def list_executions(
    workflowId: str,
    state: Annotated[ExecutionState | None, Query()] = None,
    limit: Limit = 20,
    cursor: Cursor = None,
) -> ListEnvelope[ExecutionSummary]:
    rows, next_cursor = executions.list_for_workflow(store(), caller(), workflowId, state, limit, cursor)
    return ListEnvelope(data=rows, nextCursor=next_cursor)


# --- workflows ----------------------------------------------------------------------------------


@workflows_api.post("/api/workflows", tags=["workflows"])
def create_workflow(body: WorkflowDefinition) -> Response[DataEnvelope[WorkflowView]]:
    return _json(HTTPStatus.CREATED, DataEnvelope(data=workflows.create(store(), caller(), body)))


@workflows_api.get("/api/workflows", tags=["workflows"])
def list_workflows(limit: Limit = 20, cursor: Cursor = None) -> ListEnvelope[WorkflowView]:
    rows, next_cursor = workflows.list_mine(store(), caller(), limit, cursor)
    return ListEnvelope(data=rows, nextCursor=next_cursor)


@workflows_api.get("/api/workflows/<workflowId>", tags=["workflows"])
def get_workflow(workflowId: str) -> DataEnvelope[WorkflowView]:
    return DataEnvelope(data=workflows.get(store(), caller(), workflowId))


@workflows_api.put("/api/workflows/<workflowId>", tags=["workflows"])
def update_workflow(workflowId: str, body: WorkflowUpdate) -> DataEnvelope[WorkflowView]:
    return DataEnvelope(data=workflows.update(store(), caller(), workflowId, body.definition(workflowId)))


@workflows_api.delete("/api/workflows/<workflowId>", tags=["workflows"])
def delete_workflow(workflowId: str) -> MessageEnvelope:
    workflows.delete(store(), caller(), workflowId)
    return MessageEnvelope(message=f"Workflow {workflowId} deleted")


# --- agents -------------------------------------------------------------------------------------


@agents_api.post("/api/agents", tags=["agents"])
def create_agent(body: AgentInput) -> Response[DataEnvelope[AgentView]]:
    return _json(HTTPStatus.CREATED, DataEnvelope(data=AgentView.of(agents.create(store(), caller(), body))))


@agents_api.get("/api/agents", tags=["agents"])
def list_agents(limit: Limit = 20, cursor: Cursor = None) -> ListEnvelope[AgentView]:
    rows, next_cursor = agents.list_mine(store(), caller(), limit, cursor)
    return ListEnvelope(data=[AgentView.of(row) for row in rows], nextCursor=next_cursor)


@agents_api.get("/api/agents/<agentId>", tags=["agents"])
def get_agent(agentId: str) -> DataEnvelope[AgentView]:
    return DataEnvelope(data=AgentView.of(agents.get(store(), caller(), agentId)))


@agents_api.put("/api/agents/<agentId>", tags=["agents"])
def update_agent(agentId: str, body: AgentInput) -> DataEnvelope[AgentView]:
    return DataEnvelope(data=AgentView.of(agents.update(store(), caller(), agentId, body)))


@agents_api.delete(
    "/api/agents/<agentId>",
    tags=["agents"],
    description="409 naming the workflows whose current version calls the agent, unless force=true.",
)
def delete_agent(
    agentId: str,
    force: Annotated[bool, Query(description="delete even if workflows call it (their runs fail at it)")] = False,
) -> MessageEnvelope:
    agents.delete(store(), caller(), agentId, force=force)
    return MessageEnvelope(message=f"Agent {agentId} deleted")


# --- schedules ----------------------------------------------------------------------------------


@schedules_api.post("/api/workflows/<workflowId>/schedules", tags=["schedules"])
def create_schedule(workflowId: str, body: ScheduleInput) -> Response[DataEnvelope[ScheduleView]]:
    view = schedules.create(store(), get_settings(), caller(), workflowId, body)
    return _json(HTTPStatus.CREATED, DataEnvelope(data=view))


@schedules_api.get("/api/workflows/<workflowId>/schedules", tags=["schedules"])
def list_schedules(workflowId: str) -> ListEnvelope[ScheduleView]:
    return ListEnvelope(data=schedules.list_for_workflow(store(), caller(), workflowId), nextCursor=None)


@schedules_api.get("/api/workflows/<workflowId>/schedules/<scheduleId>", tags=["schedules"])
def get_schedule(workflowId: str, scheduleId: str) -> DataEnvelope[ScheduleView]:
    return DataEnvelope(data=schedules.get(store(), caller(), workflowId, scheduleId))


@schedules_api.patch("/api/workflows/<workflowId>/schedules/<scheduleId>", tags=["schedules"])
def update_schedule(workflowId: str, scheduleId: str, body: SchedulePatch) -> DataEnvelope[ScheduleView]:
    return DataEnvelope(data=schedules.patch(store(), get_settings(), caller(), workflowId, scheduleId, body))


@schedules_api.delete("/api/workflows/<workflowId>/schedules/<scheduleId>", tags=["schedules"])
def delete_schedule(workflowId: str, scheduleId: str) -> MessageEnvelope:
    schedules.delete(store(), get_settings(), caller(), workflowId, scheduleId)
    return MessageEnvelope(message=f"Schedule {scheduleId} deleted")


for router in (executions_api, workflows_api, agents_api, schedules_api):
    app.include_router(router)


# --- the OpenAPI document (no authorizer in front of it) -----------------------------------------


# What Powertools generates says 200 and 422 everywhere; these are the status codes the API really answers.
SUCCESS_CODES = {
    ("/api/workflows/execute/{workflowId}", "post"): "202",
    ("/api/workflows", "post"): "201",
    ("/api/agents", "post"): "201",
    ("/api/workflows/{workflowId}/schedules", "post"): "201",
}
ERRORS = {
    "400": "Bad request: the message names the field to fix",
    "401": "No valid bearer token",
    "403": "Someone else's resource",
    "404": "No resource with that id",
    "409": "The resource's state does not allow it",
    "500": "Unexpected error (the detail is only in the logs)",
}


@app.get("/api/openapi.json", include_in_schema=False)
def openapi_document() -> Response[Any]:
    document = json.loads(app.get_openapi_json_schema(title="stepwise API", version="1.0.0"))
    error_ref = {"$ref": "#/components/schemas/ErrorEnvelope"}
    document["components"]["schemas"]["ErrorEnvelope"] = ErrorEnvelope.model_json_schema()
    document["components"]["securitySchemes"] = {
        "CognitoJwt": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
    }
    document["security"] = [{"CognitoJwt": []}]
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            responses.pop("422", None)
            success = SUCCESS_CODES.get((path, method))
            if success and "200" in responses:
                responses[success] = responses.pop("200")
            for code, description in ERRORS.items():
                responses[code] = {"description": description, "content": {"application/json": {"schema": error_ref}}}
    document["components"]["schemas"].pop("HTTPValidationError", None)
    document["components"]["schemas"].pop("ValidationError", None)
    document["components"]["schemas"].pop("ResponseValidationError", None)
    return Response(status_code=HTTPStatus.OK, content_type=content_types.APPLICATION_JSON, body=document)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@trace_handler
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(_bodies_as_json(event), context)
