"""Pause and resume as the README says: a pause is asked for, shown, withdrawn, or taken at a node boundary.

The runner is driven by the test (the state machine is not started), so the execution stays RUNNING between
the calls and each answer depends on the rule alone.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.builders import pending_execution

ONE_NODE = {"name": "p", "nodes": [{"id": "a", "type": "setVariables", "config": {"values": {"x": 1}}}]}


@pytest.fixture
def running(api: Any, monkeypatch: pytest.MonkeyPatch) -> str:
    from stepwise import wiring
    from stepwise.service import runner

    execution_id = pending_execution(api, monkeypatch, ONE_NODE)
    runner.start(wiring.node_runner().store, execution_id)
    return execution_id


def control(api: Any, execution_id: str, action: str) -> tuple[int, str]:
    answer = api.post(f"/api/workflows/execute/{execution_id}/{action}")
    return answer.status, answer.body.get("message") or answer.body.get("error")


def view(api: Any, execution_id: str) -> dict[str, Any]:
    return dict(api.get(f"/api/workflows/execute/{execution_id}").body["data"])


def test_a_pending_pause_shows_and_a_second_pause_is_a_409(api: Any, running: str) -> None:
    assert view(api, running)["pauseRequested"] is False

    assert control(api, running, "pause") == (200, f"Execution {running} will pause before its next node")

    assert view(api, running)["pauseRequested"] is True
    assert control(api, running, "pause") == (
        409,
        f"Execution {running}: a pause is already requested; it pauses before its next node",
    )


def test_resume_withdraws_a_pending_pause_and_the_run_goes_on(api: Any, running: str) -> None:
    from stepwise import wiring
    from stepwise.service import runner

    control(api, running, "pause")

    assert control(api, running, "resume") == (200, f"Execution {running}: pause withdrawn; it goes on running")

    assert view(api, running)["pauseRequested"] is False
    wired = wiring.node_runner()
    assert runner.step(wired.store, wired.step_limits, running)["status"] == "done"
    assert view(api, running)["state"] == "COMPLETED"


def test_resume_of_a_running_execution_without_a_pending_pause_is_a_409(api: Any, running: str) -> None:
    assert control(api, running, "resume") == (
        409,
        f"Execution {running} is not paused (RUNNING) and no pause is requested",
    )


def test_a_pause_asked_before_the_run_starts_is_kept_and_withdrawn_alike(
    api: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    execution_id = pending_execution(api, monkeypatch, ONE_NODE)

    assert control(api, execution_id, "pause")[0] == 200
    pending = view(api, execution_id)
    assert (pending["state"], pending["pauseRequested"]) == ("PENDING", True)
    assert control(api, execution_id, "resume")[0] == 200
    assert view(api, execution_id)["pauseRequested"] is False


def test_an_ended_run_shows_no_pending_pause(api: Any, running: str) -> None:
    control(api, running, "pause")

    assert api.delete(f"/api/workflows/execute/{running}").status == 200

    assert view(api, running)["pauseRequested"] is False
    assert control(api, running, "pause") == (409, f"Execution {running} already ended (CANCELED); it cannot be paused")
    listed = api.get(f"/api/workflows/{view(api, running)['workflowId']}/executions").body["data"]
    assert [(row["id"], row["pauseRequested"]) for row in listed] == [(running, False)]


def test_a_pause_keeps_its_task_token_when_a_reader_projected_its_group_first(api: Any, running: str) -> None:
    from stepwise import wiring
    from stepwise.models.events import new_event

    store = wiring.node_runner().store
    tail = store.tail(running)
    assert tail is not None
    happened = [new_event("execution.pause_requested", "2030-01-01T00:00:00.000Z", by={"sub": "a", "name": "a"})]
    asked = store.commit(running, tail, happened, tail.control.after(happened))
    paused_events = [new_event("execution.paused", "2030-01-01T00:00:01.000Z", reason="requested")]
    paused = store.append(running, asked, paused_events, asked.control.after(paused_events))

    # A GET between the group and the pause's own projection writes the state, without the token...
    store.project(running, paused)
    store.project(running, paused, task_token="token-1")

    # ...and the token still lands, so resume and cancel can reach the parked task.
    record = store.get_execution(running)
    assert record is not None
    assert (record.state, record.taskToken) == ("PAUSED", "token-1")
