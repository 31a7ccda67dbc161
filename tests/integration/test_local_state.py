"""``stepwise dev`` keeps what it stored across a crash, and injects faults when told to: over real HTTP.

The crash is ``kill -9`` of the stack's whole process group, the moment after the API answered a write; the
next start on the same state directory must have every workflow, agent (and its credential), schedule,
execution and user, and the tokens minted before must still work; and every run that was in flight ends on its
own soon after (the reconciler restarts it from its record), a call that was in flight made again with the same
``Idempotency-Key``, a node that had completed never run again.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.agent_server import AgentServer, Reply
from tests.support.faults import faults_now, injected_faults
from tests.support.local_stack import (
    PROJECT_DIR,
    STEPWISE,
    Stack,
    cli_environment,
    free_port_pair,
    start_stack,
    stop_stack,
)

pytestmark = pytest.mark.slow

DEMO_WORKFLOW = "wf_0000000000000000000000DEM0"


def created(stack: Stack, token: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
    answer = stack.call("POST", path, token, json=body)
    assert answer.status_code in (201, 202), answer.text
    data: dict[str, Any] = answer.json()["data"]
    return data


def data(stack: Stack, token: str, path: str) -> Any:
    answer = stack.call("GET", path, token)
    assert answer.status_code == 200, answer.text
    return answer.json()["data"]


def wait_for_node(stack: Stack, token: str, execution_id: str, node_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 20
    while True:
        execution: dict[str, Any] = data(stack, token, f"/api/workflows/execute/{execution_id}")
        if (execution.get("nodeStates") or {}).get(node_id, {}).get("state") in ("COMPLETED", "FAILED"):
            return execution
        assert time.monotonic() < deadline, execution
        time.sleep(0.1)


def crash(stack: Stack) -> None:
    """kill -9 of the stack's process group, as a crash (or a terminal closed hard) would end it."""
    os.killpg(stack.process.pid, signal.SIGKILL)
    stack.process.wait()


def test_everything_stored_before_a_kill_9_is_there_after_it(tmp_path: Path) -> None:
    # Given a stack that stored agents, workflows, a schedule, users and executions
    first = start_stack(tmp_path)
    try:
        alice, demo = first.token("alice"), first.token("demo")
        agent = created(
            first,
            alice,
            "/api/agents",
            {
                "name": "a",
                "endpoint": f"http://127.0.0.1:{first.port + 2}/json",
                "protocol": "json",
                "credential": "sk-1",
            },
        )
        ask = {"id": "ask", "type": "agentTask", "config": {"agentId": agent["id"], "prompt": "hi"}}
        slow = created(
            first,
            alice,
            "/api/workflows",
            {"name": "slow", "nodes": [ask, {"id": "wait", "type": "delay", "config": {"seconds": 120}}]},
        )
        schedule = created(first, alice, f"/api/workflows/{slow['id']}/schedules", {"expression": "rate(1 day)"})
        done = created(first, demo, f"/api/workflows/execute/{DEMO_WORKFLOW}", {"variables": {"review": "good"}})
        assert first.wait_for_end(done["executionId"], demo)["state"] == "COMPLETED"
        # A value past 8 KiB is kept in the values' bucket (S3), not in the table.
        big = {"id": "big", "type": "setVariables", "config": {"values": {"text": "x" * 9000}}}
        kept = created(first, alice, "/api/workflows", {"name": "big", "nodes": [big]})
        valued = created(first, alice, f"/api/workflows/execute/{kept['id']}", {})
        assert first.wait_for_end(valued["executionId"], alice)["state"] == "COMPLETED"
        in_flight = created(first, alice, f"/api/workflows/execute/{slow['id']}", {})
        wait_for_node(first, alice, in_flight["executionId"], "ask")
        # When the process group is killed the moment after the API answered a write
        last = created(first, alice, "/api/workflows", {"name": "last", "nodes": [ask]})
    finally:
        crash(first)

    # Then a new start on the same directory (and ports) resumes it all, and the tokens minted before still work
    second = start_stack(tmp_path, port=first.port)
    try:
        assert "(resumed in" in second.output()
        assert {w["id"] for w in data(second, alice, "/api/workflows")} == {slow["id"], kept["id"], last["id"]}
        assert data(second, alice, f"/api/workflows/execute/{valued['executionId']}")["variables"]["text"] == "x" * 9000
        assert data(second, alice, f"/api/agents/{agent['id']}")["hasCredential"] is True
        assert [s["id"] for s in data(second, alice, f"/api/workflows/{slow['id']}/schedules")] == [schedule["id"]]
        ended = data(second, demo, f"/api/workflows/execute/{done['executionId']}")
        assert ended["state"] == "COMPLETED" and ended["output"]
        assert (
            data(second, alice, f"/api/workflows/execute/{in_flight['executionId']}")["nodeStates"]["ask"]["state"]
            == "COMPLETED"
        )
        # The kept credential is the one the agent is called with (its secret survived with its ARN).
        again = created(second, alice, f"/api/workflows/execute/{slow['id']}", {})
        assert wait_for_node(second, alice, again["executionId"], "ask")["nodeStates"]["ask"]["state"] == "COMPLETED"
        assert second.token("alice") and data(second, alice, "/api/workflows")  # the same user, not a new one
    finally:
        stop_stack(second)  # a clean stop folds the journal into a snapshot
    assert (tmp_path / "state" / "snapshot.pickle").exists()

    # And --fresh starts empty
    third = start_stack(tmp_path, "--fresh")
    try:
        assert data(third, third.token("alice"), "/api/workflows") == []
    finally:
        stop_stack(third)


