"""Rerun over real HTTP end to end: ``stepwise dev`` as a subprocess (the ``stack`` fixture), its API called with
real tokens and by the CLI, agents answering from a server on 127.0.0.1."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from tests.support.agent_server import AgentServer, Reply
from tests.support.local_stack import Stack

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def agents() -> Iterator[AgentServer]:
    with AgentServer() as server:
        yield server


def created(stack: Stack, token: str, path: str, body: dict[str, Any]) -> str:
    answer = stack.call("POST", path, token, json=body)
    assert answer.status_code == 201, answer.text
    return str(answer.json()["data"]["id"])


def agent_task(node_id: str, agent_id: str, prompt: str) -> dict[str, Any]:
    return {
        "id": node_id,
        "type": "agentTask",
        "config": {"agentId": agent_id, "prompt": prompt},
        "retry": {"maxAttempts": 1, "backoffSeconds": 0},
    }


def article(research: str, writer: str) -> dict[str, Any]:
    return {
        "name": "article",
        "variables": {"topic": "engines"},
        "nodes": [
            {"id": "prepare", "type": "setVariables", "config": {"values": {"subject": "${topic} for kids"}}},
            agent_task("research", research, "Research ${subject}"),
            agent_task("write", writer, "Write about ${research.answer}"),
        ],
    }


def start(stack: Stack, token: str, workflow_id: str) -> str:
    answer = stack.call("POST", f"/api/workflows/execute/{workflow_id}", token, json={})
    assert answer.status_code == 202, answer.text
    return str(answer.json()["data"]["executionId"])


def test_a_run_failed_at_its_third_node_is_fixed_with_a_put_and_rerun_by_the_cli_on_the_latest_version(
    stack: Stack, agents: AgentServer
) -> None:
    # Given a run that fails at its third node: its agent answers 500
    token = stack.token("rerunner")
    agents.script("/research", Reply.echo_json())
    agents.script("/broken", Reply(status=500, json={"error": "down"}))
    agents.script("/fixed", Reply.echo_json())
    research = created(stack, token, "/api/agents", {"name": "research", "endpoint": agents.url + "/research"})
    broken = created(stack, token, "/api/agents", {"name": "broken", "endpoint": agents.url + "/broken"})
    workflow_id = created(stack, token, "/api/workflows", article(research, broken))
    source_id = start(stack, token, workflow_id)
    source = stack.wait_for_end(source_id, token)
    assert source["state"] == "FAILED" and "'write'" in source["error"]

    # And the workflow is fixed with a PUT
    fixed = created(stack, token, "/api/agents", {"name": "fixed", "endpoint": agents.url + "/fixed"})
    put = stack.call("PUT", f"/api/workflows/{workflow_id}", token, json=article(research, fixed))
    assert put.status_code == 200, put.text

    # When the CLI reruns it on the latest version and watches it
    result = stack.cli("execution", "rerun", source_id, "--latest", "--watch", token=token)

    # Then the rerun completed: the output is printed, and the nodes before the failed one were reused
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout)["write"]["answer"] == "echo: Write about echo: Research engines for kids"
    assert f", a rerun of {source_id}" in result.stderr
    assert "node research [agentTask] COMPLETED" in result.stderr and "reused" in result.stderr
    # And the agent before the failed node received exactly one call in all
    assert len([r for r in agents.requests if r.path == "/research"]) == 1
    assert len([r for r in agents.requests if r.path == "/fixed"]) == 1
    reruns = [row for row in stack.call("GET", "/api/executions", token).json()["data"] if row["rerunOf"]]
    assert [row["rerunOf"] for row in reruns] == [{"executionId": source_id, "fromNode": "write"}]
    assert reruns[0]["workflowVersion"] == 2 and reruns[0]["state"] == "COMPLETED"
    # And the source is as it was
    assert stack.call("GET", f"/api/workflows/execute/{source_id}", token).json()["data"] == source


def test_a_completed_run_is_rerun_from_its_middle_with_a_patched_variable(stack: Stack) -> None:
    token = stack.token("patcher")
    workflow_id = created(
        stack,
        token,
        "/api/workflows",
        {
            "name": "chain",
            "variables": {"name": "Ada"},
            "nodes": [
                {"id": "a", "type": "setVariables", "config": {"values": {"x": 1}}},
                {"id": "b", "type": "setVariables", "config": {"values": {"y": "${x}-${name}"}}},
                {"id": "c", "type": "setVariables", "config": {"values": {"z": "${y}!"}}},
            ],
        },
    )
    source_id = start(stack, token, workflow_id)
    assert stack.wait_for_end(source_id, token)["state"] == "COMPLETED"

    result = stack.cli("execution", "rerun", source_id, "--from", "b", "--var", "name=Bob", token=token)

    assert result.returncode == 0, result.stderr
    execution = stack.wait_for_end(result.stdout.strip(), token)
    assert execution["state"] == "COMPLETED", execution["error"]
    assert execution["variables"] == {"name": "Bob", "x": 1, "y": "1-Bob", "z": "1-Bob!"}
    assert [execution["nodeStates"][node]["reused"] for node in "abc"] == [True, False, False]


def test_what_a_rerun_is_refused_over_http_and_an_idempotency_key_reused(stack: Stack, agents: AgentServer) -> None:
    token, other = stack.token("owner"), stack.token("someone-else")
    agents.script("/slow", Reply(delay=30, json={"late": True}))
    slow_agent = created(stack, token, "/api/agents", {"name": "slow", "endpoint": agents.url + "/slow"})
    slow = created(stack, token, "/api/workflows", {"name": "slow", "nodes": [agent_task("ask", slow_agent, "hi")]})
    running_id = start(stack, token, slow)

    # 409 while it runs
    answer = stack.call("POST", f"/api/workflows/execute/{running_id}/rerun", token, json={})
    assert answer.status_code == 409, answer.text
    assert "only a COMPLETED, FAILED or CANCELED execution can be rerun" in answer.json()["error"]

    # Canceled while its node ran: the rerun begins at that node by default
    assert stack.call("DELETE", f"/api/workflows/execute/{running_id}", token).status_code == 200
    assert stack.wait_for_end(running_id, token)["state"] == "CANCELED"
    path = f"/api/workflows/execute/{running_id}/rerun"

    # 403 for someone else, 404 for an unknown id, 400 for a node not in the workflow
    assert stack.call("POST", path, other, json={}).status_code == 403
    unknown = stack.call("POST", "/api/workflows/execute/exe_01JAAAAAAAAAAAAAAAAAAAAAAA/rerun", token, json={})
    assert (unknown.status_code, unknown.json()["success"]) == (404, False)
    bad = stack.call("POST", path, token, json={"fromNode": "nowhere"})
    assert bad.status_code == 400 and "node 'nowhere' is not in version 1" in bad.json()["error"]

    # The same Idempotency-Key twice: one rerun
    headers = {"authorization": f"Bearer {token}", "idempotency-key": "again"}
    first, second = (requests.post(stack.url + path, json={}, headers=headers, timeout=15) for _ in range(2))
    assert first.status_code == second.status_code == 202, first.text
    assert first.json() == second.json()
    assert "from node 'ask'" in first.json()["message"]
    rerun_id = first.json()["data"]["executionId"]
    assert stack.call("DELETE", f"/api/workflows/execute/{rerun_id}", token).status_code == 200
    reruns = [row for row in stack.call("GET", "/api/executions", token).json()["data"] if row["rerunOf"]]
    assert [row["id"] for row in reruns] == [rerun_id]
