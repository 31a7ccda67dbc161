"""A DynamoDB call that AWS refuses for now (throttled) fails nothing for good.

In a node step it is no failure of the node or the execution: the step is run again by the state machine (the node
runner raises ``TransientAwsError``, which the ASL retries); a node run that calls out is let go at once by the
invocation that stops, so the next step takes it over without waiting for its claim to lapse; a throttled look for
a cancel, or a throttled log flush, while the call waits changes nothing. In the API it is a 503 with
``Retry-After``, and a start whose record was written is listed. Each throttle is one refused call, raised where
the store makes it (nothing written).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.support.agent_server import AgentServer, Reply
from tests.support.builders import pending_execution, simple_workflow, wait_for_state

REFUSED = "DynamoDB: Rate exceeded (refused by the test)"


@pytest.fixture
def agent_server() -> Iterator[AgentServer]:
    with AgentServer() as server:
        yield server


def refuse_once(monkeypatch: pytest.MonkeyPatch, cls: Any, method: str, when: Callable[..., bool]) -> list[Any]:
    """``cls.method`` refused as throttled the first time ``when(*args)`` holds (before it writes anything); the
    arguments of the refused call are returned in the list."""
    from stepwise.store import Throttled

    real = getattr(cls, method)
    refused: list[Any] = []

    def maybe_refused(self: Any, *args: Any, **kwargs: Any) -> Any:
        if not refused and when(*args):
            refused.append(args)
            raise Throttled(REFUSED, "ProvisionedThroughputExceededException")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(cls, method, maybe_refused)
    return refused


def completing(node_id: str) -> Callable[..., bool]:
    """A commit of the group that records ``node_id``'s completion."""
    return lambda execution_id, after, events, *rest: any(
        event.type == "node.completed" and event.nodeId == node_id for event in events
    )


def events_of(api: Any, execution_id: str) -> list[dict[str, Any]]:
    return list(api.get(f"/api/workflows/execute/{execution_id}/events?limit=500").body["data"]["events"])


