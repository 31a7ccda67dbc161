"""Concurrency limits and the queue, through the API function and the real state machine (moto, in process).

An approval node is a run that lasts until the test resumes it, so each test decides when a slot frees. The
tests over real HTTP, with delay nodes and a soak, are in ``test_concurrency_local_stack.py``.
"""

from __future__ import annotations

from typing import Any

import boto3
import pytest

from tests.support.builders import wait_for_state, wait_until

# A run that holds its slot until the test cancels it (a Wait state in the state machine: RUNNING meanwhile).
RUNNING = {"id": "hold", "type": "delay", "config": {"seconds": 60}}
APPROVAL = {"id": "approve", "type": "approval", "config": {}}
DONE = {"id": "done", "type": "setVariables", "config": {"values": {"done": True}}}


def workflow(api: Any, concurrency: dict[str, Any] | None = None, nodes: list[dict[str, Any]] | None = None) -> str:
    definition: dict[str, Any] = {"name": "limited", "nodes": nodes or [RUNNING, DONE]}
    if concurrency is not None:
        definition["concurrency"] = concurrency
    answer = api.post("/api/workflows", json_body=definition)
    assert answer.status == 201, answer.body
    return str(answer.body["data"]["id"])


def start(api: Any, workflow_id: str) -> str:
    answer = api.post(f"/api/workflows/execute/{workflow_id}")
    assert answer.status == 202, answer.body
    return str(answer.body["data"]["executionId"])


def view(api: Any, execution_id: str) -> dict[str, Any]:
    return dict(api.get(f"/api/workflows/execute/{execution_id}").body["data"])


def event_types(api: Any, execution_id: str) -> list[str]:
    events = api.get(f"/api/workflows/execute/{execution_id}/events?limit=500").body["data"]["events"]
    return [event["type"] for event in events]


def events_of(api: Any, execution_id: str, kind: str) -> list[dict[str, Any]]:
    events = api.get(f"/api/workflows/execute/{execution_id}/events?limit=500").body["data"]["events"]
    return [event for event in events if event["type"] == kind]


def has_run(aws: Any, execution_id: str) -> bool:
    """Whether a Step Functions run exists for the execution."""
    sfn = boto3.client("stepfunctions")
    arn = aws.state_machine_arn.replace(":stateMachine:", ":execution:") + f":{execution_id}"
    try:
        sfn.describe_execution(executionArn=arn)
    except sfn.exceptions.ExecutionDoesNotExist:
        return False
    return True


def slots_and_queues(aws: Any) -> tuple[dict[str, dict[str, int]], list[str]]:
    """Every slot counter (running, queued) and every queue entry in the table."""
    table = boto3.resource("dynamodb").Table(aws.table_names["StepwiseTable"])
    items = table.scan()["Items"]
    counters = {
        str(item["PK"]): {"running": int(item.get("running", 0)), "queued": int(item.get("queued", 0))}
        for item in items
        if str(item["PK"]).startswith("SLOTS#")
    }
    entries = [str(item["executionId"]) for item in items if str(item["PK"]).startswith("QUEUE#")]
    return counters, entries


def all_free(aws: Any) -> bool:
    counters, entries = slots_and_queues(aws)
    return not entries and all(counter == {"running": 0, "queued": 0} for counter in counters.values())


def approve(api: Any, execution_id: str) -> dict[str, Any]:
    wait_for_state(api, execution_id, {"PAUSED"})
    answer = api.post(f"/api/workflows/execute/{execution_id}/resume")
    assert answer.status == 200, answer.body
    return dict(answer.body)


def cancel(api: Any, execution_id: str) -> None:
    assert api.delete(f"/api/workflows/execute/{execution_id}").status == 200


