"""The node runner's own rules, tested one layer down (the runner called directly, not through the ASL)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.agent_server import AgentServer, Reply
from tests.support.builders import pending_execution


@pytest.fixture
def agent_server() -> Iterator[AgentServer]:
    with AgentServer() as server:
        yield server


def test_a_call_that_outlasts_the_runners_time_fails_the_node_cleanly(
    api: Any, agent_server: AgentServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from stepwise import wiring
    from stepwise.service import runner

    agent_server.script("/agent", Reply.hang(10))
    agent = api.post("/api/agents", json_body={"name": "slow", "endpoint": agent_server.url + "/agent"}).body["data"]
    execution_id = pending_execution(
        api,
        monkeypatch,
        {"name": "t", "nodes": [{"id": "ask", "type": "agentTask", "config": {"agentId": agent["id"], "prompt": "x"}}]},
    )
    wired = wiring.node_runner()
    runner.start(wired.store, execution_id)
    clock = iter([60_000, 60_000, 5_000, 5_000, 5_000])

    answer = runner.step(wired.store, wired.step_limits, execution_id, time_left_ms=lambda: next(clock))

    assert answer["status"] == "failed"
    execution = api.get(f"/api/workflows/execute/{execution_id}").body["data"]
    assert execution["state"] == "FAILED"
    assert "ran out of time" in execution["error"]


def test_a_step_for_an_ended_execution_does_nothing(api: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    execution_id = pending_execution(
        api, monkeypatch, {"name": "t", "nodes": [{"id": "a", "type": "setVariables", "config": {"values": {"x": 1}}}]}
    )
    api.delete(f"/api/workflows/execute/{execution_id}")
    runner, step_limits, store = _runner_parts()

    assert runner.start(store, execution_id)["status"] == "ended"
    assert runner.step(store, step_limits, execution_id)["status"] == "ended"
    assert runner.fail(store, execution_id, {"Error": "Boom", "Cause": "late"})["status"] == "ended"

    execution = api.get(f"/api/workflows/execute/{execution_id}").body["data"]
    assert execution["state"] == "CANCELED"
    assert execution["error"] is None
    assert execution["nodeStates"]["a"]["state"] == "SKIPPED"


def _runner_parts() -> tuple[Any, Any, Any]:
    """The runner module, with what the node runner's handler hands it: the limits of a step and the store."""
    from stepwise import wiring
    from stepwise.service import runner

    wired = wiring.node_runner()
    return runner, wired.step_limits, wired.store


APPROVAL = {
    "name": "approve",
    "nodes": [
        {"id": "review", "type": "approval", "config": {"timeoutSeconds": 60}},
        {"id": "ship", "type": "setVariables", "config": {"values": {"shipped": True}}},
    ],
}


