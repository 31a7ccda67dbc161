"""The event log's pure rules: how events change the control state, the variables rebuilt from events, events
as the API shows them, log lines read from events, and the long-poll's waiting (a fake log, a fake clock)."""

from __future__ import annotations

from typing import Any

import pytest

from stepwise.identity import Caller
from stepwise.models.events import Event, ValueRef, new_event, public_event
from stepwise.models.records import Control, ExecutionRecord, Group
from stepwise.replay import node_runs, variables_before
from stepwise.service import views
from stepwise.service.log_lines import labels, log_lines

AT = "2030-01-01T00:00:00.000Z"
ALICE = {"sub": "alice", "name": "Alice"}


def numbered(*events: Event) -> list[Event]:
    return [event.numbered(seq) for seq, event in enumerate(events, start=1)]


def started(**variables: Any) -> Event:
    return new_event(
        "execution.started", AT, workflowId="wf_1", workflowVersion=1, startedBy="alice", by=ALICE, variables=variables
    )


def node_run(node: str, run: int, set_variables: dict[str, Any], next_node: str | None) -> list[Event]:
    return [
        new_event("node.started", AT, nodeId=node, run=run),
        new_event("node.completed", AT, nodeId=node, run=run, startedAt=AT, variables=set_variables, next=next_node),
    ]


def control(**fields: Any) -> Control:
    return Control.model_validate(
        {"state": "RUNNING", "workflowId": "wf_1", "workflowVersion": 1, "maxNodeRuns": 10, **fields}
    )


# --- the control state ------------------------------------------------------------------------------


def test_a_node_run_moves_the_cursor_and_counts_the_run() -> None:
    before = control(cursor="a", nodeRuns=2)

    started_only = before.after([new_event("node.started", AT, nodeId="a", run=3)])
    done = before.after(node_run("a", 3, {"x": 1}, "b"))

    assert started_only.activeNode is not None and (started_only.activeNode.nodeId, started_only.activeNode.run) == (
        "a",
        3,
    )
    assert (done.cursor, done.nodeRuns, done.activeNode) == ("b", 3, None)
    assert before.cursor == "a"  # the control state it started from is left as it was


def test_a_pause_is_requested_withdrawn_taken_and_resumed() -> None:
    running = control()
    requested = running.after([new_event("execution.pause_requested", AT, by=ALICE)])
    withdrawn = requested.after([new_event("execution.pause_withdrawn", AT, by=ALICE)])
    paused = requested.after([new_event("execution.paused", AT, reason="requested")])
    resumed = paused.after([new_event("execution.resumed", AT, by=ALICE)])

    assert (requested.state, requested.pauseRequested) == ("RUNNING", True)
    assert withdrawn.pauseRequested is False
    assert (paused.state, paused.pauseRequested) == ("PAUSED", False)
    assert resumed.state == "RUNNING"


def test_a_resume_at_an_approval_records_who_approved() -> None:
    waiting = control().after(
        [
            new_event("node.started", AT, nodeId="review", run=1),
            new_event("node.waiting", AT, nodeId="review", run=1, waitingFor="approval", seconds=60),
            new_event("execution.paused", AT, reason="approval", nodeId="review", run=1),
        ]
    )

    approved = waiting.after([new_event("execution.resumed", "2030-01-01T00:01:00.000Z", by=ALICE, nodeId="review")])

    active = approved.activeNode
    assert active is not None
    assert (active.waitingFor, active.approvedBy, active.approvedByName) == ("approval", "alice", "Alice")
    assert active.approvedAt == "2030-01-01T00:01:00.000Z"


@pytest.mark.parametrize(
    ("last", "state"),
    [
        (new_event("execution.completed", AT), "COMPLETED"),
        (new_event("execution.failed", AT, error="boom"), "FAILED"),
        (new_event("execution.canceled", AT, by=ALICE), "CANCELED"),
    ],
)
def test_a_terminal_event_ends_the_run(last: Event, state: str) -> None:
    running = control(pauseRequested=True).after([new_event("node.started", AT, nodeId="a", run=1)])

    ended = running.after([last])

    assert (ended.state, ended.completedAt, ended.activeNode, ended.pauseRequested) == (state, AT, None, False)
    assert Group(first=1, last=1, events=[last], control=ended).terminal