def test_a_second_stack_on_the_same_state_is_refused(stack: Stack) -> None:
    port = free_port_pair()
    state = stack.stdout.parent / "state"

    refused = subprocess.run(
        [str(STEPWISE), "dev", "--port", str(port), "--state-dir", str(state)],
        cwd=PROJECT_DIR,
        env=cli_environment(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert refused.returncode == 1
    assert "is in use by another stepwise dev" in refused.stderr


def test_faults_turned_on_while_the_stack_runs_reach_the_api_and_go_off_again(stack: Stack) -> None:
    token = stack.token("demo")
    start = f"/api/workflows/execute/{DEMO_WORKFLOW}"

    # Given every StartExecution throttled (the API's calls are made in its warm instances)
    with injected_faults(stack.url, {"throttle:StartExecution": 1.0}) as view:
        assert view["describe"] == "throttle:StartExecution 100%"
        delayed = stack.call("POST", start, token, json={"variables": {"review": "x"}})
        # Then the start is accepted, its run not started: it waits PENDING, and the stack's log says which fault
        assert delayed.status_code == 202, delayed.text
        execution_id = delayed.json()["data"]["executionId"]
        assert data(stack, token, f"/api/workflows/execute/{execution_id}")["state"] == "PENDING"
    assert "fault throttle stepfunctions.StartExecution (ApiFunction-" in stack.output()

    # And once faults are off, a run completes again, and the reconciler starts the one that waited
    assert faults_now(stack.url)["describe"] == "off"
    started = stack.call("POST", start, token, json={"variables": {"review": "x"}})
    assert started.status_code == 202, started.text
    assert stack.wait_for_end(started.json()["data"]["executionId"], token)["state"] == "COMPLETED"
    deadline = time.monotonic() + 40  # the reconciler's local grace (10 s) and tick (3 s), on a busy machine
    while (waited := data(stack, token, f"/api/workflows/execute/{execution_id}"))["state"] not in (
        "COMPLETED",
        "FAILED",
    ):
        assert time.monotonic() < deadline, waited
        time.sleep(0.5)
    assert waited["state"] == "COMPLETED", waited


def test_step_functions_retries_injected_lambda_service_errors(stack: Stack) -> None:
    token = stack.token("demo")

    # Given a quarter of the node runner's invokes failing as Lambda's service errors (seeded: the same draws)
    with injected_faults(stack.url, "lambda-error=0.15,lambda-throttle=0.1", seed=11):
        started = stack.call("POST", f"/api/workflows/execute/{DEMO_WORKFLOW}", token, json={"variables": {}})
        ended = stack.wait_for_end(started.json()["data"]["executionId"], token)
        injected = faults_now(stack.url)["injected"]

    # Then the run completes all the same: each failed invoke was retried by the state machine
    assert ended["state"] == "COMPLETED", ended
    assert injected.get("lambda-error", 0) + injected.get("lambda-throttle", 0) >= 1


def test_runs_a_kill_9_left_in_flight_end_on_their_own_and_a_call_in_flight_is_made_again_as_the_same_call(
    tmp_path: Path,
) -> None:
    with AgentServer() as agent_server:
        # The first call hangs (the stack is killed while it waits); the call made again is answered.
        agent_server.script("/agent", Reply.hang(120), Reply(200, json={"answer": "done"}))
        first = start_stack(tmp_path)
        try:
            alice = first.token("alice")
            agent = created(
                first, alice, "/api/agents", {"name": "a", "endpoint": f"{agent_server.url}/agent", "protocol": "json"}
            )
            before = {"id": "before", "type": "setVariables", "config": {"values": {"n": 1}}}
            ask = {"id": "ask", "type": "agentTask", "config": {"agentId": agent["id"], "prompt": "hi"}}
            calling = created(first, alice, "/api/workflows", {"name": "calling", "nodes": [before, ask]})
            wait = {"id": "wait", "type": "delay", "config": {"seconds": 3}}
            waiting = created(first, alice, "/api/workflows", {"name": "waiting", "nodes": [before, wait]})
            in_call = created(first, alice, f"/api/workflows/execute/{calling['id']}", {})["executionId"]
            in_delay = created(first, alice, f"/api/workflows/execute/{waiting['id']}", {})["executionId"]
            agent_server.wait_for_requests(1, timeout=20)
            wait_for_node(first, alice, in_delay, "before")
        finally:
            crash(first)

        second = start_stack(tmp_path, port=first.port)
        try:
            started = time.monotonic()
            called = second.wait_for_end(in_call, alice)
            delayed = second.wait_for_end(in_delay, alice)
            took = time.monotonic() - started
            print(f"in-flight runs ended {took:.1f} s after the restart")
            assert took < 60
            assert (called["state"], delayed["state"]) == ("COMPLETED", "COMPLETED"), (called, delayed)
            assert called["nodeStates"]["before"]["runs"] == 1 and delayed["nodeStates"]["before"]["runs"] == 1
            keys = [request.header("Idempotency-Key") for request in agent_server.requests]
            assert keys == [f"{in_call}:ask:2", f"{in_call}:ask:2"], keys
            events = data(second, alice, f"/api/workflows/execute/{in_call}/events")["events"]
            assert any(event["type"] == "execution.restarted" for event in events)
        finally:
            stop_stack(second)