def test_a_throttled_write_in_a_step_is_run_again_by_the_state_machine_and_the_execution_completes(
    api: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from stepwise.store.executions import ExecutionStore

    # Given a workflow, and the node runner's write of its node's completion throttled once
    workflow = api.post("/api/workflows", json_body=simple_workflow()).body["data"]
    refused = refuse_once(monkeypatch, ExecutionStore, "commit", completing("greet"))

    # When it runs (the real state machine and node runner)
    started = api.post(f"/api/workflows/execute/{workflow['id']}").body["data"]
    execution = wait_for_state(api, started["executionId"], {"COMPLETED", "FAILED"})

    # Then the step was run again, and the execution completed with its node run once
    assert refused, "the throttle was never met"
    assert execution["state"] == "COMPLETED", execution["error"]
    assert execution["nodeStates"]["greet"]["runs"] == 1
    completed = [event for event in events_of(api, started["executionId"]) if event["type"] == "node.completed"]
    assert len(completed) == 1


def test_the_node_runner_names_a_throttled_call_so_the_state_machine_retries_it(
    aws: Any, api: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from stepwise.local.lambda_routing import LocalLambdaContext
    from stepwise.store.history import HistoryStore

    # Given a running execution, and the next read of its log throttled
    execution_id = pending_execution(api, monkeypatch, simple_workflow())
    name = aws.function_names["NodeRunnerFunction"]
    handler = aws.handler_for(name)
    context = LocalLambdaContext(name, f"arn:aws:lambda:us-east-1:123456789012:function:{name}", 512, 330)
    assert handler({"action": "start", "executionId": execution_id}, context)["status"] == "continue"
    refuse_once(monkeypatch, HistoryStore, "tail", lambda *args: True)

    # When Step Functions invokes the step
    with pytest.raises(Exception, match="refused by the test") as raised:
        handler({"action": "step", "executionId": execution_id}, context)

    # Then it fails with the error the ASL's Retry names (Lambda reports the class name as errorType), saying why
    assert type(raised.value).__name__ == "TransientAwsError"
    # and the retried step goes on
    assert handler({"action": "step", "executionId": execution_id, "retryCount": 1}, context)["status"] == "done"


def test_a_node_run_whose_recording_was_throttled_is_let_go_and_taken_over_at_once_with_the_same_key(
    api: Any, agent_server: AgentServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from stepwise import wiring
    from stepwise.aws import TransientError
    from stepwise.service import claims, runner
    from stepwise.store.executions import ExecutionStore

    agent_server.script("/agent", Reply(json={"answer": 42}))
    agent = api.post("/api/agents", json_body={"name": "a", "endpoint": agent_server.url + "/agent"}).body["data"]
    ask = {"id": "ask", "type": "agentTask", "config": {"agentId": agent["id"], "prompt": "x"}}
    execution_id = pending_execution(api, monkeypatch, {"name": "t", "nodes": [ask]})
    wired = wiring.node_runner()
    runner.start(wired.store, execution_id)

    # Given a step that called the agent, whose write of the node's completion is throttled (and its first try to
    # let the run go too)
    refuse_once(monkeypatch, ExecutionStore, "commit", completing("ask"))
    releases = refuse_once(
        monkeypatch,
        ExecutionStore,
        "commit",
        lambda execution_id, after, events, *rest: getattr(events[0], "message", None) == claims.RELEASED,
    )
    with pytest.raises(TransientError):
        runner.step(wired.store, wired.step_limits, execution_id, lambda: 300_000)

    # When Step Functions runs the step again
    began = time.monotonic()
    answer = runner.step(wired.store, wired.step_limits, execution_id, lambda: 300_000, retried=True)

    # Then it took the node run over at once (the claim was let go, not left to lapse in minutes), calling the agent
    # again with the same Idempotency-Key, and the run completed once
    assert releases
    assert time.monotonic() - began < 2
    assert answer["status"] == "done"
    keys = [request.header("Idempotency-Key") for request in agent_server.requests]
    assert keys == [f"{execution_id}:ask:1"] * 2
    events = events_of(api, execution_id)
    assert [event["message"] for event in events if event["type"] == "log" and event["level"] == "warning"] == [
        claims.RELEASED,
        claims.TAKEN_OVER,
    ]
    assert [event["run"] for event in events if event["type"] == "node.completed"] == [1]
    assert api.get(f"/api/workflows/execute/{execution_id}").body["data"]["state"] == "COMPLETED"


def test_a_throttled_look_for_a_cancel_or_log_flush_while_the_call_waits_changes_nothing(
    api: Any, agent_server: AgentServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from stepwise import wiring
    from stepwise.service import runner
    from stepwise.store.executions import ExecutionStore
    from stepwise.store.history import HistoryStore

    agent_server.script("/agent", Reply(json={"answer": 42}, delay=2.2))
    agent = api.post("/api/agents", json_body={"name": "a", "endpoint": agent_server.url + "/agent"}).body["data"]
    ask = {"id": "ask", "type": "agentTask", "config": {"agentId": agent["id"], "prompt": "x"}}
    execution_id = pending_execution(api, monkeypatch, {"name": "t", "nodes": [ask]})
    wired = wiring.node_runner()
    runner.start(wired.store, execution_id)

    # Given, while the agent takes its time, one look at the log throttled, and one flush of the call's log lines
    looks = refuse_once(monkeypatch, HistoryStore, "tail", lambda *args: bool(agent_server.requests))
    flushes = refuse_once(
        monkeypatch, ExecutionStore, "commit", lambda execution_id, after, events, *rest: events[0].type == "log"
    )

    # When the step runs
    answer = runner.step(wired.store, wired.step_limits, execution_id, lambda: 300_000)

    # Then the call was made once and its answer recorded, and every line of its log is there once
    assert looks and flushes
    assert answer["status"] == "done"
    assert len(agent_server.requests) == 1
    events = events_of(api, execution_id)
    lines = [event["message"] for event in events if event["type"] == "log"]
    assert lines and len(lines) == len(set(lines)), lines
    assert {event.message for event in flushes[0][2]} <= set(lines)  # the lines refused once came with a later group


def test_the_api_answers_a_throttled_call_with_503_and_retry_after(api: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from stepwise.store.table import Table

    workflow = api.post("/api/workflows", json_body=simple_workflow()).body["data"]
    refuse_once(monkeypatch, Table, "get", lambda *args: True)

    answer = api.get(f"/api/workflows/{workflow['id']}")

    assert answer.status == 503, answer.body
    assert answer.headers["retry-after"] == "1"
    assert answer.body == {
        "success": False,
        "error": "The service is busy (AWS refused a call for now); try again in a moment",
    }
    assert api.get(f"/api/workflows/{workflow['id']}").status == 200


def test_a_start_whose_item_was_refused_once_is_written_again_and_listed(
    api: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from stepwise.store.executions import ExecutionStore

    # Given the first write of a new execution's item throttled (its log's first group went in)
    workflow = api.post("/api/workflows", json_body=simple_workflow()).body["data"]
    refused = refuse_once(monkeypatch, ExecutionStore, "project", lambda execution_id, group, *rest: group.first == 1)

    # When it is started
    answer = api.post(f"/api/workflows/execute/{workflow['id']}")

    # Then it is accepted and listed: the item was written again
    assert refused
    assert answer.status == 202, answer.body
    listed = api.get(f"/api/workflows/{workflow['id']}/executions").body["data"]
    assert [row["id"] for row in listed] == [answer.body["data"]["executionId"]]


def test_a_pause_task_run_again_after_a_throttled_write_keeps_its_token_whatever_a_reader_repaired_meanwhile(
    api: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from stepwise import wiring
    from stepwise.aws import TransientError
    from stepwise.service import runner
    from stepwise.store import Throttled
    from stepwise.store.executions import ExecutionStore

    approve = {"id": "approve", "type": "approval", "config": {}}
    execution_id = pending_execution(api, monkeypatch, {"name": "t", "nodes": [approve]})
    wired = wiring.node_runner()
    store = wired.store
    runner.start(store, execution_id)
    assert runner.step(store, wired.step_limits, execution_id)["status"] == "pause"
    real_project, real_keep = ExecutionStore.project, ExecutionStore.keep_task_token

    # Given the pause task's write of its token throttled (its PAUSED group went in, the item's projection did not)
    def refused_with_token(self: Any, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("task_token"):
            raise Throttled(REFUSED, "ProvisionedThroughputExceededException")
        return real_project(self, *args, **kwargs)

    monkeypatch.setattr(ExecutionStore, "project", refused_with_token)
    with pytest.raises(TransientError):
        runner.pause(store, execution_id, "token-1")

    # When the task is run again with a new token, while a reader (a GET, a resume) repairs the item, without the
    # token, right after each of its writes
    def repaired_after(real: Any) -> Any:
        def write(self: Any, *args: Any, **kwargs: Any) -> Any:
            done = real(self, *args, **kwargs)
            real_project(self, execution_id, self.tail(execution_id))
            return done

        return write

    monkeypatch.setattr(ExecutionStore, "project", repaired_after(real_project))
    monkeypatch.setattr(ExecutionStore, "keep_task_token", repaired_after(real_keep))
    runner.pause(store, execution_id, "token-2")

    # Then the item holds the token the state machine waits on, and the execution shows PAUSED
    record = store.get_execution(execution_id)
    assert record is not None
    assert (record.state, record.taskToken) == ("PAUSED", "token-2")


def test_a_pause_keeps_its_token_when_a_reader_projected_the_pause_first(
    api: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from stepwise import wiring
    from stepwise.service import runner
    from stepwise.store.history import HistoryStore

    approve = {"id": "approve", "type": "approval", "config": {}}
    execution_id = pending_execution(api, monkeypatch, {"name": "t", "nodes": [approve]})
    wired = wiring.node_runner()
    store = wired.store
    runner.start(store, execution_id)
    assert runner.step(store, wired.step_limits, execution_id)["status"] == "pause"

    # Given a reader (a GET) that projects the newest group, which has no token, just after the pause appended it
    real_append = HistoryStore.append

    def read_at_once(self: Any, *args: Any, **kwargs: Any) -> Any:
        group = real_append(self, *args, **kwargs)
        self.project(execution_id, group)
        return group

    monkeypatch.setattr(HistoryStore, "append", read_at_once)

    # When the pause task records the pause
    runner.pause(store, execution_id, "token-1")

    # Then the item holds its token all the same (a resume finds it)
    record = store.get_execution(execution_id)
    assert record is not None
    assert (record.state, record.taskToken) == ("PAUSED", "token-1")
