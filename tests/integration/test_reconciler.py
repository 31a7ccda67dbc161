"""Nothing stuck: the reconciler restarts (or fails, saying why) every execution in flight whose run is gone.

Over the real ASL on moto: a restarted execution is driven to its end by a new Step Functions run, through the
real node runner. ``reconcile`` is called directly with a ``now`` past its grace period (a pass of the schedule).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from tests.support.agent_server import AgentServer, Reply
from tests.support.builders import pending_execution, simple_workflow, wait_for_state

PAST_GRACE = timedelta(seconds=200)


@pytest.fixture
def agent_server() -> Iterator[AgentServer]:
    with AgentServer() as server:
        yield server


def reconcile(later: timedelta = PAST_GRACE) -> Any:
    """One pass of the reconciler, as if it ran ``later`` than now."""
    from stepwise import wiring
    from stepwise.clock import now
    from stepwise.service.reconciler import reconcile as reconcile_pass

    wired = wiring.reconciler()
    return reconcile_pass(wired.store, wired.reconciling, now=now() + later)


def events_of(api: Any, execution_id: str) -> list[dict[str, Any]]:
    return list(api.get(f"/api/workflows/execute/{execution_id}/events").body["data"]["events"])


def crash_next_start(monkeypatch: pytest.MonkeyPatch) -> None:
    """The next StartExecution never happens: the function that was to call it dies just before."""
    from stepwise import stepfunctions

    real_start = stepfunctions.start

    def crash(arn: str, name: str) -> None:
        monkeypatch.setattr(stepfunctions, "start", real_start)
        raise RuntimeError("the function died here")

    monkeypatch.setattr(stepfunctions, "start", crash)


def test_a_pending_execution_whose_start_died_is_restarted_after_the_grace_period_and_completes(
    api: Any, aws: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import boto3

    from stepwise.stepfunctions import execution_arn

    # Given a start that died between the execution's record and StartExecution
    workflow = api.post("/api/workflows", json_body=simple_workflow()).body["data"]
    crash_next_start(monkeypatch)
    assert api.post(f"/api/workflows/execute/{workflow['id']}").status == 500
    (pending,) = api.get(f"/api/workflows/{workflow['id']}/executions").body["data"]
    execution_id = pending["id"]

    # When the reconciler passes within the grace period, Then it leaves it alone (a start may be in progress)
    assert reconcile(timedelta(seconds=5)).restarted == []

    # When it passes after the grace period
    done = reconcile()

    # Then it restarts it as a new run, says why in the execution's log, and the run completes
    assert done.restarted == [execution_id]
    execution = wait_for_state(api, execution_id, {"COMPLETED", "FAILED"})
    assert execution["state"] == "COMPLETED", execution["error"]
    assert execution["output"] == {"greeting": "Hello world"}
    (restarted,) = [event for event in events_of(api, execution_id) if event["type"] == "execution.restarted"]
    assert restarted["runName"] == f"{execution_id}-1"
    assert (
        restarted["message"] == f"its Step Functions run {execution_id} does not exist while the execution was PENDING"
    )
    assert any(line["message"].startswith("Execution restarted as Step Functions run") for line in execution["logs"])
    sfn = boto3.client("stepfunctions", region_name=aws.region)
    assert sfn.describe_execution(executionArn=execution_arn(aws.state_machine_arn, f"{execution_id}-1"))
    # and a later pass leaves the ended execution alone
    assert reconcile(timedelta(seconds=400)).examined == 0


def test_a_start_step_functions_throttled_is_answered_202_stays_pending_and_the_reconciler_starts_it(
    api: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from stepwise import stepfunctions
    from stepwise.service.executions import START_DELAYED

    # Given a start whose StartExecution Step Functions throttles (after the client's own retries)
    workflow = api.post("/api/workflows", json_body=simple_workflow()).body["data"]
    real_start = stepfunctions.start

    def throttled(arn: str, name: str) -> None:
        monkeypatch.setattr(stepfunctions, "start", real_start)
        raise stepfunctions.StartDelayed("ThrottlingException: Rate exceeded")

    monkeypatch.setattr(stepfunctions, "start", throttled)

    # When it is started
    answer = api.post(f"/api/workflows/execute/{workflow['id']}")

    # Then it is accepted, not failed: PENDING, its log saying why it waits
    assert answer.status == 202, answer.body
    execution_id = answer.body["data"]["executionId"]
    execution = api.get(f"/api/workflows/execute/{execution_id}").body["data"]
    assert execution["state"] == "PENDING"
    assert [line["message"] for line in execution["logs"] if line["level"] == "warning"] == [START_DELAYED]
    # and the reconciler starts it once its grace period is over, and it completes
    assert reconcile().restarted == [execution_id]
    execution = wait_for_state(api, execution_id, {"COMPLETED", "FAILED"})
    assert execution["state"] == "COMPLETED", execution["error"]


def test_a_run_lost_with_an_agent_call_in_flight_is_restarted_and_calls_again_as_the_same_run(
    api: Any, agent_server: AgentServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from stepwise import stepfunctions, wiring
    from stepwise.clock import iso, now
    from stepwise.service import runner
    from stepwise.service.history import event

    agent_server.script("/agent", Reply(json={"answer": 42}))
    agent = api.post("/api/agents", json_body={"name": "a", "endpoint": agent_server.url + "/agent"}).body["data"]
    definition = {
        "name": "lost",
        "nodes": [
            {"id": "prep", "type": "setVariables", "config": {"values": {"x": 1}}},
            {"id": "ask", "type": "agentTask", "config": {"agentId": agent["id"], "prompt": "x"}},
        ],
    }
    real_start = stepfunctions.start
    execution_id = pending_execution(api, monkeypatch, definition)
    monkeypatch.setattr(stepfunctions, "start", real_start)
    # Given its run ran the first node, claimed the agent node, and was lost with the invocation calling out
    store = wiring.node_runner().store
    runner.start(store, execution_id)
    # (its Lambda time short after the first node, so the step hands back before the agent node)
    limits = wiring.node_runner().step_limits
    assert runner.step(store, limits, execution_id, time_left_ms=lambda: 0)["status"] == "continue"
    tail = store.tail(execution_id)
    claim = event("node.started", nodeId="ask", run=2, claim="dead", claimUntil=iso(now() - timedelta(seconds=1)))
    store.commit(execution_id, tail, [claim], tail.control.after([claim]))

    # When the reconciler passes
    assert reconcile().restarted == [execution_id]

    # Then the new run calls the agent again for the same node run (same Idempotency-Key); the first node is not run again
    execution = wait_for_state(api, execution_id, {"COMPLETED", "FAILED"})
    assert execution["state"] == "COMPLETED", execution["error"]
    assert [request.header("Idempotency-Key") for request in agent_server.requests] == [f"{execution_id}:ask:2"]
    runs = [(e["type"], e["nodeId"], e["run"]) for e in events_of(api, execution_id) if e["type"].startswith("node.")]
    assert runs == [
        ("node.started", "prep", 1),
        ("node.completed", "prep", 1),
        ("node.started", "ask", 2),
        ("node.started", "ask", 2),
        ("node.completed", "ask", 2),
    ]


def test_a_paused_execution_whose_run_is_gone_parks_again_and_can_be_resumed(
    api: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from stepwise import stepfunctions, wiring
    from stepwise.service import runner

    definition = {
        "name": "approve",
        "nodes": [
            {"id": "review", "type": "approval", "config": {"timeoutSeconds": 3600}},
            {"id": "ship", "type": "setVariables", "config": {"values": {"shipped": True}}},
        ],
    }
    real_start = stepfunctions.start
    execution_id = pending_execution(api, monkeypatch, definition)
    monkeypatch.setattr(stepfunctions, "start", real_start)
    # Given an execution PAUSED at an approval whose run is gone (its token answers nothing)
    wired = wiring.node_runner()
    runner.start(wired.store, execution_id)
    assert runner.step(wired.store, wired.step_limits, execution_id)["status"] == "approval"
    runner.pause(wired.store, execution_id, "a-token-nothing-waits-on")

    # When the reconciler passes, Then a new run parks it again on a token of its own
    assert reconcile().restarted == [execution_id]
    from tests.support.builders import wait_until

    wait_until(lambda: wired.store.get_execution(execution_id).taskToken != "a-token-nothing-waits-on")
    # and a resume approves it, and it completes
    assert api.post(f"/api/workflows/execute/{execution_id}/resume").status == 200
    execution = wait_for_state(api, execution_id, {"COMPLETED", "FAILED"})
    assert execution["state"] == "COMPLETED", execution["error"]
    assert execution["nodeStates"]["review"]["output"]["approvedBy"] == "alice"


def test_a_run_that_failed_where_its_failure_could_not_be_recorded_is_restarted(
    api: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from stepwise.service import runner

    # Given a run whose step raised, and whose failure path could not record it either (the store was down)
    real_step, real_fail = runner.step, runner.fail

    def down(*args: Any, **kwargs: Any) -> Any:
        monkeypatch.setattr(runner, "step", real_step)
        raise RuntimeError("DynamoDB is down")

    def down_too(*args: Any, **kwargs: Any) -> Any:
        monkeypatch.setattr(runner, "fail", real_fail)
        raise RuntimeError("DynamoDB is still down")

    monkeypatch.setattr(runner, "step", down)
    monkeypatch.setattr(runner, "fail", down_too)
    workflow = api.post("/api/workflows", json_body=simple_workflow()).body["data"]
    execution_id = api.post(f"/api/workflows/execute/{workflow['id']}").body["data"]["executionId"]
    from tests.support.builders import wait_until

    wait_until(lambda: runner.fail is real_fail, message="the run to fail")
    # (its first step, which marks it RUNNING, never got to)
    assert api.get(f"/api/workflows/execute/{execution_id}").body["data"]["state"] == "PENDING"

    # When the reconciler passes (the run ended FAILED, the execution is still PENDING)
    assert reconcile().restarted == [execution_id]

    # Then the new run goes on from the log and completes
    execution = wait_for_state(api, execution_id, {"COMPLETED", "FAILED"})
    assert execution["state"] == "COMPLETED", execution["error"]
    (restarted,) = [event for event in events_of(api, execution_id) if event["type"] == "execution.restarted"]
    assert restarted["message"] == f"its Step Functions run {execution_id} ended FAILED while the execution was PENDING"


@pytest.mark.parametrize(
    ("status", "max_restarts", "why"),
    [
        ("ABORTED", 5, "ended ABORTED while the execution was RUNNING; someone stopped it outside stepwise"),
        (None, 0, "does not exist while the execution was RUNNING; it was restarted 0 times already"),
    ],
)
def test_an_execution_that_cannot_be_restarted_is_failed_with_the_reason(
    api: Any, monkeypatch: pytest.MonkeyPatch, status: str | None, max_restarts: int, why: str
) -> None:
    from stepwise import stepfunctions, wiring
    from stepwise.service import reconciler, runner

    execution_id = pending_execution(api, monkeypatch, simple_workflow())
    runner.start(wiring.node_runner().store, execution_id)
    monkeypatch.setattr(stepfunctions, "status", lambda arn, name: status)
    monkeypatch.setattr(reconciler, "MAX_RESTARTS", max_restarts)

    assert reconcile().failed == [execution_id]

    execution = api.get(f"/api/workflows/execute/{execution_id}").body["data"]
    assert execution["state"] == "FAILED"
    assert execution["error"] == f"Execution failed: Stepwise.RunLost: its Step Functions run {execution_id} {why}"
    assert execution["nodeStates"]["greet"]["state"] == "SKIPPED"


def test_an_execution_that_ends_while_the_reconciler_looks_at_it_is_never_touched(
    api: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from stepwise import stepfunctions, wiring
    from stepwise.service import runner

    execution_id = pending_execution(api, monkeypatch, simple_workflow())
    runner.start(wiring.node_runner().store, execution_id)

    # Given the owner cancels it while the reconciler asks Step Functions about its run
    def canceled_meanwhile(arn: str, name: str) -> None:
        assert api.delete(f"/api/workflows/execute/{execution_id}").status == 200

    monkeypatch.setattr(stepfunctions, "status", canceled_meanwhile)
    before = events_of(api, execution_id)

    # When the reconciler passes, Then the execution stays CANCELED: nothing is appended after its end
    done = reconcile()
    assert (done.restarted, done.failed) == ([], [])
    after = events_of(api, execution_id)
    assert after[-1]["type"] == "execution.canceled"
    assert [e["type"] for e in after if e["seq"] > before[-1]["seq"]][-1] == "execution.canceled"


def test_the_backstop_for_a_run_the_reconciler_replaced_changes_nothing(
    api: Any, aws: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from stepwise import stepfunctions
    from stepwise.local.lambda_routing import LocalLambdaContext
    from stepwise.local.template import load_template

    # Given a PENDING execution the reconciler restarted (its new run not started yet)
    execution_id = pending_execution(api, monkeypatch, simple_workflow())
    monkeypatch.setattr(stepfunctions, "start", lambda arn, name: None)
    assert reconcile().restarted == [execution_id]
    # and the rule's event for a run that ended, as the template's InputTransformer renders it
    rule = load_template(aws.project_dir)["Resources"]["NodeRunnerFunction"]["Properties"]["Events"]["ExecutionEnded"]
    template = rule["Properties"]["InputTransformer"]["InputTemplate"]
    handler = aws.handler_for(aws.function_names["NodeRunnerFunction"])

    def run_ended(name: str) -> Any:
        event = json.loads(template.replace("<name>", json.dumps(name)).replace("<status>", "ABORTED"))
        context = LocalLambdaContext("node-runner", "arn:aws:lambda:us-east-1:123456789012:function:n", 512, 330)
        return handler(event, context)

    # When the old run's end arrives, Then nothing changes; When the current run's does, Then it is FAILED
    assert run_ended(execution_id)["status"] == "ended"
    assert api.get(f"/api/workflows/execute/{execution_id}").body["data"]["state"] == "PENDING"
    assert run_ended(f"{execution_id}-1")["status"] == "failed"
    execution = api.get(f"/api/workflows/execute/{execution_id}").body["data"]
    assert execution["error"] == "Execution failed: StepFunctions.ABORTED: the Step Functions run ended ABORTED"


def test_executions_in_flight_written_before_the_state_index_are_indexed_by_the_migration(
    api: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from stepwise import wiring
    from stepwise.service import runner
    from stepwise.store.migrations import index_everything

    store = wiring.node_runner().store
    # Given a RUNNING and a CANCELED execution written by an older stack (no GSI3 key)
    running = pending_execution(api, monkeypatch, simple_workflow())
    runner.start(store, running)
    canceled = pending_execution(api, monkeypatch, simple_workflow())
    api.delete(f"/api/workflows/execute/{canceled}")
    for execution_id in (running, canceled):
        store.client.update_item(
            TableName=store.table,
            Key={"PK": {"S": f"EXECUTION#{execution_id}"}, "SK": {"S": "EXECUTION"}},
            UpdateExpression="REMOVE GSI3PK, GSI3SK",
        )
    assert list(store.unfinished("RUNNING")) == []

    # When the migration runs (twice: the second finds nothing to do)
    first, again = index_everything(store), index_everything(store)

    # Then the reconciler finds the one in flight, and only it
    assert (first.in_flight, again.in_flight) == (1, 0)
    assert [list(store.unfinished(state)) for state in ("PENDING", "RUNNING", "PAUSED")] == [[], [running], []]


def test_the_local_stacks_clock_runs_the_reconciler_every_few_seconds(
    aws: Any, api: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from stepwise.local.reconcile_clock import ReconcileClock

    # Given a start that died before its run started
    workflow = api.post("/api/workflows", json_body=simple_workflow()).body["data"]
    crash_next_start(monkeypatch)
    assert api.post(f"/api/workflows/execute/{workflow['id']}").status == 500
    (pending,) = api.get(f"/api/workflows/{workflow['id']}/executions").body["data"]

    # When the local stack's reconciler clock runs (with no grace, so the test needs not wait it out)
    with ReconcileClock.for_deployment(aws, grace_seconds=0.0).running(interval=0.2):
        execution = wait_for_state(api, pending["id"], {"COMPLETED", "FAILED"})

    # Then the execution was restarted and completed on its own
    assert execution["state"] == "COMPLETED", execution["error"]
