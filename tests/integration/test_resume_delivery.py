"""Nothing stuck on resume: a resume counts once Step Functions took it, and the state machine records it too.

A resume completes the task the paused run waits on (SendTaskSuccess) before it is recorded: one Step Functions
did not take leaves the execution PAUSED and resumable (503), one no task waits for any more is refused (409),
never a 200. Over the real ASL on moto where the state machine matters; the runner called directly where the
order of two writers is the point.
"""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.support.builders import pending_execution, wait_for_state

APPROVAL = {
    "name": "approve",
    "nodes": [
        {"id": "review", "type": "approval", "config": {"message": "ship it?"}},
        {"id": "ship", "type": "setVariables", "config": {"values": {"shipped": True}}},
    ],
}


def _started(api: Any) -> str:
    workflow = api.post("/api/workflows", json_body=APPROVAL).body["data"]
    return str(api.post(f"/api/workflows/execute/{workflow['id']}").body["data"]["executionId"])


def _parts() -> tuple[Any, Any, Any]:
    from stepwise import wiring
    from stepwise.service import runner

    wired = wiring.node_runner()
    return runner, wired.step_limits, wired.store


def _paused_at_the_approval(api: Any, monkeypatch: pytest.MonkeyPatch, task_token: str) -> str:
    """An execution the runner took to its approval, parked on ``task_token`` (no state machine run drives it)."""
    runner, step_limits, store = _parts()
    execution_id = pending_execution(api, monkeypatch, APPROVAL)
    runner.start(store, execution_id)
    assert runner.step(store, step_limits, execution_id)["status"] == "pause"
    runner.pause(store, execution_id, task_token)
    return execution_id


