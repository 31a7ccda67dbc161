"""Instant nodes run together: batches of node runs over the real ASL on moto, and what interrupts one.

A step runs every instant node in a row and appends their events in chunks (here of four node runs, so a run
of ten nodes takes three chunks in one step). A cancel or a pause that lands while a chunk runs wins over it: the
chunk is never written and the step decides anew. The step limit stops a batch at its node. A step that dies
halfway leaves every chunk before the failure recorded, and none twice.
"""

from __future__ import annotations

import dataclasses
import functools
import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from tests.support.builders import wait_for_state

CHUNK = 4
TEN = {
    "name": "ten",
    "variables": {"trail": ""},
    "nodes": [
        {"id": f"n{i}", "type": "setVariables", "config": {"values": {f"v{i}": i, "trail": f"${{trail}}{i}"}}}
        for i in range(10)
    ],
}


@pytest.fixture
def chunks_of_four(aws: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The node runner's dependencies, with chunks of four node runs (as its handler gets them)."""
    from stepwise import wiring
    from stepwise.service.batches import Budget

    wired = wiring.node_runner()
    limits = dataclasses.replace(wired.step_limits, budget=Budget(nodes=CHUNK))
    patched = dataclasses.replace(wired, step_limits=limits)
    monkeypatch.setattr(wiring, "node_runner", functools.cache(lambda: patched))
    return patched


def when_node_runs(monkeypatch: pytest.MonkeyPatch, node_id: str, action: Callable[[], None]) -> list[str]:
    """Do ``action`` (once) while ``node_id`` runs, from inside the node runner; returns every node run begun."""
    from stepwise import nodes

    original = nodes.REGISTRY["setVariables"]
    begun: list[str] = []
    done = threading.Event()

    def spy(config: Any, context: Any) -> Any:
        begun.append(context.node_id)
        if context.node_id == node_id and not done.is_set():
            done.set()
            action()
        return original.run(config, context)

    monkeypatch.setitem(nodes.REGISTRY, "setVariables", dataclasses.replace(original, run=spy))
    return begun


def start(api: Any, definition: dict[str, Any]) -> str:
    workflow = api.post("/api/workflows", json_body=definition)
    assert workflow.status == 201, workflow.body
    started = api.post(f"/api/workflows/execute/{workflow.body['data']['id']}")
    assert started.status == 202, started.body
    return str(started.body["data"]["executionId"])


def events_of(wired: Any, execution_id: str) -> list[Any]:
    return list(wired.store.events(execution_id))


def states_entered(aws: Any, execution_id: str) -> list[str]:
    arn = aws.state_machine_arn.replace(":stateMachine:", ":execution:") + f":{execution_id}"
    events = boto3.client("stepfunctions").get_execution_history(executionArn=arn, maxResults=1000)["events"]
    return [e["stateEnteredEventDetails"]["name"] for e in events if "stateEnteredEventDetails" in e]


def assert_each_node_ran_at_most_once(events: list[Any]) -> Counter[str]:
    """Every node.started has its node.completed, no node ran twice, seq has no gap; the completed nodes."""
    assert [event.seq for event in events] == list(range(1, len(events) + 1))
    started = Counter(event.nodeId for event in events if event.type == "node.started")
    completed = Counter(event.nodeId for event in events if event.type == "node.completed")
    assert started == completed
    assert all(count == 1 for count in completed.values()), completed
    return completed


def test_ten_instant_nodes_take_one_step_and_three_transitions(aws: Any, api: Any, chunks_of_four: Any) -> None:
    execution_id = start(api, TEN)

    execution = wait_for_state(api, execution_id, {"COMPLETED", "FAILED"})

    assert execution["state"] == "COMPLETED", execution["error"]
    assert execution["variables"]["trail"] == "0123456789"
    assert {node["state"] for node in execution["nodeStates"].values()} == {"COMPLETED"}
    events = events_of(chunks_of_four, execution_id)
    assert len(assert_each_node_ran_at_most_once(events)) == 10
    assert [event.type for event in events[:2]] == ["execution.started", "execution.running"]
    # One step of the state machine: RunNode, Route, Completed (no state of its own to mark it RUNNING)
    assert states_entered(aws, execution_id) == ["RunNode", "Route", "Completed"]
    # Each node recorded as if it ran alone: its start, its log line, its completion with what it set
    n3 = [(event.type, event.run) for event in events if event.nodeId == "n3"]
    assert n3 == [("node.started", 4), ("log", 4), ("node.completed", 4)]
    assert next(e for e in events if e.type == "node.completed" and e.nodeId == "n3").variables == {
        "v3": 3,
        "trail": "0123",
    }
    # in three groups of the log (chunks of four node runs), all written by step 1
    groups = list(chunks_of_four.store.groups_after(execution_id, 0))
    assert [sum(e.type == "node.completed" for e in group.events) for group in groups] == [0, 4, 4, 2]
    assert {group.control.steps for group in groups[1:]} == {1}


def test_a_node_that_calls_out_after_instant_nodes_is_claimed_in_the_same_step(
    aws: Any, api: Any, chunks_of_four: Any
) -> None:
    from tests.support.agent_server import AgentServer, Reply

    with AgentServer() as agent_server:
        agent_server.script("/agent", Reply(json={"ok": True}))
        agent = api.post("/api/agents", json_body={"name": "a", "endpoint": agent_server.url + "/agent"})
        definition = {
            "name": "mixed",
            "nodes": [
                {"id": "a", "type": "setVariables", "config": {"values": {"x": 1}}},
                {"id": "b", "type": "setVariables", "config": {"values": {"y": 2}}},
                {"id": "ask", "type": "agentTask", "config": {"agentId": agent.body["data"]["id"], "prompt": "${x}"}},
                {"id": "c", "type": "setVariables", "config": {"values": {"z": 3}}},
            ],
        }
        execution_id = start(api, definition)
        execution = wait_for_state(api, execution_id, {"COMPLETED", "FAILED"})

    assert execution["state"] == "COMPLETED", execution["error"]
    # Two steps: a, b and the call; then c. The claim of 'ask' is in the group of a and b.
    assert states_entered(aws, execution_id) == ["RunNode", "Route", "RunNode", "Route", "Completed"]
    groups = list(chunks_of_four.store.groups_after(execution_id, 0))
    claimed = [event.nodeId for event in groups[1].events if event.type == "node.started"]
    assert claimed == ["a", "b", "ask"]


def test_a_cancel_that_lands_mid_batch_wins_and_the_chunk_is_never_written(
    aws: Any, api: Any, chunks_of_four: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    execution: list[str] = []
    begun = when_node_runs(
        monkeypatch, "n5", lambda: api.delete(f"/api/workflows/execute/{execution[0]}").status == 200 or None
    )

    # Given a run of ten instant nodes, canceled while the node runner runs n5 (its second chunk: n4..n7)
    execution.append(start(api, TEN))
    view = wait_for_state(api, execution[0], {"CANCELED", "COMPLETED", "FAILED"})

    # Then the cancel stands, the first chunk is recorded, and nothing of the second chunk or after it
    assert view["state"] == "CANCELED"
    events = events_of(chunks_of_four, execution[0])
    assert events[-1].type == "execution.canceled"
    completed = assert_each_node_ran_at_most_once(events)
    assert sorted(completed) == ["n0", "n1", "n2", "n3"]
    states = {node: state["state"] for node, state in view["nodeStates"].items()}
    assert states == {f"n{i}": "COMPLETED" if i < 4 else "SKIPPED" for i in range(10)}
    assert view["variables"]["trail"] == "0123"
    # The chunk in flight ran to its end in the node runner (n4..n7), once, and was dropped at its append
    assert begun == [f"n{i}" for i in range(8)]


def test_a_pause_that_lands_mid_batch_takes_effect_before_the_chunk_and_the_run_resumes_there(
    aws: Any, api: Any, chunks_of_four: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    execution: list[str] = []
    when_node_runs(
        monkeypatch, "n5", lambda: api.post(f"/api/workflows/execute/{execution[0]}/pause").status == 200 or None
    )

    # Given a run of ten instant nodes asked to pause while the node runner runs n5 (in its second chunk)
    execution.append(start(api, TEN))
    paused = wait_for_state(api, execution[0], {"PAUSED", "COMPLETED", "FAILED"})

    # Then it paused at the boundary right after the request in its log: after n3, with nothing of the chunk
    assert paused["state"] == "PAUSED"
    assert paused["variables"]["trail"] == "0123"
    events = events_of(chunks_of_four, execution[0])
    kinds = [event.type for event in events]
    requested = kinds.index("execution.pause_requested")
    assert kinds[requested + 1] == "execution.paused"
    assert sorted(assert_each_node_ran_at_most_once(events)) == ["n0", "n1", "n2", "n3"]

    # When it is resumed, the rest runs once, from n4
    assert api.post(f"/api/workflows/execute/{execution[0]}/resume").status == 200
    done = wait_for_state(api, execution[0], {"COMPLETED", "FAILED"})
    assert done["state"] == "COMPLETED", done["error"]
    assert done["variables"]["trail"] == "0123456789"
    events = events_of(chunks_of_four, execution[0])
    assert len(assert_each_node_ran_at_most_once(events)) == 10
    assert [event.nodeId for event in events if event.type == "node.started"] == [f"n{i}" for i in range(10)]


def test_the_step_limit_stops_a_batch_at_its_node(aws: Any, api: Any, chunks_of_four: Any) -> None:
    loop = {
        "name": "forever",
        "variables": {"laps": 0},
        "maxNodeRuns": 7,
        "nodes": [
            {"id": "tick", "type": "setVariables", "config": {"values": {"laps": "${laps}"}}},
            {
                "id": "again",
                "type": "condition",
                "config": {"left": 1, "op": "eq", "right": 1, "then": "tick", "else": "tick"},
            },
        ],
    }
    execution_id = start(api, loop)

    view = wait_for_state(api, execution_id, {"COMPLETED", "FAILED"})

    # Then the 8th node run failed with the limit, the 7 before it are recorded (two chunks and a part), in one step
    assert view["state"] == "FAILED"
    assert "step limit reached: 7 node runs" in view["error"]
    events = events_of(chunks_of_four, execution_id)
    runs = [(event.nodeId, event.run) for event in events if event.type == "node.completed"]
    assert runs == [("tick", 1), ("again", 2), ("tick", 3), ("again", 4), ("tick", 5), ("again", 6), ("tick", 7)]
    failed = [event for event in events if event.type == "node.failed"]
    assert [(event.nodeId, event.run) for event in failed] == [("again", 8)]
    assert (view["nodeStates"]["tick"]["runs"], view["nodeStates"]["again"]["runs"]) == (4, 4)
    assert states_entered(aws, execution_id) == ["RunNode", "Route", "NodeFailed"]


def fail_the_projection_of_the_second_chunk(monkeypatch: pytest.MonkeyPatch, wired: Any) -> list[int]:
    """The second chunk's BatchWriteItem (the first that writes n4's node run) writes half its items, then DynamoDB
    fails (a real ClientError, which the store turns into its StorageError): the group is appended, its projections
    half written. Returns the size of every BatchWriteItem since."""
    client = wired.store.client  # the process's client: the API's calls go through it too
    original = client.batch_write_item
    calls: list[int] = []
    failed = threading.Event()

    def batch_write_item(**request: Any) -> Any:
        ((table, items),) = request["RequestItems"].items()
        calls.append(len(items))
        if failed.is_set() or not any(item["PutRequest"]["Item"]["SK"] == {"S": "NODE#n4"} for item in items):
            return original(**request)
        failed.set()
        original(RequestItems={table: items[: len(items) // 2]})
        error = {"Error": {"Code": "InternalServerError", "Message": "DynamoDB failed partway"}}
        raise ClientError(error, "BatchWriteItem")

    monkeypatch.setattr(client, "batch_write_item", batch_write_item)
    return calls


def test_a_step_that_dies_halfway_is_retried_and_nothing_is_lost_or_run_twice(
    aws: Any, api: Any, chunks_of_four: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from stepwise.service import runner
    from stepwise.store import StorageError

    calls = fail_the_projection_of_the_second_chunk(monkeypatch, chunks_of_four)
    # The invocation dies with it, as a Lambda whose sandbox is lost does: Step Functions retries the step.
    lost = type("Lambda.ServiceException", (Exception,), {})
    original_step = runner.step

    def step(*args: Any, **kwargs: Any) -> Any:
        try:
            return original_step(*args, **kwargs)
        except StorageError as error:
            raise lost(str(error)) from error

    monkeypatch.setattr(runner, "step", step)
    execution_id = start(api, TEN)

    view = wait_for_state(api, execution_id, {"COMPLETED", "FAILED"}, timeout=30)

    # Then the retried step wrote the second chunk's projections again and ran the rest, each node once
    assert view["state"] == "COMPLETED", view["error"]
    assert len(calls) >= 3
    assert view["variables"] == {"trail": "0123456789", **{f"v{i}": i for i in range(10)}}
    assert {node: (state["state"], state["runs"]) for node, state in view["nodeStates"].items()} == {
        f"n{i}": ("COMPLETED", 1) for i in range(10)
    }
    assert len(assert_each_node_ran_at_most_once(events_of(chunks_of_four, execution_id))) == 10
    assert states_entered(aws, execution_id) == ["RunNode", "Route", "Completed"]


def test_a_step_that_dies_halfway_for_good_leaves_the_nodes_before_the_failure_recorded(
    aws: Any, api: Any, chunks_of_four: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    fail_the_projection_of_the_second_chunk(monkeypatch, chunks_of_four)
    execution_id = start(api, TEN)

    view = wait_for_state(api, execution_id, {"COMPLETED", "FAILED"})

    # Then (the store's error is not one Step Functions retries) the execution failed with it, and both chunks
    # appended before the failure are recorded whole: their projections written again by the failure's record
    assert view["state"] == "FAILED"
    assert "DynamoDB failed partway" in view["error"]
    assert view["variables"]["trail"] == "01234567"
    states = {node: state["state"] for node, state in view["nodeStates"].items()}
    assert states == {f"n{i}": "COMPLETED" if i < 8 else "SKIPPED" for i in range(10)}
    events = events_of(chunks_of_four, execution_id)
    assert sorted(assert_each_node_ran_at_most_once(events)) == [f"n{i}" for i in range(8)]
    assert events[-1].type == "execution.failed"


# --- a chunk's projections, written in batches ------------------------------------------------------------


def node_events(node_id: str, run: int, **values: Any) -> list[Any]:
    from stepwise.service.history import event

    started = event("node.started", nodeId=node_id, run=run)
    completed = event(
        "node.completed", nodeId=node_id, run=run, startedAt=started.at, next=None, output=values, variables=values
    )
    return [started, completed]


def test_a_chunk_projected_late_never_buries_what_a_newer_group_projected(api: Any) -> None:
    from stepwise import wiring
    from tests.support.builders import recorded_execution

    store = wiring.node_runner().store
    execution_id = recorded_execution(store, workflow_id="wf_1", owner="alice", state="RUNNING")
    # Given a chunk of five node runs appended (its projections not written yet: its writer is slow)
    chunk = [event for i in range(5) for event in node_events(f"n{i}", i + 1, **{f"v{i}": "old"})]
    tail = store.tail(execution_id)
    appended = store.append(execution_id, tail, chunk, tail.control.after(chunk))
    # and a newer group, appended and projected meanwhile: n0 runs again and sets v0 anew
    again = node_events("n0", 6, v0="new")
    store.commit(execution_id, appended, again, appended.control.after(again))

    # When the chunk's projections are written at last (in batches, without conditions)
    store.project(execution_id, appended)

    # Then what the newer group wrote stands (the chunk's writer saw that a group followed it and wrote that
    # group's projections again), and the chunk's other node runs and variables are there
    assert store.variable(execution_id, "v0").value == "new"
    assert store.variable(execution_id, "v4").value == "old"
    nodes = {node.nodeId: (node.run, node.output) for node in store.nodes(execution_id)}
    assert nodes == {"n0": (6, {"v0": "new"}), **{f"n{i}": (i + 1, {f"v{i}": "old"}) for i in range(1, 5)}}


def test_a_chunk_projected_twice_counts_each_run_once(api: Any) -> None:
    from stepwise import wiring
    from tests.support.builders import recorded_execution

    store = wiring.node_runner().store
    execution_id = recorded_execution(store, workflow_id="wf_1", owner="alice", state="RUNNING")
    # Given a chunk in which n0 runs three times (a loop) among other nodes
    runs = [("n0", 1), ("n1", 2), ("n0", 3), ("n2", 4), ("n0", 5), ("n3", 6)]
    chunk = [event for node_id, run in runs for event in node_events(node_id, run, **{node_id: run})]
    tail = store.tail(execution_id)

    # When it is appended and projected, and projected again (a repair after a crash)
    group = store.commit(execution_id, tail, chunk, tail.control.after(chunk))
    store.project(execution_id, group)

    nodes = {node.nodeId: (node.run, node.runs, node.state) for node in store.nodes(execution_id)}
    assert nodes == {
        "n0": (5, 3, "COMPLETED"),
        "n1": (2, 1, "COMPLETED"),
        "n2": (4, 1, "COMPLETED"),
        "n3": (6, 1, "COMPLETED"),
    }
    assert store.variable(execution_id, "n0").value == 5
