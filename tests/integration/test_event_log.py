"""The log as the record, on moto's DynamoDB (real conditional writes): who wins a seq, what a crash leaves,
what a node costs, and the variables each node saw rebuilt from the events.

The runner is driven by the test (the state machine is not started), so each write happens when the test says.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from stepwise.errors import Conflict
from stepwise.identity import Caller
from stepwise.replay import node_runs, variables_before
from stepwise.service.history import Change, event, record_change
from stepwise.store import SeqTaken
from tests.integration.test_events import LOOP
from tests.support.builders import pending_execution

ALICE = Caller("alice", name="Alice")


@pytest.fixture
def parts() -> tuple[Any, Any, Any]:
    """The runner module, the node runner's limits and its store."""
    from stepwise import wiring
    from stepwise.service import runner

    wired = wiring.node_runner()
    return runner, wired.step_limits, wired.store


def run_to_the_end(runner: Any, step_limits: Any, store: Any, execution_id: str) -> None:
    for _ in range(50):
        if runner.step(store, step_limits, execution_id)["status"] != "continue":
            return
    raise AssertionError("the execution never ended")


# --- who wins a seq ---------------------------------------------------------------------------------


def test_two_writers_after_the_same_group_one_wins_and_the_other_decides_again(
    api: Any, monkeypatch: pytest.MonkeyPatch, parts: tuple[Any, Any, Any]
) -> None:
    runner, _, store = parts
    execution_id = pending_execution(api, monkeypatch, LOOP)
    runner.start(store, execution_id)
    read = store.tail(execution_id)

    # Two writers read the same newest group; the first to append takes the next seq
    requested = [event("execution.pause_requested", by={"sub": "alice", "name": "Alice"})]
    won = store.commit(execution_id, read, requested, read.control.after(requested))
    canceled = [event("execution.canceled", by={"sub": "alice", "name": "Alice"})]
    with pytest.raises(SeqTaken):
        store.commit(execution_id, read, canceled, read.control.after(canceled))

    # The seq went to the winner, once: the loser's events are nowhere
    assert (won.first, won.last) == (read.last + 1, read.last + 1)
    assert [e.type for e in store.events(execution_id)] == [
        "execution.started",
        "execution.running",
        "execution.pause_requested",
    ]


def test_a_pause_decided_before_a_cancel_landed_is_decided_again_and_refused(
    api: Any, monkeypatch: pytest.MonkeyPatch, parts: tuple[Any, Any, Any]
) -> None:
    runner, _, store = parts
    execution_id = pending_execution(api, monkeypatch, LOOP)
    runner.start(store, execution_id)
    decided_on: list[str] = []
    original = store.commit

    def cancel_first(execution: str, after: Any, events: Any, control: Any, **kwargs: Any) -> Any:
        # Given a cancel lands between the pause's read and its append
        monkeypatch.setattr(store, "commit", original)
        canceled = [event("execution.canceled", by={"sub": "alice", "name": "Alice"})]
        original(execution, after, canceled, after.control.after(canceled))
        return original(execution, after, events, control, **kwargs)

    def pause(tail: Any) -> Change:
        decided_on.append(tail.control.state)
        if tail.control.state != "RUNNING":
            raise Conflict("already ended")
        return Change([event("execution.pause_requested", by={"sub": "alice", "name": "Alice"})])

    monkeypatch.setattr(store, "commit", cancel_first)

    with pytest.raises(Conflict):
        record_change(store, execution_id, pause)

    # Then it was decided again on the newest group, and the cancel stands as the last event
    assert decided_on == ["RUNNING", "CANCELED"]
    assert [e.type for e in store.events(execution_id)][-1] == "execution.canceled"


# --- a crash between a group and its projections ----------------------------------------------------


def crash_after_the_group(monkeypatch: pytest.MonkeyPatch, store: Any) -> None:
    """The next projection raises once, as a Lambda that dies right after its append would."""
    original = store.project

    def crash(*args: Any, **kwargs: Any) -> None:
        monkeypatch.setattr(store, "project", original)
        raise RuntimeError("the node runner died here")

    monkeypatch.setattr(store, "project", crash)


def two_node_chunks(step_limits: Any) -> Any:
    """The node runner's limits with chunks of two node runs (the loop's 'tick' and 'enough')."""
    from stepwise.service.batches import Budget

    return dataclasses.replace(step_limits, budget=Budget(nodes=2))


