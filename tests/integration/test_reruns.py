"""Rerun from any node: the API function answers in process (the ``api`` fixture), the real ASL runs under
moto, and agents answer over real HTTP from a server on 127.0.0.1. (``test_reruns_local_stack`` drives the same
through ``stepwise dev`` and the CLI.)
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.agent_server import AgentServer, Reply
from tests.support.builders import pending_execution, wait_for_state

ENDED = {"COMPLETED", "FAILED", "CANCELED"}


@pytest.fixture
def agents() -> Iterator[AgentServer]:
    with AgentServer() as server:
        yield server


def create_agent(api: Any, server: AgentServer, path: str) -> str:
    answer = api.post("/api/agents", json_body={"name": path.strip("/"), "endpoint": server.url + path})
    assert answer.status == 201, answer.body
    return str(answer.body["data"]["id"])


def create_workflow(api: Any, definition: dict[str, Any]) -> str:
    answer = api.post("/api/workflows", json_body=definition)
    assert answer.status == 201, answer.body
    return str(answer.body["data"]["id"])


def start(api: Any, workflow_id: str, variables: dict[str, Any] | None = None) -> str:
    answer = api.post(f"/api/workflows/execute/{workflow_id}", json_body={"variables": variables or {}})
    assert answer.status == 202, answer.body
    return str(answer.body["data"]["executionId"])


def rerun(api: Any, execution_id: str, body: dict[str, Any] | None = None, **kwargs: Any) -> Any:
    return api.post(f"/api/workflows/execute/{execution_id}/rerun", json_body=body or {}, **kwargs)


def rerun_id(api: Any, execution_id: str, body: dict[str, Any] | None = None) -> str:
    answer = rerun(api, execution_id, body)
    assert answer.status == 202, answer.body
    return str(answer.body["data"]["executionId"])


def events(api: Any, execution_id: str) -> list[dict[str, Any]]:
    answer = api.get(f"/api/workflows/execute/{execution_id}/events?limit=500")
    assert answer.status == 200, answer.body
    return list(answer.body["data"]["events"])


def agent_task(node_id: str, agent_id: str, prompt: str) -> dict[str, Any]:
    return {
        "id": node_id,
        "type": "agentTask",
        "config": {"agentId": agent_id, "prompt": prompt},
        "retry": {"maxAttempts": 1, "backoffSeconds": 0},
    }


def three_agents(api: Any, agents: AgentServer, third: str) -> dict[str, Any]:
    """prepare -> research (agent) -> write (the agent at ``third``) -> finish."""
    research = create_agent(api, agents, "/research")
    writer = create_agent(api, agents, third)
    return {
        "name": "article",
        "variables": {"topic": "engines"},
        "nodes": [
            {"id": "prepare", "type": "setVariables", "config": {"values": {"subject": "${topic} for kids"}}},
            agent_task("research", research, "Research ${subject}"),
            agent_task("write", writer, "Write about ${research.answer}"),
            {"id": "finish", "type": "setVariables", "config": {"values": {"done": True}}},
        ],
    }


def test_a_run_that_failed_at_its_third_node_goes_on_from_it_once_fixed_without_calling_earlier_agents_again(
    api: Any, agents: AgentServer
) -> None:
    # Given a run that fails at its third node: its agent answers 500
    agents.script("/research", Reply.echo_json())
    agents.script("/broken", Reply(status=500, json={"error": "down"}))
    agents.script("/fixed", Reply.echo_json())
    definition = three_agents(api, agents, "/broken")
    workflow_id = create_workflow(api, definition)
    source_id = start(api, workflow_id)
    source = wait_for_state(api, source_id, ENDED)
    assert source["state"] == "FAILED" and "'write'" in source["error"]
    source_events = events(api, source_id)

    # And the workflow is fixed with a PUT: the third node calls a working agent
    definition["nodes"][2] = agent_task("write", create_agent(api, agents, "/fixed"), "Write about ${research.answer}")
    assert api.put(f"/api/workflows/{workflow_id}", json_body=definition).status == 200

    # When it is rerun on the latest version (from the node that failed, the default)
    answer = rerun(api, source_id, {"version": "latest"})

    # Then a new execution began at the failed node, ran the fixed version and completed
    assert answer.status == 202, answer.body
    assert answer.body["data"]["rerunOf"] == source_id and answer.body["data"]["workflowId"] == workflow_id
    assert answer.body["message"] == f"Rerun of {source_id} from node 'write' (version 2) initiated successfully"
    rerun_id = answer.body["data"]["executionId"]
    assert rerun_id != source_id
    execution = wait_for_state(api, rerun_id, ENDED)
    assert execution["state"] == "COMPLETED", execution["error"]
    assert execution["workflowVersion"] == 2
    assert execution["rerunOf"] == {"executionId": source_id, "fromNode": "write"}
    assert execution["variables"]["write"]["answer"] == "echo: Write about echo: Research engines for kids"
    assert execution["variables"]["done"] is True

    # And the agent before the failed node was called once in all: the source's call is reused
    assert len([r for r in agents.requests if r.path == "/research"]) == 1
    assert len([r for r in agents.requests if r.path == "/fixed"]) == 1
    for node_id in ("prepare", "research"):
        reused, was = execution["nodeStates"][node_id], source["nodeStates"][node_id]
        assert reused["state"] == "COMPLETED" and reused["reused"] is True and reused["runs"] == 0
        assert (reused["startedAt"], reused["completedAt"], reused["output"]) == (
            was["startedAt"],
            was["completedAt"],
            was["output"],
        )
    for node_id in ("write", "finish"):
        assert execution["nodeStates"][node_id]["reused"] is False
        assert execution["nodeStates"][node_id]["runs"] == 1

    # And the events say so: the first group starts it as a rerun and reuses the two nodes
    happened = events(api, rerun_id)
    assert [e["type"] for e in happened[:3]] == ["execution.started", "node.reused", "node.reused"]
    assert happened[0]["rerunOf"] == {"executionId": source_id, "fromNode": "write"}
    assert [e["nodeId"] for e in happened[1:3]] == ["prepare", "research"]
    assert "write" not in happened[0]["variables"] and happened[0]["variables"]["subject"] == "engines for kids"
    assert any(line["message"].startswith("Node reused: ") for line in execution["logs"])

    # And the source is unchanged
    assert api.get(f"/api/workflows/execute/{source_id}").body["data"] == source
    assert events(api, source_id) == source_events
