"""Agents: create, list, read, replace, delete. Included under ``/api/agents``."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter

from stepwise.api.routing import CurrentCaller, Cursor, Limit, answers, store
from stepwise.models.agent import AgentInput, AgentView
from stepwise.models.envelopes import DataEnvelope, ListEnvelope, MessageEnvelope
from stepwise.service import agents

PREFIX = "/api/agents"
router = APIGatewayHttpRouter()


@router.post("/", tags=["agents"], status_code=201, responses=answers(201, "Created: the agent"))
def create_agent(body: AgentInput, caller: CurrentCaller) -> DataEnvelope[AgentView]:
    return DataEnvelope(data=AgentView.of(agents.create(store(), caller, body)))


@router.get("/", tags=["agents"], responses=answers(200, "A page of your agents, newest first"))
def list_agents(caller: CurrentCaller, limit: Limit = 20, cursor: Cursor = None) -> ListEnvelope[AgentView]:
    rows, next_cursor = agents.list_mine(store(), caller, limit, cursor)
    return ListEnvelope(data=[AgentView.of(row) for row in rows], nextCursor=next_cursor)


@router.get("/<agentId>", tags=["agents"], responses=answers(200, "The agent"))
def get_agent(agentId: str, caller: CurrentCaller) -> DataEnvelope[AgentView]:
    return DataEnvelope(data=AgentView.of(agents.get(store(), caller, agentId)))


@router.put("/<agentId>", tags=["agents"], responses=answers(200, "The agent as replaced"))
def update_agent(agentId: str, body: AgentInput, caller: CurrentCaller) -> DataEnvelope[AgentView]:
    return DataEnvelope(data=AgentView.of(agents.update(store(), caller, agentId, body)))


@router.delete(
    "/<agentId>",
    tags=["agents"],
    description="409 naming the workflows whose current version calls the agent, unless force=true.",
    responses=answers(200, "Deleted"),
)
def delete_agent(
    agentId: str,
    caller: CurrentCaller,
    force: Annotated[bool, Query(description="delete even if workflows call it (their runs fail at it)")] = False,
) -> MessageEnvelope:
    agents.delete(store(), caller, agentId, force=force)
    return MessageEnvelope(message=f"Agent {agentId} deleted")