def test_a_start_over_the_workflows_limit_waits_queued_with_no_run_and_starts_when_a_slot_frees(
    api: Any, aws: Any
) -> None:
    workflow_id = workflow(api, {"limit": 1})
    first = start(api, workflow_id)

    second = start(api, workflow_id)

    waiting = view(api, second)
    assert (waiting["state"], waiting["queuePosition"], waiting["queueLimit"]) == ("PENDING", 1, "workflow")
    assert waiting["queuedAt"] == waiting["startedAt"]
    assert events_of(api, second, "execution.queued")[0] | {"at": None} == {
        "seq": 2,
        "type": "execution.queued",
        "at": None,
        "nodeId": None,
        "run": None,
        "limit": "workflow",
        "concurrency": 1,
    }
    assert not has_run(aws, second)
    cancel(api, first)
    running = wait_for_state(api, second, {"RUNNING"})
    assert (running["queuedAt"], running["queuePosition"], running["queueLimit"]) == (None, None, None)
    assert has_run(aws, second)
    cancel(api, second)
    wait_until(lambda: all_free(aws), message="every slot free")


def test_the_queued_run_starts_when_the_running_one_ends_and_the_log_says_how_long_it_waited(api: Any) -> None:
    workflow_id = workflow(api, {"limit": 1}, nodes=[{"id": "wait", "type": "delay", "config": {"seconds": 1}}])
    first = start(api, workflow_id)
    second = start(api, workflow_id)
    assert view(api, second)["state"] == "PENDING"

    assert wait_for_state(api, first, {"COMPLETED", "FAILED"})["state"] == "COMPLETED"
    assert wait_for_state(api, second, {"COMPLETED", "FAILED"})["state"] == "COMPLETED"
    types = event_types(api, second)
    assert types[:4] == ["execution.started", "execution.queued", "execution.dequeued", "execution.running"]
    waited = events_of(api, second, "execution.dequeued")[0]["waitedMs"]
    assert waited >= 500
    lines = [line["message"] for line in view(api, second)["logs"]][:3]
    assert lines == [
        "Waiting for a slot to start: the workflow's concurrency limit (1) is reached",
        f"A slot is free after {waited} ms of waiting",
        "Execution started",
    ]


def test_a_workflow_that_rejects_answers_429_with_the_envelope_and_retry_after(api: Any, aws: Any) -> None:
    workflow_id = workflow(api, {"limit": 1, "onLimit": "reject"})
    first = start(api, workflow_id)

    refused = api.post(f"/api/workflows/execute/{workflow_id}")

    assert refused.status == 429
    assert refused.headers["retry-after"] == "5"
    assert refused.body == {
        "success": False,
        "error": f"Workflow {workflow_id} is at its concurrency limit (1 running; onLimit: reject): start it "
        "again later",
    }
    assert [row["id"] for row in api.get(f"/api/workflows/{workflow_id}/executions").body["data"]] == [first]
    cancel(api, first)
    cancel(api, start(api, workflow_id))
    wait_until(lambda: all_free(aws), message="every slot free")


def test_a_queued_execution_canceled_never_runs_and_leaves_the_queue(api: Any, aws: Any) -> None:
    workflow_id = workflow(api, {"limit": 1})
    first = start(api, workflow_id)
    second, third = start(api, workflow_id), start(api, workflow_id)
    assert view(api, third)["queuePosition"] == 2

    cancel(api, second)

    canceled = view(api, second)
    assert (canceled["state"], canceled["queuedAt"], canceled["queuePosition"]) == ("CANCELED", None, None)
    assert event_types(api, second) == [
        "execution.started",
        "execution.queued",
        "node.skipped",
        "node.skipped",
        "execution.canceled",
    ]
    assert view(api, third)["queuePosition"] == 1
    cancel(api, first)
    wait_for_state(api, third, {"RUNNING"})
    assert not has_run(aws, second)
    assert view(api, second)["state"] == "CANCELED"
    cancel(api, third)
    wait_until(lambda: all_free(aws), message="every slot free")


