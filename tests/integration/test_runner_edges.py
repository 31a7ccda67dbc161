"""The node runner's own rules, tested one layer down (the runner called directly, not through the ASL)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.agent_server import AgentServer, Reply


@pytest.fixture
def agent_server() -> Iterator[AgentServer]:
    with AgentServer() as server:
        yield server


def _pending_execution(api: Any, monkeypatch: pytest.MonkeyPatch, definition: dict[str, Any]) -> str:
    from stepwise import stepfunctions

    # The state machine is not started: the test drives the runner itself.
    monkeypatch.setattr(stepfunctions, "start", lambda arn, execution_id: None)
    workflow = api.post("/api/workflows", json_body=definition).body["data"]
    return str(api.post(f"/api/workflows/execute/{workflow['id']}").body["data"]["executionId"])


def test_a_call_that_outlasts_the_runners_time_fails_the_node_cleanly(
    api: Any, agent_server: AgentServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from stepwise.service import runner
    from stepwise.settings import get_settings
    from stepwise.store import Store

    agent_server.script("/agent", Reply.hang(10))
    agent = api.post("/api/agents", json_body={"name": "slow", "endpoint": agent_server.url + "/agent"}).body["data"]
    execution_id = _pending_execution(
        api,
        monkeypatch,
        {"name": "t", "nodes": [{"id": "ask", "type": "agentTask", "config": {"agentId": agent["id"], "prompt": "x"}}]},
    )
    store = Store(get_settings().table_name)
    runner.start(store, execution_id)
    clock = iter([60_000, 60_000, 5_000, 5_000, 5_000])

    answer = runner.step(store, get_settings(), execution_id, time_left_ms=lambda: next(clock))

    assert answer["status"] == "failed"
    execution = api.get(f"/api/workflows/execute/{execution_id}").body["data"]
    assert execution["state"] == "FAILED"
    assert "ran out of time" in execution["error"]


def test_a_step_for_an_ended_execution_does_nothing(api: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from stepwise.service import runner
    from stepwise.settings import get_settings
    from stepwise.store import Store

    execution_id = _pending_execution(
        api, monkeypatch, {"name": "t", "nodes": [{"id": "a", "type": "setVariables", "config": {"values": {"x": 1}}}]}
    )
    api.delete(f"/api/workflows/execute/{execution_id}")
    store = Store(get_settings().table_name)

    assert runner.start(store, execution_id)["status"] == "ended"
    assert runner.step(store, get_settings(), execution_id)["status"] == "ended"
    assert runner.fail(store, execution_id, {"Error": "Boom", "Cause": "late"})["status"] == "ended"

    execution = api.get(f"/api/workflows/execute/{execution_id}").body["data"]
    assert execution["state"] == "CANCELED"
    assert execution["error"] is None
    assert execution["nodeStates"]["a"]["state"] == "SKIPPED"