def test_a_superseded_runs_failure_leaves_the_newer_run_active() -> None:
    retried = control(nodeRuns=1).after([new_event("node.started", AT, nodeId="a", run=2)])

    after = retried.after([new_event("node.failed", AT, nodeId="a", run=1, error="superseded")])

    assert after.activeNode is not None and after.activeNode.run == 2


def test_a_run_taken_over_keeps_its_number_and_start_and_names_its_new_claim() -> None:
    first = control(nodeRuns=1).after(
        [new_event("node.started", AT, nodeId="a", run=2, claim="one", claimUntil="2030-01-01T00:05:30.000Z")]
    )
    later = "2030-01-01T00:06:00.000Z"

    again = first.after(
        [
            new_event(
                "node.started",
                later,
                nodeId="a",
                run=2,
                startedAt=AT,
                claim="two",
                claimUntil="2030-01-01T00:12:00.000Z",
            )
        ]
    )

    assert again.activeNode is not None
    assert (again.nodeRuns, again.activeNode.run, again.activeNode.startedAt) == (2, 2, AT)
    assert again.activeNode.claim == "two"
    shown = public_event(
        new_event("node.started", later, nodeId="a", run=2, claim="two", claimUntil=later).numbered(3), "exe_1"
    )
    assert "claim" not in shown.model_dump() and "claimUntil" not in shown.model_dump()


def test_each_restart_counts_and_its_line_says_why() -> None:
    restarted = new_event(
        "execution.restarted", AT, message="its Step Functions run exe_1 does not exist", runName="exe_1-1"
    )

    after = control().after([restarted]).after([restarted.model_copy(update={"runName": "exe_1-2"})])

    assert after.restarts == 2
    (line,) = log_lines([restarted], labels(None))
    assert (line.level, line.message) == (
        "warning",
        "Execution restarted as Step Functions run exe_1-1: its Step Functions run exe_1 does not exist",
    )


# --- replay -----------------------------------------------------------------------------------------


def test_the_variables_before_each_run_of_a_loop_are_the_fold_of_the_events_before_it() -> None:
    events = numbered(
        started(trail="", keep=1),
        *node_run("tick", 1, {"trail": "x"}, "check"),
        *node_run("check", 2, {}, "tick"),
        *node_run("tick", 3, {"trail": "xx"}, "check"),
        new_event("log", AT, nodeId="tick", run=3, level="info", message="noise"),
        *node_run("check", 4, {}, None),
    )

    assert node_runs(events) == [("tick", 1), ("check", 2), ("tick", 3), ("check", 4)]
    assert variables_before(events, 1) == {"trail": "", "keep": 1}
    assert variables_before(events, 2) == {"trail": "x", "keep": 1}
    assert variables_before(events, 3) == {"trail": "x", "keep": 1}
    assert variables_before(events, 4) == {"trail": "xx", "keep": 1}
    with pytest.raises(LookupError):
        variables_before(events, 5)


def test_a_value_kept_in_s3_is_loaded_when_the_replay_is_given_a_loader() -> None:
    big = new_event("node.completed", AT, nodeId="a", run=1, refs={"doc": {"key": "k/1", "bytes": 9000}})
    events = numbered(
        started(),
        new_event("node.started", AT, nodeId="a", run=1),
        big,
        new_event("node.started", AT, nodeId="b", run=2),
    )

    assert variables_before(events, 2) == {"doc": ValueRef(key="k/1", bytes=9000)}
    assert variables_before(events, 2, load=lambda ref: f"loaded {ref.key}") == {"doc": "loaded k/1"}


# --- what the API shows -----------------------------------------------------------------------------


def test_an_event_shows_values_kept_in_s3_as_references_and_its_output_once() -> None:
    completed = new_event(
        "node.completed",
        AT,
        nodeId="ask",
        run=2,
        variables={"small": 1},
        refs={"answer": {"key": "executions/exe_1/5/answer.json", "bytes": 20_000}},
        outputFrom="answer",
        next=None,
    ).numbered(5)

    shown = public_event(completed, "exe_1").model_dump()

    reference = {"$ref": "/api/workflows/execute/exe_1/variables/answer?seq=5", "bytes": 20_000}
    assert shown["variables"] == {"small": 1, "answer": reference}
    assert shown["output"] == reference
    assert "refs" not in shown and "outputFrom" not in shown
    assert shown["next"] is None  # set, so shown (a last node's next is null)