def test_the_owner_wide_limit_queues_whatever_the_workflow(api: Any, aws: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from stepwise import wiring

    monkeypatch.setenv("OWNER_CONCURRENCY_LIMIT", "2")
    wiring.reset()
    one, other = workflow(api), workflow(api, {"limit": 5, "onLimit": "reject"})
    runs = [start(api, one), start(api, other)]
    for execution_id in runs:
        wait_for_state(api, execution_id, {"RUNNING"})

    over = start(api, other)

    waiting = view(api, over)
    assert (waiting["state"], waiting["queueLimit"], waiting["queuePosition"]) == ("PENDING", "owner", 1)
    rows = api.get("/api/executions?state=PENDING").body["data"]
    assert [(row["id"], row["queueLimit"], row["queuePosition"]) for row in rows] == [(over, "owner", 1)]
    assert events_of(api, over, "execution.queued")[0]["limit"] == "owner"
    # The workflow rejects over its own limit, not over its owner's: a start behind a waiting run of it waits too.
    behind = start(api, other)
    assert (view(api, behind)["queueLimit"], view(api, behind)["queuePosition"]) == ("owner", 2)
    cancel(api, runs[0])
    assert wait_for_state(api, over, {"RUNNING"})["queuedAt"] is None
    assert view(api, behind)["queuePosition"] == 1
    for execution_id in (runs[1], over, behind):
        cancel(api, execution_id)
    wait_until(lambda: all_free(aws), message="every slot free")


def test_a_paused_run_gives_its_slot_back_and_its_resume_waits_for_one(api: Any, aws: Any) -> None:
    workflow_id = workflow(
        api, {"limit": 1}, nodes=[APPROVAL, {"id": "wait", "type": "delay", "config": {"seconds": 2}}]
    )
    paused = start(api, workflow_id)
    wait_for_state(api, paused, {"PAUSED"})
    # An approval that waits holds no slot: another run starts meanwhile (and waits for its own approval).
    other = start(api, workflow_id)
    wait_for_state(api, other, {"PAUSED"})
    assert approve(api, other)["message"] == f"Execution {other} approved and resumed"
    wait_for_state(api, other, {"RUNNING"})

    waiting = api.post(f"/api/workflows/execute/{paused}/resume")

    assert waiting.status == 200
    assert waiting.body["message"] == (
        f"Execution {paused} waits for a slot of its workflow's concurrency limit to resume (position 1); it "
        "resumes by itself when a run ends"
    )
    still = view(api, paused)
    assert (still["state"], still["queuePosition"], still["queueLimit"]) == ("PAUSED", 1, "workflow")
    assert api.post(f"/api/workflows/execute/{paused}/resume").status == 409
    assert wait_for_state(api, other, {"COMPLETED", "FAILED"})["state"] == "COMPLETED"
    done = wait_for_state(api, paused, {"COMPLETED", "FAILED"})
    assert done["state"] == "COMPLETED", done["error"]
    assert done["nodeStates"]["approve"]["output"]["approvedBy"] == "alice"
    queued = events_of(api, paused, "execution.queued")[-1]
    assert (queued["limit"], queued["by"]["sub"], queued["nodeId"]) == ("workflow", "alice", "approve")
    types = event_types(api, paused)
    assert types[types.index("execution.queued") :][:3] == [
        "execution.queued",
        "execution.dequeued",
        "execution.resumed",
    ]
    # The other run ended before this one resumed: never both at once.
    other_end = events_of(api, other, "execution.completed")[0]["at"]
    assert events_of(api, paused, "execution.resumed")[0]["at"] >= other_end
    wait_until(lambda: all_free(aws), message="every slot free")


def test_a_resume_over_a_limit_that_rejects_is_a_429(api: Any) -> None:
    workflow_id = workflow(api, {"limit": 1, "onLimit": "reject"}, nodes=[APPROVAL, RUNNING])
    paused = start(api, workflow_id)
    wait_for_state(api, paused, {"PAUSED"})
    running = start(api, workflow_id)
    approve(api, running)

    refused = api.post(f"/api/workflows/execute/{paused}/resume")

    assert (refused.status, refused.headers["retry-after"]) == (429, "5")
    assert refused.body["error"].endswith("resume it later")
    assert view(api, paused)["state"] == "PAUSED"
    cancel(api, running)
    assert approve(api, paused)["message"] == f"Execution {paused} approved and resumed"
    cancel(api, paused)


def test_a_run_that_fails_outside_the_loop_gives_its_slot_to_the_next(api: Any, aws: Any) -> None:
    from stepwise import wiring
    from stepwise.service import runner

    workflow_id = workflow(api, {"limit": 1})
    first = start(api, workflow_id)
    second = start(api, workflow_id)
    assert view(api, second)["state"] == "PENDING"

    # What the EventBridge rule hands the node runner when a run times out, say.
    runner.fail(wiring.node_runner().store, first, {"Error": "StepFunctions.TIMED_OUT", "Cause": "timed out"})

    assert view(api, first)["state"] == "FAILED"
    assert wait_for_state(api, second, {"RUNNING"})["queuedAt"] is None
    cancel(api, second)
    wait_until(lambda: all_free(aws), message="every slot free")


@pytest.mark.parametrize(
    ("concurrency", "message"),
    [
        ({"limit": 0}, "concurrency.limit: Input should be greater than or equal to 1"),
        ({"limit": 1001}, "concurrency.limit: Input should be less than or equal to 1000"),
        ({"limit": 2, "onLimit": "drop"}, "concurrency.onLimit: Input should be 'queue' or 'reject'"),
        ({"limit": 2, "queue": True}, "concurrency.queue: Extra inputs are not permitted"),
    ],
)
def test_a_concurrency_limit_out_of_range_is_a_400_naming_the_field(
    api: Any, concurrency: dict[str, Any], message: str
) -> None:
    answer = api.post("/api/workflows", json_body={"name": "x", "nodes": [DONE], "concurrency": concurrency})

    assert (answer.status, answer.body["error"]) == (400, message)


def test_a_scheduled_tick_over_a_limit_that_rejects_is_skipped(api: Any) -> None:
    from stepwise import wiring
    from stepwise.models.schedule import ScheduleDelivery
    from stepwise.service import schedules

    workflow_id = workflow(api, {"limit": 1, "onLimit": "reject"})
    start(api, workflow_id)
    created = api.post(f"/api/workflows/{workflow_id}/schedules", json_body={"expression": "rate(5 minutes)"})
    schedule_id = created.body["data"]["id"]
    wired = wiring.scheduler()

    result = schedules.fire(
        wired.store,
        wired.runs,
        wired.schedule_group,
        ScheduleDelivery(workflowId=workflow_id, scheduleId=schedule_id, scheduledTime="2030-01-01T00:00:00Z"),
    )

    assert (result.outcome, result.reason) == (
        "skipped",
        f"Workflow {workflow_id} is at its concurrency limit (1 running; onLimit: reject): start it again later",
    )


def test_a_resume_step_functions_did_not_take_gives_back_the_slot_it_took(
    api: Any, aws: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from botocore.exceptions import ClientError

    from stepwise import aws as clients

    workflow_id = workflow(api, {"limit": 1, "onLimit": "reject"}, nodes=[APPROVAL, RUNNING])
    paused = start(api, workflow_id)
    wait_for_state(api, paused, {"PAUSED"})
    client = clients.stepfunctions()
    real_send = client.send_task_success

    def throttled(**kwargs: Any) -> Any:
        monkeypatch.setattr(client, "send_task_success", real_send)
        raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"}}, "SendTaskSuccess")

    monkeypatch.setattr(client, "send_task_success", throttled)

    # The resume takes the workflow's one slot, then Step Functions throttles it: 503, and the slot is free again
    assert api.post(f"/api/workflows/execute/{paused}/resume").status == 503
    assert view(api, paused)["state"] == "PAUSED"
    other = start(api, workflow_id)
    assert view(api, other)["state"] in ("PENDING", "RUNNING", "PAUSED")  # not a 429: the slot was given back
    wait_for_state(api, other, {"PAUSED"})
    # and the first one resumes later like any paused run
    assert approve(api, paused)["message"] == f"Execution {paused} approved and resumed"
    cancel(api, paused)
    cancel(api, other)
    wait_until(lambda: all_free(aws), message="every slot free")