def test_a_crash_before_the_projections_is_repaired_by_the_retried_step(
    api: Any, monkeypatch: pytest.MonkeyPatch, parts: tuple[Any, Any, Any]
) -> None:
    runner, step_limits, store = parts
    step_limits = two_node_chunks(step_limits)
    execution_id = pending_execution(api, monkeypatch, LOOP)
    crash_after_the_group(monkeypatch, store)

    # Given the step died after the group of its first chunk ('tick', 'enough') and before its projections
    with pytest.raises(RuntimeError, match="died here"):
        runner.step(store, step_limits, execution_id)
    assert store.variable(execution_id, "trail").value == ""  # the log says "x"; the item lags behind
    assert [item.nodeId for item in store.nodes(execution_id)] == []

    # When Step Functions retries the step
    assert runner.step(store, step_limits, execution_id, retried=True)["status"] == "done"

    # Then the retry wrote them first, and the run went on from the log (no node ran twice)
    assert store.variable(execution_id, "trail").value == "xxx"
    assert {item.nodeId: item.runs for item in store.nodes(execution_id)} == {"tick": 3, "enough": 3, "done": 1}
    ticks = [e for e in store.events(execution_id) if e.type == "node.completed" and e.nodeId == "tick"]
    assert [e.variables for e in ticks] == [{"trail": "x"}, {"trail": "xx"}, {"trail": "xxx"}]


def test_a_crash_before_the_projections_is_repaired_by_the_next_change_from_the_api(
    api: Any, monkeypatch: pytest.MonkeyPatch, parts: tuple[Any, Any, Any]
) -> None:
    runner, step_limits, store = parts
    execution_id = pending_execution(api, monkeypatch, LOOP)
    crash_after_the_group(monkeypatch, store)
    with pytest.raises(RuntimeError, match="died here"):
        runner.step(store, two_node_chunks(step_limits), execution_id)

    # When the owner pauses it (the next writer)
    assert api.post(f"/api/workflows/execute/{execution_id}/pause").status == 200

    # Then the dead step's projections are there, and the view shows its node run
    assert store.variable(execution_id, "trail").value == "x"
    view = api.get(f"/api/workflows/execute/{execution_id}").body["data"]
    assert view["nodeStates"]["tick"]["state"] == "COMPLETED"
    assert view["variables"]["trail"] == "x"
    assert view["pauseRequested"] is True


def test_a_view_of_an_execution_whose_summary_lags_behind_its_log_shows_the_log(
    api: Any, monkeypatch: pytest.MonkeyPatch, parts: tuple[Any, Any, Any]
) -> None:
    runner, _, store = parts
    execution_id = pending_execution(api, monkeypatch, LOOP)
    crash_after_the_group(monkeypatch, store)
    with pytest.raises(RuntimeError, match="died here"):
        runner.start(store, execution_id)
    assert store.get_execution(execution_id).state == "PENDING"

    assert api.get(f"/api/workflows/execute/{execution_id}").body["data"]["state"] == "RUNNING"
    assert store.get_execution(execution_id).state == "RUNNING"  # and the listing shows it too now


# --- what each node saw, rebuilt from the log --------------------------------------------------------


def test_the_variables_before_every_node_run_of_a_loop_are_rebuilt_from_its_events(
    api: Any, monkeypatch: pytest.MonkeyPatch, parts: tuple[Any, Any, Any]
) -> None:
    from stepwise import nodes

    runner, step_limits, store = parts
    seen: list[tuple[str, dict[str, Any]]] = []
    for kind in ("setVariables", "condition"):
        original = nodes.REGISTRY[kind]

        def spy(config: Any, context: Any, run: Any = original.run) -> Any:
            seen.append((context.node_id, dict(context.variables)))
            return run(config, context)

        monkeypatch.setitem(nodes.REGISTRY, kind, dataclasses.replace(original, run=spy))
    execution_id = pending_execution(api, monkeypatch, LOOP)

    run_to_the_end(runner, step_limits, store, execution_id)

    events = list(store.events(execution_id))
    runs = node_runs(events)
    assert (
        [node for node, _ in runs]
        == [node for node, _ in seen]
        == [
            "tick",
            "enough",
            "tick",
            "enough",
            "tick",
            "enough",
            "done",
        ]
    )
    for (node, run), (_, saw) in zip(runs, seen, strict=True):
        assert variables_before(events, run) == saw, f"{node} run {run}"


