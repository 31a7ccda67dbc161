"""Nothing twice: a node that calls out is called once per node run, whatever Step Functions retries.

The node runner is called directly (the lowest layer that catches it), from threads standing in for two
invocations of the same step: the one Step Functions lost track of, still running, and its retry.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.agent_server import AgentServer, Reply
from tests.support.builders import pending_execution


@pytest.fixture
def agent_server() -> Iterator[AgentServer]:
    with AgentServer() as server:
        yield server


def _parts() -> tuple[Any, Any, Any]:
    from stepwise import wiring
    from stepwise.service import runner

    wired = wiring.node_runner()
    return runner, wired.step_limits, wired.store


def _workflow(api: Any, agent_server: AgentServer, **node: Any) -> dict[str, Any]:
    agent = api.post("/api/agents", json_body={"name": "a", "endpoint": agent_server.url + "/agent"}).body["data"]
    return {
        "name": "twice",
        "nodes": [
            {"id": "ask", "type": "agentTask", "config": {"agentId": agent["id"], "prompt": "x"}, **node},
            {"id": "after", "type": "setVariables", "config": {"values": {"done": True}}},
        ],
    }


def test_a_step_retried_while_the_first_invocation_calls_out_does_not_call_again(
    api: Any, agent_server: AgentServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner, step_limits, store = _parts()
    agent_server.script("/agent", Reply(json={"answer": 42}, delay=1.5))
    execution_id = pending_execution(api, monkeypatch, _workflow(api, agent_server))
    runner.start(store, execution_id)

    # Given the first invocation of a step, calling the agent (Step Functions lost track of it and retries)
    first: list[Any] = []
    thread = threading.Thread(target=lambda: first.append(runner.step(store, step_limits, execution_id)))
    thread.start()
    agent_server.wait_for_requests(1)

    # When the retried invocation of the same step runs meanwhile
    retried = runner.step(store, step_limits, execution_id, lambda: 300_000, retried=True)
    thread.join()

    # Then it did not call the agent a second time: it waited for the node run, then went on from the log
    assert len(agent_server.requests) == 1
    assert retried["status"] == "done"
    execution = api.get(f"/api/workflows/execute/{execution_id}").body["data"]
    assert execution["state"] == "COMPLETED"
    assert execution["variables"]["ask"] == {"answer": 42}
    assert execution["nodeStates"]["ask"]["state"] == "COMPLETED"
    events = api.get(f"/api/workflows/execute/{execution_id}/events").body["data"]["events"]
    completed = [(e["nodeId"], e["run"]) for e in events if e["type"] == "node.completed"]
    assert completed == [("ask", 1), ("after", 2)]


def test_a_run_whose_invocation_stopped_answering_is_taken_over_and_the_first_stops_calling_within_a_second(
    api: Any, agent_server: AgentServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from stepwise.service import claims

    runner, step_limits, store = _parts()
    # The first attempt hangs (then the first invocation would retry); the retried invocation's call answers
    agent_server.script("/agent", Reply.hang(3), Reply(json={"answer": 42}))
    definition = _workflow(api, agent_server, timeoutSeconds=2, retry={"maxAttempts": 3, "backoffSeconds": 0})
    execution_id = pending_execution(api, monkeypatch, definition)
    runner.start(store, execution_id)

    # Given a first invocation whose claim lapses after a second (as if its time were up: its deadline)
    real_claim = claims.new_claim
    monkeypatch.setattr(claims, "new_claim", lambda time_left_ms: real_claim(lambda: -4_000))
    first: list[Any] = []
    first_ended: list[float] = []

    def first_invocation() -> None:
        first.append(runner.step(store, step_limits, execution_id, lambda: 300_000))
        first_ended.append(time.monotonic())

    thread = threading.Thread(target=first_invocation)
    thread.start()
    agent_server.wait_for_requests(1)
    monkeypatch.setattr(claims, "new_claim", real_claim)
    time.sleep(1.2)

    # When a retried invocation of the step comes after the claim lapsed
    taken_over_at = time.monotonic()
    retried = runner.step(store, step_limits, execution_id, lambda: 300_000, retried=True)
    thread.join(timeout=10)

    # Then it runs the same node run again, with the same Idempotency-Key, and the run completes once
    assert retried["status"] == "continue"
    assert runner.step(store, step_limits, execution_id)["status"] == "done"
    time.sleep(2.5)  # past the first attempt's timeout: a first invocation still calling would retry now
    requests = agent_server.requests
    assert len(requests) == 2
    assert {request.header("Idempotency-Key") for request in requests} == {f"{execution_id}:ask:1"}
    # and the superseded invocation stopped within a second of the takeover, its result dropped
    assert first_ended[0] - taken_over_at < 1.5
    events = api.get(f"/api/workflows/execute/{execution_id}/events").body["data"]["events"]
    ask = [e for e in events if e.get("nodeId") == "ask" and e["type"].startswith("node.")]
    assert [(e["type"], e["run"]) for e in ask] == [("node.started", 1), ("node.started", 1), ("node.completed", 1)]
    assert ask[1]["startedAt"] == ask[0]["at"]  # the run keeps the time it first started
    assert not any(e["type"] == "node.failed" for e in events)
    execution = api.get(f"/api/workflows/execute/{execution_id}").body["data"]
    assert execution["state"] == "COMPLETED"
    assert execution["nodeStates"]["ask"]["startedAt"] == ask[0]["at"]
    assert any("started again" in line["message"] for line in execution["logs"])