def test_events_read_as_the_log_lines_the_execution_view_shows() -> None:
    events = numbered(
        started(),
        new_event("execution.running", AT),
        *node_run("a", 1, {}, None)[:1],
        new_event("log", AT, nodeId="a", run=1, level="warning", message="slow"),
        node_run("a", 1, {}, None)[1].model_copy(update={"durationMs": 12}),
        new_event("execution.canceled", AT, by=ALICE),
    )

    lines = [(line.nodeId, line.level, line.message) for line in log_lines(events, labels(None))]

    assert lines == [
        (None, "info", "Execution started"),
        ("a", "info", "Node started: a, run 1"),
        ("a", "warning", "slow"),
        ("a", "info", "Node completed in 12 ms"),
        (None, "info", "Execution canceled by Alice"),
    ]


# --- the long-poll ----------------------------------------------------------------------------------


class FakeLog:
    """An execution's log in memory, with the store methods the events route reads."""

    def __init__(self, groups: list[Group]) -> None:
        self.groups = groups
        self.reads = 0

    def get_execution(self, execution_id: str) -> ExecutionRecord:
        return ExecutionRecord(
            id=execution_id,
            workflowId="wf_1",
            workflowVersion=1,
            owner="alice",
            state="RUNNING",
            startedAt=AT,
            startedBy="alice",
        )

    def group_holding(self, execution_id: str, seq: int) -> Group | None:
        return next((group for group in self.groups if group.first <= seq <= group.last), None)

    def groups_after(self, execution_id: str, after: int, *, limit: int | None = None) -> list[Group]:
        self.reads += 1
        return [group for group in self.groups if group.first > after][:limit]

    def tail(self, execution_id: str) -> Group | None:
        return self.groups[-1] if self.groups else None


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []
        self.on_sleep: Any = None

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds
        if self.on_sleep:
            self.on_sleep(self.now)


def group(first: int, *events: Event, state: str = "RUNNING") -> Group:
    numbered_events = [event.numbered(first + index) for index, event in enumerate(events)]
    return Group(first=first, last=first + len(events) - 1, events=numbered_events, control=control(state=state))


def poll(log: FakeLog, clock: FakeClock, **query: Any) -> Any:
    return views.events(
        log,  # type: ignore[arg-type]
        Caller("alice"),
        "exe_01J00000000000000000000000",
        sleep=clock.sleep,
        clock=lambda: clock.now,
        **{"after": 0, "limit": 100, "wait_seconds": 0, **query},
    )


def test_with_events_after_the_cursor_it_answers_at_once() -> None:
    log, clock = FakeLog([group(1, started()), group(2, new_event("execution.running", AT))]), FakeClock()

    answer = poll(log, clock, after=1, wait_seconds=20)

    assert [event.seq for event in answer.events] == [2]
    assert (answer.lastSeq, answer.state, clock.slept) == (2, "RUNNING", [])


def test_without_one_it_waits_looking_again_a_little_later_each_time_and_answers_none() -> None:
    log, clock = FakeLog([group(1, started())]), FakeClock()

    answer = poll(log, clock, after=1, wait_seconds=10)

    assert (answer.events, answer.lastSeq) == ([], 1)
    assert clock.now == pytest.approx(10)
    assert clock.slept[0] == views.FIRST_LOOK_SECONDS and max(clock.slept) <= views.LAST_LOOK_SECONDS
    assert len(clock.slept) < 30  # 10 s of waiting reads the log about two dozen times, not 60


def test_an_event_that_comes_while_it_waits_is_answered_at_the_next_look() -> None:
    log, clock = FakeLog([group(1, started())]), FakeClock()

    def happens(now: float) -> None:
        if now >= 3 and len(log.groups) == 1:
            log.groups.append(group(2, new_event("execution.completed", AT), state="COMPLETED"))

    clock.on_sleep = happens

    answer = poll(log, clock, after=1, wait_seconds=20)

    assert [event.type for event in answer.events] == ["execution.completed"]
    assert answer.state == "COMPLETED"
    assert 3 <= clock.now < 3 + views.LAST_LOOK_SECONDS + 0.01


def test_a_limit_cuts_the_answer_and_the_cursor_goes_on_from_there() -> None:
    log = FakeLog([group(1, started(), new_event("execution.running", AT), new_event("execution.completed", AT))])

    first = poll(log, FakeClock(), limit=2)
    rest = poll(log, FakeClock(), after=first.lastSeq, limit=2)

    assert ([e.seq for e in first.events], first.lastSeq) == ([1, 2], 2)
    assert ([e.seq for e in rest.events], rest.lastSeq) == ([3], 3)
