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
    from stepwise.service import runner
    from stepwise.settings import get_settings
    from stepwise.store import Store

    execution_id = pending_execution(api, monkeypatch, ONE_NODE)
    runner.start(Store(get_settings().table_name), execution_id)
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
    from stepwise.service import runner
    from stepwise.settings import get_settings
    from stepwise.store import Store

    control(api, running, "pause")

    assert control(api, running, "resume") == (200, f"Execution {running}: pause withdrawn; it goes on running")

    assert view(api, running)["pauseRequested"] is False
    assert runner.step(Store(get_settings().table_name), get_settings(), running)["status"] == "done"
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