def test_a_retried_step_does_not_approve_an_approval_nobody_gave(api: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    runner, step_limits, store = _runner_parts()
    execution_id = pending_execution(api, monkeypatch, APPROVAL)
    runner.start(store, execution_id)
    assert runner.step(store, step_limits, execution_id) == {"status": "approval", "seconds": 0, "timeoutSeconds": 60}

    # When Step Functions retries the step (the first answer was lost), the approval is still awaited
    again = runner.step(store, step_limits, execution_id)

    assert again["status"] == "approval"
    execution = api.get(f"/api/workflows/execute/{execution_id}").body["data"]
    assert execution["nodeStates"]["review"]["state"] == "RUNNING"
    assert "shipped" not in execution["variables"]


def test_a_retried_step_during_a_delay_waits_out_the_rest(api: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    runner, step_limits, store = _runner_parts()
    definition = {"name": "d", "nodes": [{"id": "wait", "type": "delay", "config": {"seconds": 120}}]}
    execution_id = pending_execution(api, monkeypatch, definition)
    runner.start(store, execution_id)
    assert runner.step(store, step_limits, execution_id)["status"] == "delay"

    again = runner.step(store, step_limits, execution_id)

    assert again["status"] == "delay"
    assert 110 <= again["seconds"] <= 120
    assert api.get(f"/api/workflows/execute/{execution_id}").body["data"]["nodeStates"]["wait"]["state"] == "RUNNING"


def test_an_approval_timeout_after_a_resume_keeps_the_approval(api: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from stepwise import stepfunctions

    runner, step_limits, store = _runner_parts()
    execution_id = pending_execution(api, monkeypatch, APPROVAL)
    runner.start(store, execution_id)
    runner.step(store, step_limits, execution_id)
    resumed: list[str] = []
    monkeypatch.setattr(stepfunctions, "resume", lambda token, output: resumed.append(token) or False)
    runner.pause(store, execution_id, "token-1")
    assert api.get(f"/api/workflows/execute/{execution_id}").body["data"]["state"] == "PAUSED"

    # When the resume lands just as the approval times out
    assert api.post(f"/api/workflows/execute/{execution_id}/resume").status == 200
    answer = runner.approval_timeout(store, execution_id)

    # Then the approval stands and the run goes on to completion (the approval and 'ship' in one step)
    assert answer["status"] == "continue"
    assert runner.step(store, step_limits, execution_id)["status"] == "done"
    execution = api.get(f"/api/workflows/execute/{execution_id}").body["data"]
    assert execution["state"] == "COMPLETED"
    assert execution["nodeStates"]["review"]["output"]["approvedBy"] == "alice"


def test_a_pause_withdrawn_before_it_parks_is_not_lost(api: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from stepwise import stepfunctions

    runner, step_limits, store = _runner_parts()
    definition = {"name": "p", "nodes": [{"id": "a", "type": "setVariables", "config": {"values": {"x": 1}}}]}
    execution_id = pending_execution(api, monkeypatch, definition)
    runner.start(store, execution_id)
    assert api.post(f"/api/workflows/execute/{execution_id}/pause").status == 200
    assert runner.step(store, step_limits, execution_id)["status"] == "pause"
    resumed: list[str] = []
    monkeypatch.setattr(stepfunctions, "resume", lambda token, output: resumed.append(token) or True)

    # When the user resumes before the pause task has parked
    assert api.post(f"/api/workflows/execute/{execution_id}/resume").status == 200
    runner.pause(store, execution_id, "token-1")

    # Then the pause task releases itself and the execution is not PAUSED
    assert resumed == ["token-1"]
    assert api.get(f"/api/workflows/execute/{execution_id}").body["data"]["state"] == "RUNNING"
    assert runner.step(store, step_limits, execution_id)["status"] == "done"


def test_a_retried_pause_task_keeps_the_newest_token(api: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    runner, step_limits, store = _runner_parts()
    execution_id = pending_execution(api, monkeypatch, APPROVAL)
    runner.start(store, execution_id)
    runner.step(store, step_limits, execution_id)
    runner.pause(store, execution_id, "token-1")

    runner.pause(store, execution_id, "token-2")

    record = store.get_execution(execution_id)
    assert record.state == "PAUSED"
    assert record.taskToken == "token-2"
    # and a step that comes again parks it again, with what is left of the approval's timeout
    again = runner.step(store, step_limits, execution_id)
    assert again["status"] == "approval"
    assert 1 <= again["timeoutSeconds"] <= 60


def test_a_node_that_raises_unexpectedly_fails_by_name(api: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import dataclasses

    from stepwise import nodes

    def broken(config: Any, context: Any) -> Any:
        raise ZeroDivisionError("division by zero")

    monkeypatch.setitem(nodes.REGISTRY, "setVariables", dataclasses.replace(nodes.REGISTRY["setVariables"], run=broken))
    runner, step_limits, store = _runner_parts()
    definition = {"name": "b", "nodes": [{"id": "calc", "type": "setVariables", "config": {"values": {"x": 1}}}]}
    execution_id = pending_execution(api, monkeypatch, definition)
    runner.start(store, execution_id)

    assert runner.step(store, step_limits, execution_id)["status"] == "failed"

    execution = api.get(f"/api/workflows/execute/{execution_id}").body["data"]
    assert (
        execution["error"] == "Node 'calc' (setVariables) failed: unexpected error: ZeroDivisionError: division by zero"
    )
    assert execution["nodeStates"]["calc"]["state"] == "FAILED"


def test_a_step_whose_run_was_taken_over_drops_its_result_and_carries_on_from_the_record(
    api: Any, agent_server: AgentServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner, step_limits, store = _runner_parts()
    agent_server.script("/agent", Reply(json={"n": 1}))
    agent = api.post("/api/agents", json_body={"name": "a", "endpoint": agent_server.url + "/agent"}).body["data"]
    definition = {
        "name": "r",
        "nodes": [
            {"id": "ask", "type": "agentTask", "config": {"agentId": agent["id"], "prompt": "x"}},
            {"id": "after", "type": "setVariables", "config": {"values": {"y": 2}}},
        ],
    }
    execution_id = pending_execution(api, monkeypatch, definition)
    runner.start(store, execution_id)
    # Given another invocation of the same step took the node run over while this one ran it
    from stepwise.service.history import event

    original_commit = store.commit

    def taken_over(execution_id: str, after: Any, events: Any, control: Any, **kwargs: Any) -> Any:
        if any(each.type == "node.completed" for each in events):
            monkeypatch.setattr(store, "commit", original_commit)
            active = after.control.activeNode
            again = event(
                "node.started", nodeId="ask", run=active.run, claim="other", claimUntil="2999-01-01T00:00:00Z"
            )
            original_commit(execution_id, after, [again], after.control.after([again]))
        return original_commit(execution_id, after, events, control, **kwargs)

    monkeypatch.setattr(store, "commit", taken_over)

    answer = runner.step(store, step_limits, execution_id)

    # Then it records nothing (the run is the other invocation's now) and the loop goes on from the record
    assert answer["status"] == "continue"
    execution = api.get(f"/api/workflows/execute/{execution_id}").body["data"]
    assert execution["state"] == "RUNNING"
    assert execution["nodeStates"]["ask"]["state"] == "RUNNING"
    assert "ask" not in execution["variables"]
    events = api.get(f"/api/workflows/execute/{execution_id}/events").body["data"]["events"]
    assert [e["type"] for e in events if e.get("nodeId") == "ask"] == ["node.started", "node.started"]


def test_a_repeated_start_of_a_pending_execution_starts_it(api: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from stepwise import stepfunctions, wiring
    from stepwise.identity import Caller
    from stepwise.service import executions, workflows

    _, _, store = _runner_parts()
    execution_id = pending_execution(
        api, monkeypatch, {"name": "s", "nodes": [{"id": "a", "type": "setVariables", "config": {"values": {"x": 1}}}]}
    )
    started: list[str] = []
    monkeypatch.setattr(stepfunctions, "start", lambda arn, name: started.append(name))
    workflow = workflows.get(store, Caller("alice"), store.get_execution(execution_id).workflowId)

    again = executions.launch(
        store, wiring.api().runs, workflow, {}, owner="alice", started_by="alice", execution_id=execution_id
    )

    assert again == execution_id
    assert started == [execution_id]


def test_a_run_that_would_outgrow_the_state_machines_history_fails_saying_so(
    api: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner, step_limits, store = _runner_parts()
    monkeypatch.setattr(runner, "MAX_STEPS", 2)
    waits = [{"id": f"wait{i}", "type": "delay", "config": {"seconds": 0}} for i in range(3)]
    execution_id = pending_execution(api, monkeypatch, {"name": "h", "nodes": waits})
    # Given two steps taken (each ran up to a node that waits: one round of the state machine each)
    assert runner.step(store, step_limits, execution_id)["status"] == "delay"
    assert runner.step(store, step_limits, execution_id)["status"] == "delay"

    # When the third step would start another node
    assert runner.step(store, step_limits, execution_id)["status"] == "failed"

    # Then the run fails at that node, naming the limit; the wait before it finished in the same step
    execution = api.get(f"/api/workflows/execute/{execution_id}").body["data"]
    assert execution["error"].startswith("Node 'wait2' (delay) failed: history limit reached: 2 steps")
    assert [execution["nodeStates"][f"wait{i}"]["state"] for i in range(3)] == ["COMPLETED", "COMPLETED", "FAILED"]
