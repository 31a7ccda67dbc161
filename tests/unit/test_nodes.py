"""Node types run directly (the lowest layer that can catch their bugs), against a real HTTP server."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from stepwise.models.agent import AgentRecord
from stepwise.nodes import REGISTRY
from stepwise.nodes.base import CallDefaults, NodeContext, NodeFailed, RetryPolicy
from tests.support.agent_server import AgentServer, Reply


@pytest.fixture
def server() -> Iterator[AgentServer]:
    with AgentServer() as running:
        yield running


def context(variables: dict[str, Any], agent: AgentRecord | None = None) -> tuple[NodeContext, list[str]]:
    lines: list[str] = []
    return (
        NodeContext(
            execution_id="exe_x",
            node_id="node",
            owner="alice",
            variables=variables,
            calls=CallDefaults(timeout_seconds=30, max_response_bytes=1_048_576, allow_private_endpoints=True),
            timeout_seconds=2,
            retry=RetryPolicy(maxAttempts=2, backoffSeconds=0),
            log=lambda level, message: lines.append(message),
            should_stop=lambda: False,
            load_agent=lambda agent_id: agent,
            read_secret=lambda ref: "secret",
        ),
        lines,
    )


def run(node_type: str, config: dict[str, Any], ctx: NodeContext) -> Any:
    kind = REGISTRY[node_type]
    return kind.run(kind.config_model.model_validate(config), ctx)


VARIABLES = {"o": {"k": 1}, "b": True, "z": None, "n": 2.5}


def agent_at(url: str, owner: str = "alice") -> AgentRecord:
    return AgentRecord(id="ag_x", owner=owner, name="a", endpoint=url, protocol="json", createdAt="t", updatedAt="t")


@pytest.mark.parametrize(("prompt", "sent"), [("${o}", '{"k":1}'), ("${b}", "true"), ("${z}", "null"), ("${n}", "2.5")])
def test_a_prompt_that_is_one_placeholder_is_sent_as_json_text(server: AgentServer, prompt: str, sent: str) -> None:
    server.script("/agent", Reply.echo_json())
    ctx, _ = context(VARIABLES, agent_at(server.url + "/agent"))

    run("agentTask", {"agentId": "ag_x", "prompt": prompt}, ctx)

    assert server.requests[0].json["prompt"] == sent


def test_an_agent_of_someone_else_is_refused(server: AgentServer) -> None:
    ctx, _ = context(VARIABLES, agent_at(server.url + "/agent", owner="mallory"))
    with pytest.raises(NodeFailed, match="belongs to someone else"):
        run("agentTask", {"agentId": "ag_x", "prompt": "hi"}, ctx)
    assert server.requests == []


def test_http_headers_render_placeholders_as_json_text(server: AgentServer) -> None:
    server.script("/h", Reply(json={}))
    ctx, _ = context(VARIABLES)

    run("httpRequest", {"url": server.url + "/h", "headers": {"X-B": "${b}", "X-O": "${o}"}}, ctx)

    assert server.requests[0].header("X-B") == "true"
    assert server.requests[0].header("X-O") == '{"k":1}'


def test_fail_on_error_false_keeps_a_5xx_answer_after_the_retries(server: AgentServer) -> None:
    server.script("/down", Reply(status=503, json={"error": "down"}))
    ctx, _ = context(VARIABLES)

    outcome = run("httpRequest", {"url": server.url + "/down", "failOnError": False}, ctx)

    assert outcome.output["status"] == 503
    assert len(server.requests) == 2


def test_fail_on_error_true_fails_on_a_5xx(server: AgentServer) -> None:
    server.script("/down", Reply(status=503, json={"error": "down"}))
    ctx, _ = context(VARIABLES)
    with pytest.raises(NodeFailed, match="503"):
        run("httpRequest", {"url": server.url + "/down?token=s3cret"}, ctx)


def test_http_errors_never_show_the_query_string(server: AgentServer) -> None:
    server.script("/nope", Reply(status=404, json={}))
    ctx, _ = context(VARIABLES)
    with pytest.raises(NodeFailed) as failure:
        run("httpRequest", {"url": server.url + "/nope?token=s3cret"}, ctx)
    assert "s3cret" not in str(failure.value)


def test_an_approval_shows_its_interpolated_message() -> None:
    ctx, lines = context({"draft": "v2 notes"})
    kind = REGISTRY["approval"]
    config = kind.config_model.model_validate({"message": "Publish ${draft}?"})

    kind.run(config, ctx)
    assert kind.finish is not None
    outcome = kind.finish(config, ctx, {"approvedBy": "alice", "approvedAt": "t"})

    assert any("Publish v2 notes?" in line for line in lines)
    assert outcome.output["message"] == "Publish v2 notes?"


@pytest.mark.parametrize(
    ("left", "right", "expected"),
    [({"a": 1}, "a", True), ({"a": 1}, ["a"], False), ([["x"]], ["x"], True), ("abc", "b", True)],
)
def test_contains_never_crashes_on_unhashable_values(left: Any, right: Any, expected: bool) -> None:
    ctx, _ = context({"l": left, "r": right})
    outcome = run("condition", {"left": "${l}", "op": "contains", "right": "${r}", "then": "a", "else": "b"}, ctx)
    assert outcome.output["result"] is expected
