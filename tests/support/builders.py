"""Small builders the tests share: workflow definitions and polling with a deadline."""

from __future__ import annotations

import time
from typing import Any


def simple_workflow(
    name: str = "greeter", greeting: str = "Hello ${name}", variables: dict[str, Any] | None = None
) -> dict[str, Any]:
    """One setVariables node that writes ``greeting``; output is just the greeting."""
    return {
        "name": name,
        "variables": variables if variables is not None else {"name": "world"},
        "nodes": [{"id": "greet", "type": "setVariables", "config": {"values": {"greeting": greeting}}}],
        "output": ["greeting"],
    }


def wait_for_state(
    api: Any, execution_id: str, states: set[str], timeout: float = 20.0, user: str = "alice"
) -> dict[str, Any]:
    """Poll the execution until it is in one of ``states``; fail with its last view at the deadline."""
    deadline = time.monotonic() + timeout
    execution: dict[str, Any] = {}
    while time.monotonic() < deadline:
        answer = api.get(f"/api/workflows/execute/{execution_id}", user=user)
        assert answer.status == 200, answer.body
        execution = answer.body["data"]
        if execution["state"] in states:
            return execution
        time.sleep(0.05)
    raise AssertionError(f"execution never reached {states}; last seen: {execution}")


def wait_until(condition: Any, timeout: float = 20.0, message: str = "condition") -> Any:
    """Poll ``condition()`` until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {message}")


def pending_execution(api: Any, monkeypatch: Any, definition: dict[str, Any]) -> str:
    """A PENDING execution of a new workflow whose state machine is never started: the test drives the runner."""
    from stepwise import stepfunctions

    monkeypatch.setattr(stepfunctions, "start", lambda arn, execution_id: None)
    workflow = api.post("/api/workflows", json_body=definition).body["data"]
    return str(api.post(f"/api/workflows/execute/{workflow['id']}").body["data"]["executionId"])


# The events that take a new execution to each state.
_TO_STATE: dict[str, tuple[str, ...]] = {
    "PENDING": (),
    "RUNNING": ("execution.running",),
    "PAUSED": ("execution.running", "execution.pause_requested", "execution.paused"),
    "COMPLETED": ("execution.running", "execution.completed"),
    "FAILED": ("execution.failed",),
    "CANCELED": ("execution.canceled",),
}


def recorded_execution(
    store: Any,
    *,
    workflow_id: str,
    owner: str,
    state: str = "PENDING",
    execution_id: str | None = None,
    started_at: str | None = None,
    started_by: str | None = None,
    variables: dict[str, Any] | None = None,
    cursor: str = "greet",
) -> str:
    """An execution as the service records it (its log and the projections), taken to ``state`` by the events
    that lead there, with no state machine run driving it."""
    from stepwise import ids
    from stepwise.models.events import Actor
    from stepwise.models.records import Control
    from stepwise.service.history import event

    execution_id = execution_id or ids.new_id("exe")
    started = event(
        "execution.started",
        at=started_at,
        workflowId=workflow_id,
        workflowVersion=1,
        startedBy=started_by or owner,
        by=Actor(sub=owner, name=started_by or owner),
        variables=variables or {},
    )
    control = Control(state="PENDING", workflowId=workflow_id, workflowVersion=1, cursor=cursor, maxNodeRuns=100)
    tail = store.commit(execution_id, None, [started], control)
    for kind in _TO_STATE[state]:
        fields = {"error": "it failed"} if kind == "execution.failed" else {}
        if kind in ("execution.pause_requested", "execution.canceled"):
            fields["by"] = Actor(sub=owner, name=owner)
        happened = [event(kind, **fields)]
        tail = store.commit(execution_id, tail, happened, tail.control.after(happened))
    return execution_id
