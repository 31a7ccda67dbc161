"""The events route as a watcher uses it: every event in order with no gap, by cursor, long-polled.

The API function answers in process (the ``api`` fixture); executions run on moto with the real ASL, or are
driven by the test through the node runner (``pending_execution``) when the test must decide when an event
happens.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from stepwise.clock import parse_iso
from tests.support.builders import pending_execution, wait_for_state

TERMINAL_EVENTS = {"execution.completed", "execution.failed", "execution.canceled"}
# tick runs three times: trail grows "x", "xx", "xxx", and the condition leaves the loop at "xxx".
LOOP = {
    "name": "loop",
    "variables": {"trail": ""},
    "nodes": [
        {"id": "tick", "type": "setVariables", "config": {"values": {"trail": "${trail}x"}}},
        {
            "id": "enough",
            "type": "condition",
            "config": {"left": "${trail}", "op": "eq", "right": "xxx", "then": "done", "else": "tick"},
        },
        {"id": "done", "type": "setVariables", "config": {"values": {"finished": True}}},
    ],
}


def run(api: Any, definition: dict[str, Any], variables: dict[str, Any] | None = None) -> str:
    workflow = api.post("/api/workflows", json_body=definition)
    assert workflow.status == 201, workflow.body
    started = api.post(
        f"/api/workflows/execute/{workflow.body['data']['id']}", json_body={"variables": variables or {}}
    )
    assert started.status == 202, started.body
    return str(started.body["data"]["executionId"])


def page(api: Any, execution_id: str, **query: Any) -> dict[str, Any]:
    path = f"/api/workflows/execute/{execution_id}/events"
    if query:
        path += "?" + "&".join(f"{name}={value}" for name, value in query.items())
    answer = api.get(path)
    assert answer.status == 200, answer.body
    assert answer.body["success"] is True
    return dict(answer.body["data"])


def every_event(api: Any, execution_id: str, limit: int = 100) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    after = 0
    while True:
        answer = page(api, execution_id, after=after, limit=limit)
        if not answer["events"]:
            return events
        assert answer["lastSeq"] == answer["events"][-1]["seq"]
        events.extend(answer["events"])
        after = answer["lastSeq"]


def test_a_loops_history_holds_every_run_of_every_node_in_order_with_no_gap(api: Any) -> None:
    # Given a workflow whose first node runs three times
    execution_id = run(api, LOOP)
    execution = wait_for_state(api, execution_id, {"COMPLETED", "FAILED"})
    assert execution["state"] == "COMPLETED", execution["error"]

    # When a watcher reads its events, a few at a time
    events = every_event(api, execution_id, limit=4)

    # Then they are numbered 1, 2, 3, ... with no gap, and the terminal event is the last
    assert [event["seq"] for event in events] == list(range(1, len(events) + 1))
    assert events[0]["type"] == "execution.started"
    assert events[0]["variables"] == {"trail": ""}
    assert events[0]["by"] == {"sub": "alice", "name": "alice"}
    assert events[-1]["type"] == "execution.completed"
    assert [event["type"] for event in events].count("execution.completed") == 1
    # every run of every node, in the order they ran, each with what it set
    runs = [(e["nodeId"], e["run"]) for e in events if e["type"] == "node.completed"]
    assert runs == [("tick", 1), ("enough", 2), ("tick", 3), ("enough", 4), ("tick", 5), ("enough", 6), ("done", 7)]
    trails = [e["variables"]["trail"] for e in events if e["type"] == "node.completed" and e["nodeId"] == "tick"]
    assert trails == ["x", "xx", "xxx"]
    started = [(e["nodeId"], e["run"]) for e in events if e["type"] == "node.started"]
    assert started == runs
    # the view shows the latest run of each node and how many runs it had
    states = execution["nodeStates"]
    assert (states["tick"]["runs"], states["enough"]["runs"], states["done"]["runs"]) == (3, 3, 1)
    assert states["enough"]["output"] == {"result": True, "next": "done"}
    assert execution["variables"] == {"trail": "xxx", "finished": True}


def test_a_waiting_poll_with_nothing_new_answers_none_after_the_wait(api: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given an execution that has not moved since its start (its state machine never runs here)
    execution_id = pending_execution(api, monkeypatch, LOOP)
    last = page(api, execution_id)["lastSeq"]

    began = time.monotonic()
    answer = page(api, execution_id, after=last, waitSeconds=1)

    assert answer == {"events": [], "lastSeq": last, "state": "PENDING"}
    assert 0.9 <= time.monotonic() - began < 3


def test_an_ended_execution_answers_at_once_and_never_past_its_last_event(api: Any) -> None:
    execution_id = run(api, LOOP)
    wait_for_state(api, execution_id, {"COMPLETED"})
    last = page(api, execution_id, limit=500)["lastSeq"]

    began = time.monotonic()
    answer = page(api, execution_id, after=last, waitSeconds=5)
    beyond = page(api, execution_id, after=last + 100, waitSeconds=5)

    # Nothing more can come: no wait, and a cursor past the end is brought back to it
    assert answer == {"events": [], "lastSeq": last, "state": "COMPLETED"}
    assert beyond == {"events": [], "lastSeq": last, "state": "COMPLETED"}
    assert time.monotonic() - began < 2


def test_a_cursor_in_the_middle_of_a_group_goes_on_from_the_next_event(api: Any) -> None:
    execution_id = run(api, LOOP)
    wait_for_state(api, execution_id, {"COMPLETED"})
    everything = page(api, execution_id, limit=500)["events"]

    for after in range(len(everything)):
        rest = page(api, execution_id, after=after, limit=500)["events"]
        assert [event["seq"] for event in rest] == list(range(after + 1, len(everything) + 1))


def test_a_long_poll_answers_within_a_second_of_the_next_event(api: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from stepwise import wiring
    from stepwise.service import runner

    # Given an execution whose nodes the test runs, and a watcher that has seen every event so far
    execution_id = pending_execution(api, monkeypatch, LOOP)
    seen = page(api, execution_id)["lastSeq"]
    answers: list[tuple[float, dict[str, Any]]] = []

    def watch() -> None:
        answer = page(api, execution_id, after=seen, waitSeconds=10)
        answers.append((time.monotonic(), answer))

    watcher = threading.Thread(target=watch)
    watcher.start()
    time.sleep(1.5)
    assert not answers  # nothing happened yet: it waits

    # When the execution starts (the next event)
    runner.start(wiring.node_runner().store, execution_id)
    happened = time.monotonic()
    watcher.join(10)

    # Then the watcher hears of it within a second, with that event and nothing before it
    assert answers, "the long-poll never answered"
    answered_at, answer = answers[0]
    assert answered_at - happened < 1.0
    assert [event["type"] for event in answer["events"]] == ["execution.running"]
    assert answer["events"][0]["seq"] == seen + 1
    assert answer["state"] == "RUNNING"


def test_events_are_the_owners_and_an_admins_only(api: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    execution_id = pending_execution(api, monkeypatch, LOOP)
    path = f"/api/workflows/execute/{execution_id}/events"

    assert api.get(path, user="mallory").status == 403
    assert api.get(path, user="root", groups=["admin"]).status == 200
    assert api.get(path, user=None).status == 401
    unknown = api.get("/api/workflows/execute/exe_01J00000000000000000000000/events")
    assert (unknown.status, unknown.body["error"]) == (404, "Execution exe_01J00000000000000000000000 not found")
    assert api.get(f"/api/workflows/execute/{execution_id}/variables/trail", user="mallory").status == 403


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("waitSeconds=26", "waitSeconds"),
        ("after=-1", "after"),
        ("since=3", "unknown query parameter 'since'"),
    ],
)
def test_a_bad_cursor_limit_or_wait_is_a_400_that_names_it(
    api: Any, monkeypatch: pytest.MonkeyPatch, query: str, expected: str
) -> None:
    execution_id = pending_execution(api, monkeypatch, LOOP)

    answer = api.get(f"/api/workflows/execute/{execution_id}/events?{query}")

    assert answer.status == 400
    assert expected in answer.body["error"]


def test_a_cancel_is_the_last_event_and_names_who_canceled(api: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    execution_id = pending_execution(api, monkeypatch, LOOP)

    assert api.delete(f"/api/workflows/execute/{execution_id}").status == 200

    events = page(api, execution_id)["events"]
    assert [event["type"] for event in events] == [
        "execution.started",
        "node.skipped",
        "node.skipped",
        "node.skipped",
        "execution.canceled",
    ]
    assert events[-1]["by"] == {"sub": "alice", "name": "alice"}
    view = api.get(f"/api/workflows/execute/{execution_id}").body["data"]
    assert (view["startedBy"], view["startedByName"]) == ("alice", "alice")
    assert any(line["message"] == "Execution canceled by alice" for line in view["logs"])


def test_a_variable_reads_as_it_is_now_and_as_an_event_set_it(api: Any) -> None:
    execution_id = run(api, LOOP)
    wait_for_state(api, execution_id, {"COMPLETED"})
    events = page(api, execution_id, limit=500)["events"]
    first_tick = next(e for e in events if e["type"] == "node.completed" and e["nodeId"] == "tick")
    base = f"/api/workflows/execute/{execution_id}/variables"

    assert api.get(f"{base}/trail").body == {"success": True, "data": "xxx"}
    assert api.get(f"{base}/trail?seq={first_tick['seq']}").body["data"] == "x"
    assert api.get(f"{base}/trail?seq=1").body["data"] == ""
    assert api.get(f"{base}/nothing").status == 404
    assert api.get(f"{base}/finished?seq=1").status == 404


def test_event_times_follow_their_order(api: Any) -> None:
    execution_id = run(api, LOOP)
    wait_for_state(api, execution_id, {"COMPLETED"})

    events = page(api, execution_id, limit=500)["events"]

    times = [parse_iso(event["at"]) for event in events if event["type"] != "node.skipped"]
    assert times == sorted(times)


def test_who_asked_for_a_pause_and_who_resumed_are_named_in_the_events(
    api: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from stepwise import stepfunctions, wiring
    from stepwise.service import runner

    wired = wiring.node_runner()
    execution_id = pending_execution(api, monkeypatch, LOOP)
    runner.start(wired.store, execution_id)
    monkeypatch.setattr(stepfunctions, "resume", lambda token, output: True)

    # alice asks for a pause; the run takes it at its next node boundary; she resumes it
    assert api.post(f"/api/workflows/execute/{execution_id}/pause").status == 200
    assert runner.step(wired.store, wired.step_limits, execution_id)["status"] == "pause"
    runner.pause(wired.store, execution_id, "token-1")
    assert api.post(f"/api/workflows/execute/{execution_id}/resume").status == 200

    events = page(api, execution_id)["events"]
    alice = {"sub": "alice", "name": "alice"}
    assert [(e["type"], e.get("by"), e.get("reason")) for e in events[-4:]] == [
        ("execution.pause_requested", alice, None),
        ("execution.paused", alice, "requested"),
        ("execution.dequeued", None, None),  # the resume took the run's concurrency slot again
        ("execution.resumed", alice, None),
    ]
    messages = [line["message"] for line in api.get(f"/api/workflows/execute/{execution_id}").body["data"]["logs"]]
    assert messages[-4:] == [
        "Pause requested by alice: it pauses before its next node",
        "Execution paused, as alice asked",
        "A concurrency slot is free: it goes on",
        "Execution resumed by alice",
    ]
