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