def test_a_resume_step_functions_throttles_is_a_503_and_a_second_resume_works(
    api: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from stepwise import aws

    execution_id = _started(api)
    assert wait_for_state(api, execution_id, {"PAUSED"})["state"] == "PAUSED"
    # Given Step Functions throttles the first SendTaskSuccess (after the SDK's own retries)
    client = aws.stepfunctions()
    real_send = client.send_task_success

    def throttled(**kwargs: Any) -> Any:
        monkeypatch.setattr(client, "send_task_success", real_send)
        raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"}}, "SendTaskSuccess")

    monkeypatch.setattr(client, "send_task_success", throttled)

    # When the owner resumes
    first = api.post(f"/api/workflows/execute/{execution_id}/resume")

    # Then the API says so (no 500, no 200), and the execution is still PAUSED: nothing was recorded
    assert first.status == 503
    assert "did not take the resume" in first.body["error"]
    assert api.get(f"/api/workflows/execute/{execution_id}").body["data"]["state"] == "PAUSED"
    # and a second resume works, and the run goes on to the end
    second = api.post(f"/api/workflows/execute/{execution_id}/resume")
    assert second.status == 200, second.body
    assert second.body["message"] == f"Execution {execution_id} approved and resumed"
    execution = wait_for_state(api, execution_id, {"COMPLETED", "FAILED"})
    assert execution["state"] == "COMPLETED", execution["error"]
    assert execution["nodeStates"]["review"]["output"]["approvedBy"] == "alice"


@pytest.mark.parametrize(
    ("code", "said"),
    [("TaskTimedOut", "its approval timed out"), ("TaskDoesNotExist", "no longer waits for a resume")],
)
def test_a_resume_no_task_waits_for_is_refused_and_changes_nothing(
    api: Any, monkeypatch: pytest.MonkeyPatch, code: str, said: str
) -> None:
    from stepwise import stepfunctions
    from stepwise.service import pausing

    monkeypatch.setattr(pausing, "TOKEN_WAIT_SECONDS", 0.2)
    execution_id = _paused_at_the_approval(api, monkeypatch, "token-1")

    # Given Step Functions answers that no task waits on the token any more
    def gone(token: str, output: dict[str, Any]) -> None:
        raise stepfunctions.TaskGone("no such task", code)

    monkeypatch.setattr(stepfunctions, "resume", gone)

    # When the owner resumes
    answer = api.post(f"/api/workflows/execute/{execution_id}/resume")

    # Then it is a 409 that says why, and the execution is as it was: PAUSED, nobody approved
    assert answer.status == 409
    assert said in answer.body["error"]
    execution = api.get(f"/api/workflows/execute/{execution_id}").body["data"]
    assert execution["state"] == "PAUSED"
    events = api.get(f"/api/workflows/execute/{execution_id}/events").body["data"]["events"]
    assert not any(event["type"] == "execution.resumed" for event in events)


def test_a_pause_task_retried_while_a_resume_was_on_its_way_is_resumed_with_its_new_token(
    api: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from stepwise import aws
    from stepwise.service import executions

    runner, step_limits, store = _parts()
    execution_id = _paused_at_the_approval(api, monkeypatch, "token-1")
    # Given Step Functions ran the pause task again (a new token; the old task attempt is gone) just after the
    # resume read the execution
    real_record = executions.execution_record

    def read_then_retried(*args: Any) -> Any:
        record = real_record(*args)
        monkeypatch.setattr(executions, "execution_record", real_record)
        runner.pause(store, execution_id, "token-2")
        return record

    monkeypatch.setattr(executions, "execution_record", read_then_retried)
    delivered: list[str] = []

    def send_task_success(taskToken: str, output: str) -> None:
        if taskToken != "token-2":
            raise ClientError({"Error": {"Code": "TaskDoesNotExist", "Message": "gone"}}, "SendTaskSuccess")
        delivered.append(taskToken)

    monkeypatch.setattr(aws.stepfunctions(), "send_task_success", send_task_success)

    # When the owner resumes
    answer = api.post(f"/api/workflows/execute/{execution_id}/resume")

    # Then the task the run waits on now is the one resumed: the run does not stay parked on an approval it has
    assert answer.status == 200, answer.body
    assert delivered == ["token-2"]
    assert api.get(f"/api/workflows/execute/{execution_id}").body["data"]["state"] == "RUNNING"
    # not parked again: the step runs the approval's node and the instant nodes after it to the end
    assert runner.step(store, step_limits, execution_id)["status"] == "done"
    execution = api.get(f"/api/workflows/execute/{execution_id}").body["data"]
    assert execution["nodeStates"]["review"]["output"]["approvedBy"] == "alice"


def test_a_pause_task_retried_after_a_resume_approved_releases_itself_and_does_not_park_again(
    api: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from stepwise import stepfunctions

    runner, step_limits, store = _parts()
    execution_id = _paused_at_the_approval(api, monkeypatch, "token-1")
    sent: list[tuple[str, dict[str, Any]]] = []
    monkeypatch.setattr(stepfunctions, "resume", lambda token, output: sent.append((token, output)))
    assert api.post(f"/api/workflows/execute/{execution_id}/resume").status == 200

    # When Step Functions runs the pause task again after the approval (a new token)
    runner.pause(store, execution_id, "token-2")

    # Then it releases its own task and the execution stays RUNNING, approved
    assert [token for token, _ in sent] == ["token-1", "token-2"]
    assert api.get(f"/api/workflows/execute/{execution_id}").body["data"]["state"] == "RUNNING"
    assert runner.resumed(store, execution_id, None)["status"] == "continue"
    # not parked again: the step runs the approval's node and the instant nodes after it to the end
    assert runner.step(store, step_limits, execution_id)["status"] == "done"
    execution = api.get(f"/api/workflows/execute/{execution_id}").body["data"]
    assert execution["nodeStates"]["review"]["output"]["approvedBy"] == "alice"


def test_a_resume_the_api_could_not_record_is_recorded_by_the_run_it_resumed(
    api: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from stepwise.service import pausing

    execution_id = _started(api)
    assert wait_for_state(api, execution_id, {"PAUSED"})["state"] == "PAUSED"

    # Given the API dies after Step Functions took the resume, before it recorded it
    def died(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("the API function died here")

    monkeypatch.setattr(pausing, "resumed_event", died)
    assert api.post(f"/api/workflows/execute/{execution_id}/resume").status == 500

    # Then the state machine's own step records who resumed, and the run goes on to the end
    execution = wait_for_state(api, execution_id, {"COMPLETED", "FAILED"})
    assert execution["state"] == "COMPLETED", execution["error"]
    assert execution["nodeStates"]["review"]["output"]["approvedBy"] == "alice"
    events = api.get(f"/api/workflows/execute/{execution_id}/events").body["data"]["events"]
    (resumed,) = [event for event in events if event["type"] == "execution.resumed"]
    assert resumed["by"]["sub"] == "alice"
    assert resumed["nodeId"] == "review"
