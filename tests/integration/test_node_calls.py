"""agentTask and httpRequest nodes run directly (the lowest layer that can catch their bugs), against a real
HTTP server on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from stepwise.models.agent import AgentRecord
from stepwise.nodes.base import NodeFailed
from tests.support.agent_server import AgentServer, Reply
from tests.support.nodes import node_context, run_node


@pytest.fixture
def server() -> Iterator[AgentServer]:
    with AgentServer() as running:
        yield running


VARIABLES = {"o": {"k": 1}, "b": True, "z": None, "n": 2.5}


def agent_at(url: str, owner: str = "alice") -> AgentRecord:
    return AgentRecord(id="ag_x", owner=owner, name="a", endpoint=url, protocol="json", createdAt="t", updatedAt="t")


@pytest.mark.parametrize(("prompt", "sent"), [("${o}", '{"k":1}'), ("${b}", "true"), ("${z}", "null"), ("${n}", "2.5")])
def test_a_prompt_that_is_one_placeholder_is_sent_as_json_text(server: AgentServer, prompt: str, sent: str) -> None:
    server.script("/agent", Reply.echo_json())
    ctx, _ = node_context(VARIABLES, agent_at(server.url + "/agent"))

    run_node("agentTask", {"agentId": "ag_x", "prompt": prompt}, ctx)

    assert server.requests[0].json["prompt"] == sent


def test_an_agent_of_someone_else_is_refused(server: AgentServer) -> None:
    ctx, _ = node_context(VARIABLES, agent_at(server.url + "/agent", owner="mallory"))
    with pytest.raises(NodeFailed, match="belongs to someone else"):
        run_node("agentTask", {"agentId": "ag_x", "prompt": "hi"}, ctx)
    assert server.requests == []


def test_http_headers_render_placeholders_as_json_text(server: AgentServer) -> None:
    server.script("/h", Reply(json={}))
    ctx, _ = node_context(VARIABLES)

    run_node("httpRequest", {"url": server.url + "/h", "headers": {"X-B": "${b}", "X-O": "${o}"}}, ctx)

    assert server.requests[0].header("X-B") == "true"
    assert server.requests[0].header("X-O") == '{"k":1}'


def test_fail_on_error_false_keeps_a_5xx_answer_after_the_retries(server: AgentServer) -> None:
    server.script("/down", Reply(status=503, json={"error": "down"}))
    ctx, _ = node_context(VARIABLES)

    outcome = run_node("httpRequest", {"url": server.url + "/down", "failOnError": False}, ctx)

    assert outcome.output["status"] == 503
    assert len(server.requests) == 2


def test_fail_on_error_true_fails_on_a_5xx(server: AgentServer) -> None:
    server.script("/down", Reply(status=503, json={"error": "down"}))
    ctx, _ = node_context(VARIABLES)
    with pytest.raises(NodeFailed, match="503"):
        run_node("httpRequest", {"url": server.url + "/down?token=s3cret"}, ctx)


def test_http_errors_never_show_the_query_string(server: AgentServer) -> None:
    server.script("/nope", Reply(status=404, json={}))
    ctx, _ = node_context(VARIABLES)
    with pytest.raises(NodeFailed) as failure:
        run_node("httpRequest", {"url": server.url + "/nope?token=s3cret"}, ctx)
    assert "s3cret" not in str(failure.value)


# --- Idempotency-Key: <executionId>:<nodeId>:<run> on every call out ----------------------------------------


def test_every_attempt_of_an_agent_call_carries_the_node_runs_idempotency_key(server: AgentServer) -> None:
    # Given an agent that fails once (a retried attempt) and whose definition sets a key of its own
    server.script("/agent", Reply(status=503, json={}), Reply(json={"ok": True}))
    agent = agent_at(server.url + "/agent").model_copy(update={"headers": {"idempotency-key": "fixed"}})
    ctx, _ = node_context(VARIABLES, agent)

    run_node("agentTask", {"agentId": "ag_x", "prompt": "hi"}, ctx)

    # Then both attempts carried the node run's key, not the agent's fixed one (which would make every run one call)
    assert [request.header("Idempotency-Key") for request in server.requests] == ["exe_x:node:1", "exe_x:node:1"]


def test_an_http_request_carries_the_node_runs_key_unless_its_author_set_one(server: AgentServer) -> None:
    server.script("/h", Reply(status=500, json={}), Reply(json={}))
    ctx, _ = node_context(VARIABLES)

    run_node("httpRequest", {"url": server.url + "/h"}, ctx)
    run_node("httpRequest", {"url": server.url + "/h", "headers": {"IDEMPOTENCY-KEY": "order-${n}"}}, ctx)

    keys = [request.header("Idempotency-Key") for request in server.requests]
    assert keys == ["exe_x:node:1", "exe_x:node:1", "order-2.5"]
