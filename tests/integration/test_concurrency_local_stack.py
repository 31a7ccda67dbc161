"""Concurrency limits over real HTTP: ``stepwise dev`` in a subprocess, real tokens, delay nodes, a soak.

The stack runs with an owner-wide limit of 4 (``OWNER_CONCURRENCY_LIMIT``), so the soak meets both limits.
What the counters and queues hold at the end is read from the stack's own DynamoDB (its moto endpoint).
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from itertools import pairwise
from typing import Any

import boto3
import pytest

from tests.support.local_stack import TERMINAL, Stack, running_stack

pytestmark = pytest.mark.slow

OWNER_LIMIT = 4
STARTS = 100
# A canceled run costs the local stack far less than one that runs (no Step Functions run, when it waited).
CANCEL_CHANCE = 0.4
SLOW = [
    {"id": "wait", "type": "delay", "config": {"seconds": 1}},
    {"id": "mark", "type": "setVariables", "config": {"values": {"done": True}}},
]
INSTANT = [{"id": "a", "type": "setVariables", "config": {"values": {"x": 1}}}]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("dev"), OWNER_CONCURRENCY_LIMIT=str(OWNER_LIMIT)) as running:
        yield running


@pytest.fixture(scope="module")
def token(stack: Stack) -> str:
    return stack.token("queue-user")


def create(stack: Stack, token: str, nodes: list[dict[str, Any]], concurrency: dict[str, Any] | None) -> str:
    body: dict[str, Any] = {"name": "limited", "nodes": nodes}
    if concurrency:
        body["concurrency"] = concurrency
    answer = stack.call("POST", "/api/workflows", token, json=body)
    assert answer.status_code == 201, answer.text
    return str(answer.json()["data"]["id"])


def start(stack: Stack, token: str, workflow_id: str) -> str:
    answer = stack.call("POST", f"/api/workflows/execute/{workflow_id}", token)
    assert answer.status_code == 202, answer.text
    return str(answer.json()["data"]["executionId"])


def events(stack: Stack, token: str, execution_id: str) -> list[dict[str, Any]]:
    answer = stack.call("GET", f"/api/workflows/execute/{execution_id}/events?limit=500", token)
    return list(answer.json()["data"]["events"])


def at(log: list[dict[str, Any]], kind: str) -> str | None:
    return next((event["at"] for event in log if event["type"] == kind), None)


def table(stack: Stack) -> Any:
    dynamodb = boto3.resource(
        "dynamodb",
        endpoint_url=f"http://127.0.0.1:{stack.aws_port}",
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    return dynamodb.Table("stepwise-local-table")


def slots_in_use(stack: Stack) -> tuple[dict[str, tuple[int, int]], int]:
    """Every slot counter (running, queued) and how many queue entries there are."""
    items: list[dict[str, Any]] = []
    scan: dict[str, Any] = {}
    while True:
        page = table(stack).scan(**scan)
        items += page["Items"]
        if "LastEvaluatedKey" not in page:
            break
        scan["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    counters = {
        str(item["PK"]): (int(item.get("running", 0)), int(item.get("queued", 0)))
        for item in items
        if str(item["PK"]).startswith("SLOTS#")
    }
    return counters, sum(1 for item in items if str(item["PK"]).startswith("QUEUE#"))


def has_run(stack: Stack, execution_id: str) -> bool:
    sfn = boto3.client(
        "stepfunctions",
        endpoint_url=f"http://127.0.0.1:{stack.aws_port}",
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    machine = sfn.list_state_machines()["stateMachines"][0]["stateMachineArn"]
    arn = machine.replace(":stateMachine:", ":execution:") + f":{execution_id}"
    try:
        sfn.describe_execution(executionArn=arn)
    except sfn.exceptions.ExecutionDoesNotExist:
        return False
    return True


def test_with_limit_1_three_slow_starts_run_one_at_a_time_in_start_order(stack: Stack, token: str) -> None:
    workflow_id = create(stack, token, SLOW, {"limit": 1})
    started = [start(stack, token, workflow_id) for _ in range(3)]
    most_running = 0
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        rows = stack.call("GET", f"/api/workflows/{workflow_id}/executions", token).json()["data"]
        states = Counter(row["state"] for row in rows)
        most_running = max(most_running, states["RUNNING"])
        if states["COMPLETED"] == 3:
            break
        time.sleep(0.05)

    assert most_running == 1
    logs = [events(stack, token, execution_id) for execution_id in started]
    assert [log[-1]["type"] for log in logs] == ["execution.completed"] * 3
    # Each ran after the one started before it had ended: one at a time, in start order.
    for earlier, later in pairwise(logs):
        assert (at(later, "execution.running") or "") > (at(earlier, "execution.completed") or "~")
    assert [at(log, "execution.queued") is not None for log in logs] == [False, True, True]


def test_with_reject_a_start_while_one_runs_is_a_429_with_the_envelope_and_retry_after(
    stack: Stack, token: str
) -> None:
    workflow_id = create(stack, token, SLOW, {"limit": 1, "onLimit": "reject"})
    first = start(stack, token, workflow_id)

    refused = stack.call("POST", f"/api/workflows/execute/{workflow_id}", token)

    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "5"
    assert refused.headers["content-type"] == "application/json"
    assert refused.json() == {
        "success": False,
        "error": f"Workflow {workflow_id} is at its concurrency limit (1 running; onLimit: reject): start it "
        "again later",
    }
    assert stack.wait_for_end(first, token)["state"] == "COMPLETED"


def test_a_queued_execution_canceled_never_runs(stack: Stack, token: str) -> None:
    workflow_id = create(stack, token, SLOW, {"limit": 1})
    first = start(stack, token, workflow_id)
    queued = start(stack, token, workflow_id)
    waiting = stack.call("GET", f"/api/workflows/execute/{queued}", token).json()["data"]
    assert (waiting["state"], waiting["queuePosition"]) == ("PENDING", 1)

    assert stack.call("DELETE", f"/api/workflows/execute/{queued}", token).status_code == 200

    assert stack.wait_for_end(first, token)["state"] == "COMPLETED"
    time.sleep(0.5)  # what a promotion would have started, it would have started by now
    canceled = stack.call("GET", f"/api/workflows/execute/{queued}", token).json()["data"]
    assert canceled["state"] == "CANCELED"
    assert {node["state"] for node in canceled["nodeStates"].values()} == {"SKIPPED"}
    assert [event["type"] for event in events(stack, token, queued)] == [
        "execution.started",
        "execution.queued",
        "node.skipped",
        "node.skipped",
        "execution.canceled",
    ]
    assert not has_run(stack, queued)


def test_the_owner_wide_limit_is_a_setting_of_the_stack(stack: Stack, token: str) -> None:
    workflow_id = create(stack, token, [{"id": "wait", "type": "delay", "config": {"seconds": 4}}], None)
    running = [start(stack, token, workflow_id) for _ in range(OWNER_LIMIT)]

    over = start(stack, token, workflow_id)

    waiting = stack.call("GET", f"/api/workflows/execute/{over}", token).json()["data"]
    assert (waiting["state"], waiting["queueLimit"], waiting["queuePosition"]) == ("PENDING", "owner", 1)
    for execution_id in [*running, over]:
        assert stack.wait_for_end(execution_id, token)["state"] == "COMPLETED"
    assert (at(events(stack, token, over), "execution.running") or "") > min(
        at(events(stack, token, execution_id), "execution.completed") or "~" for execution_id in running
    )


def test_a_soak_of_starts_and_random_cancels_ends_every_execution_and_frees_every_slot(
    stack: Stack, token: str
) -> None:
    chance = random.Random(15)
    workflows = {
        "queue 2": create(stack, token, INSTANT, {"limit": 2}),
        "reject 1": create(stack, token, INSTANT, {"limit": 1, "onLimit": "reject"}),
        "owner only": create(stack, token, INSTANT, None),
    }
    started: list[str] = []
    refused: Counter[str] = Counter()
    canceled: list[str] = []
    lock = threading.Lock()
    begun = time.monotonic()

    def one(index: int) -> None:
        name = list(workflows)[index % 3]
        answer = stack.call("POST", f"/api/workflows/execute/{workflows[name]}", token)
        if answer.status_code == 429:
            with lock:
                refused[name] += 1
            return
        assert answer.status_code == 202, answer.text
        execution_id = answer.json()["data"]["executionId"]
        with lock:
            started.append(execution_id)
        if chance.random() < CANCEL_CHANCE:
            time.sleep(chance.random() * 0.3)
            cancel = stack.call("DELETE", f"/api/workflows/execute/{execution_id}", token)
            assert cancel.status_code in (200, 409), cancel.text
            if cancel.status_code == 200:
                with lock:
                    canceled.append(execution_id)

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(one, range(STARTS)))
    all_started = time.monotonic() - begun
    ends = {execution_id: stack.wait_for_end(execution_id, token)["state"] for execution_id in started}
    counters, entries = slots_in_use(stack)
    seconds = time.monotonic() - begun

    outcome = Counter(ends.values())
    print(
        f"\nsoak: {STARTS} starts in {seconds:.1f} s ({all_started:.1f} s to start them all): {len(started)} accepted ({dict(outcome)}), "
        f"{sum(refused.values())} refused with 429 ({dict(refused)}), {len(canceled)} canceled by the test"
    )
    assert len(started) + sum(refused.values()) == STARTS
    assert set(refused) <= {"reject 1"}
    assert set(ends.values()) <= set(TERMINAL)
    assert outcome["CANCELED"] == len(canceled)
    assert entries == 0
    assert counters and all(value == (0, 0) for value in counters.values()), counters