# --- what a node costs ------------------------------------------------------------------------------


@pytest.fixture
def dynamodb_calls(parts: tuple[Any, Any, Any]) -> Iterator[Counter[str]]:
    """Every DynamoDB call the store makes, by operation, while the test counts."""
    _, _, store = parts
    calls: Counter[str] = Counter()

    def count(model: Any, **kwargs: Any) -> None:
        calls[model.name] += 1

    store.client.meta.events.register("before-call.dynamodb", count)
    yield calls
    store.client.meta.events.unregister("before-call.dynamodb", count)


def item_bytes(item: dict[str, Any]) -> int:
    """An item's size as DynamoDB bills it: names and values (strings in UTF-8, numbers about 1 byte per 2 digits)."""
    size = 0
    for name, value in item.items():
        size += len(name.encode())
        if isinstance(value, str):
            size += len(value.encode())
        elif isinstance(value, bool):
            size += 1
        elif isinstance(value, int):
            size += len(str(value)) // 2 + 1
    return size


def test_nodes_that_set_one_small_variable_cost_under_three_writes_and_two_reads_each_whatever_the_others_weigh(
    api: Any, monkeypatch: pytest.MonkeyPatch, parts: tuple[Any, Any, Any], dynamodb_calls: Counter[str]
) -> None:
    from stepwise import stepfunctions
    from stepwise.store.values import VARIABLE_PREFIX

    runner, step_limits, store = parts
    setting = [{"id": f"set{i}", "type": "setVariables", "config": {"values": {f"v{i}": i}}} for i in range(9)]
    definition = {
        "name": "cost",
        "nodes": [
            {"id": "first", "type": "setVariables", "config": {"values": {"started": True}}},
            {"id": "use", "type": "setVariables", "config": {"values": {"greeting": "hello ${name}"}}},
            *setting,
        ],
    }
    workflow = api.post("/api/workflows", json_body=definition).body["data"]
    monkeypatch.setattr(stepfunctions, "start", lambda arn, execution_id: None)
    big = {"name": "Ada", "document": "x" * 150_000}
    execution_id = api.post(f"/api/workflows/execute/{workflow['id']}", json_body={"variables": big}).body["data"][
        "executionId"
    ]
    # Given a first step that marked it RUNNING and ran 'first' (its Lambda time ran short after that node)
    assert runner.step(store, step_limits, execution_id, time_left_ms=lambda: 0)["status"] == "continue"
    store.get_workflow_version(workflow["id"], 1)  # a warm node runner has it: versions are cached per process
    dynamodb_calls.clear()

    # When the next step runs the ten nodes left (one reads ${name}; each sets one small variable)
    assert runner.step(store, step_limits, execution_id)["status"] == "done"

    # Then: the newest group and the variable used are read, one group appended, the rest written in batches
    assert dict(dynamodb_calls) == {
        "Query": 2,  # the newest group; and the node items at the end (which nodes never ran)
        # VAR#name; whether a group follows the one appended (see ExecutionStore.project); and the owner's slot
        # counter, once the run gave its concurrency slot back (is a run waiting for it?)
        "GetItem": 3,
        "TransactWriteItems": 1,  # the group, with the slot it gives back
        "BatchGetItem": 1,  # the node items, to count their runs
        "BatchWriteItem": 1,  # ten variables and ten node runs
        "UpdateItem": 1,  # the EXECUTION item: COMPLETED
    }
    key = f"EXECUTION#{execution_id}"
    groups = list(store.query(key, sk_prefix="EVENT#"))
    items = [store.get(key, f"{VARIABLE_PREFIX}{name}") for name in ("greeting", *(f"v{i}" for i in range(9)))]
    items += [item for item in store.query(key, sk_prefix="NODE#") if item["nodeId"] != "first"]
    assert len(items) == 20
    assert all(item is not None and item_bytes(item) <= 1024 for item in items)  # 1 WCU each
    assert item_bytes(store.get(key, "EXECUTION")) <= 1024  # 1 WCU; the cancel poll reads it (1 RCU)
    write_units = -(-item_bytes(groups[-1]) // 1024) + len(items) + 1
    # The newest group, VAR#name, the check, the node items (found or not), the node items again at the end.
    read_units = -(-item_bytes(groups[-2]) // 4096) + 1 + 1 + 10 + -(-sum(map(item_bytes, items[10:])) // 4096)
    assert write_units / 10 <= 3
    assert read_units / 10 <= 2


# --- executions written before the log ----------------------------------------------------------------

T0, T1, T2 = "2030-01-01T00:00:00.000Z", "2030-01-01T00:00:00.010Z", "2030-01-01T00:00:00.013Z"


def write_the_old_way(store: Any, workflow_id: str, execution_id: str, state: str, **fields: Any) -> None:
    """An execution as the code before the log wrote it: one item with the variables, RUN# and LOG# items."""
    from stepwise.store.codec import to_json
    from stepwise.store.executions import index_keys
    from stepwise.store.table import Put

    key = f"EXECUTION#{execution_id}"
    record = {
        "PK": key,
        "SK": "EXECUTION",
        **index_keys("alice", workflow_id, execution_id),
        "id": execution_id,
        "workflowId": workflow_id,
        "workflowVersion": 1,
        "owner": "alice",
        "state": state,
        "startedAt": T0,
        "startedBy": "alice",
        "variables": to_json({"name": "Ada"}),
        "nodeRuns": 0,
        "maxNodeRuns": 1000,
        "pauseRequested": False,
        "revision": 2,
        "cursor": "greet",
        **fields,
    }
    store.put(Put(record))
    store.put(Put({"PK": key, "SK": f"LOG#{T0}#ab12", "logs": to_json([line(None, "Execution started", T0)])}))


def line(node: str | None, message: str, at: str) -> dict[str, Any]:
    return {"nodeId": node, "message": message, "level": "info", "timestamp": at}


def test_an_execution_written_before_the_log_reads_the_same_after_the_migration(
    api: Any, parts: tuple[Any, Any, Any]
) -> None:
    from stepwise.store.codec import to_json
    from stepwise.store.migrations import index_everything
    from stepwise.store.table import Put
    from tests.support.builders import simple_workflow

    _, _, store = parts
    workflow_id = api.post("/api/workflows", json_body=simple_workflow()).body["data"]["id"]
    execution_id = "exe_01J00000000000000000000A01"
    write_the_old_way(
        store,
        workflow_id,
        execution_id,
        "COMPLETED",
        completedAt=T2,
        nodeRuns=1,
        variables=to_json({"name": "Ada", "greeting": "Hello Ada"}),
        cursor=None,
    )
    run = {
        "run": 1,
        "nodeId": "greet",
        "state": "COMPLETED",
        "startedAt": T1,
        "completedAt": T2,
        "output": {"greeting": "Hello Ada"},
        "logs": [
            line("greet", "Node started: setVariables, run 1", T1),
            line("greet", "Node completed in 3 ms", T2),
            line(None, "Execution completed", T2),
        ],
    }
    store.put(Put({"PK": f"EXECUTION#{execution_id}", "SK": "RUN#000001", "body": to_json(run)}))
    before = api.get(f"/api/workflows/execute/{execution_id}")
    assert before.status == 404 and "stepwise.store.migrations" in before.body["error"]

    # When the migration runs (twice: the second finds nothing to do)
    first, again = index_everything(store), index_everything(store)

    # Then the execution reads as it did, its history is a log, and the old items are gone
    assert (first.logs, again.logs) == (1, 0)
    view = api.get(f"/api/workflows/execute/{execution_id}").body["data"]
    assert (view["state"], view["completedAt"], view["startedByName"]) == ("COMPLETED", T2, "alice")
    assert view["variables"] == {"name": "Ada", "greeting": "Hello Ada"}
    assert view["output"] == {"greeting": "Hello Ada"}
    greet = view["nodeStates"]["greet"]
    assert (greet["state"], greet["startedAt"], greet["completedAt"], greet["runs"]) == ("COMPLETED", T1, T2, 1)
    assert greet["output"] == {"greeting": "Hello Ada"}
    assert [entry["message"] for entry in view["logs"]] == [
        "Execution started",
        "Node started: setVariables, run 1",
        "Node completed in 3 ms",
        "Execution completed",
    ]
    events = api.get(f"/api/workflows/execute/{execution_id}/events").body["data"]["events"]
    assert [e["type"] for e in events] == [
        "execution.started",
        "execution.running",
        "node.started",
        "node.completed",
        "execution.completed",
    ]
    kinds = {item["SK"].split("#")[0] for item in store.query(f"EXECUTION#{execution_id}")}
    assert kinds == {"EXECUTION", "EVENT", "VAR", "NODE"}


def test_an_execution_in_flight_when_migrated_goes_on_from_its_log(api: Any, parts: tuple[Any, Any, Any]) -> None:
    from stepwise.store.migrations import index_everything
    from tests.support.builders import simple_workflow

    runner, step_limits, store = parts
    workflow_id = api.post("/api/workflows", json_body=simple_workflow()).body["data"]["id"]
    execution_id = "exe_01J00000000000000000000A02"
    write_the_old_way(store, workflow_id, execution_id, "RUNNING")

    index_everything(store)

    assert runner.step(store, step_limits, execution_id)["status"] == "done"
    view = api.get(f"/api/workflows/execute/{execution_id}").body["data"]
    assert (view["state"], view["variables"]["greeting"]) == ("COMPLETED", "Hello Ada")


def test_while_a_call_is_out_the_cancel_poll_reads_only_the_newest_group(
    api: Any, monkeypatch: pytest.MonkeyPatch, parts: tuple[Any, Any, Any]
) -> None:
    import time

    from tests.support.agent_server import AgentServer, Reply

    runner, step_limits, store = parts
    reads: list[tuple[float, str, dict[str, Any]]] = []

    def record(model: Any, params: dict[str, Any], **kwargs: Any) -> None:
        if model.name in ("GetItem", "Query", "Scan", "BatchGetItem"):
            reads.append((time.monotonic(), model.name, params))

    with AgentServer() as agent_server:
        agent_server.script("/agent", Reply(json={"ok": True}, delay=1.6))
        agent = api.post("/api/agents", json_body={"name": "slow", "endpoint": agent_server.url + "/agent"})
        definition = {
            "name": "slow",
            "variables": {"document": "x" * 150_000},
            "nodes": [
                {"id": "ask", "type": "agentTask", "config": {"agentId": agent.body["data"]["id"], "prompt": "x"}}
            ],
        }
        execution_id = pending_execution(api, monkeypatch, definition)
        runner.start(store, execution_id)
        store.client.meta.events.register("before-parameter-build.dynamodb", record)
        try:
            assert runner.step(store, step_limits, execution_id)["status"] == "done"
        finally:
            store.client.meta.events.unregister("before-parameter-build.dynamodb", record)
        asked = agent_server.requests[0].received_at

    # Then each read while the agent was thinking was the poll for a cancel or a takeover: the newest group of the
    # log (one small item: the node run's claim), whatever the variables weigh
    during = [(name, params) for at, name, params in reads if asked < at < asked + 1.5]
    assert len(during) >= 2
    for name, params in during:
        assert name == "Query" and params["Limit"] == 1 and params["ScanIndexForward"] is False, params
        assert params["ExpressionAttributeValues"][":prefix"] == {"S": "EVENT#"}, params
    newest = next(iter(store.query(f"EXECUTION#{execution_id}", sk_prefix="EVENT#", descending=True, limit=1)))
    assert item_bytes(newest) <= 4096  # 1 RCU


def test_a_pause_keeps_its_task_token_when_a_reader_wrote_its_state_first(
    api: Any, monkeypatch: pytest.MonkeyPatch, parts: tuple[Any, Any, Any]
) -> None:
    _, _, store = parts
    execution_id = pending_execution(api, monkeypatch, LOOP)
    tail = store.tail(execution_id)
    # Given a pause's group appended, and a GET that wrote its state (PAUSED) before the pause wrote its token
    paused = [event("execution.paused", reason="requested")]
    group = store.append(execution_id, tail, paused, tail.control.after(paused))
    assert api.get(f"/api/workflows/execute/{execution_id}").body["data"]["state"] == "PAUSED"

    # When the pause writes its projection, with the token
    store.project(execution_id, group, before=tail.control, task_token="token-1")

    # Then the token is kept: resume and cancel need it
    assert store.get_execution(execution_id).taskToken == "token-1"
