"""Where a rerun begins in its source's log: the variables rebuilt as they were, and the nodes it reuses."""

from __future__ import annotations

from typing import Any

import pytest

from stepwise.errors import BadRequest, Conflict
from stepwise.models.events import Event, ValueRef, new_event
from stepwise.models.execution import RerunOf
from stepwise.models.records import Control, Group
from stepwise.service import reruns
from stepwise.service.reruns import began_at, carried_variables, cut, failed_node, reused_events

AT = "2026-01-01T00:00:00.000Z"


def log(*specs: tuple[str, dict[str, Any]]) -> list[Event]:
    """Events numbered 1, 2, 3, ... in the order given."""
    return [new_event(kind, AT, **fields).numbered(seq) for seq, (kind, fields) in enumerate(specs, start=1)]


def started(variables: dict[str, Any], **fields: Any) -> tuple[str, dict[str, Any]]:
    return "execution.started", {"variables": variables, **fields}


def node_run(node_id: str, run: int, sets: dict[str, Any], **fields: Any) -> list[tuple[str, dict[str, Any]]]:
    return [
        ("node.started", {"nodeId": node_id, "run": run}),
        ("node.completed", {"nodeId": node_id, "run": run, "startedAt": AT, "variables": sets, **fields}),
    ]


# a sets x, b sets y from x, c fails.
CHAIN = log(
    started({"name": "Ada", "x": 0}),
    *node_run("a", 1, {"x": 1}),
    *node_run("b", 2, {"y": "1-Ada", "x": 2}),
    ("node.started", {"nodeId": "c", "run": 3}),
    ("node.failed", {"nodeId": "c", "run": 3, "error": "boom"}),
    ("execution.failed", {"error": "Node 'c' failed: boom"}),
)


def test_the_variables_are_those_just_before_the_node_began_with_what_each_node_before_set() -> None:
    assert cut("exe_s", CHAIN, "a", begin_node="a").variables == {"name": "Ada", "x": 0}
    assert cut("exe_s", CHAIN, "b", begin_node="a").variables == {"name": "Ada", "x": 1}
    assert cut("exe_s", CHAIN, "c", begin_node="a").variables == {"name": "Ada", "x": 2, "y": "1-Ada"}


def test_the_nodes_completed_before_the_node_began_are_reused_in_order() -> None:
    where = cut("exe_s", CHAIN, "c", begin_node="a")

    assert [(e.nodeId, e.seq) for e in where.reused] == [("a", 3), ("b", 5)]
    assert cut("exe_s", CHAIN, "a", begin_node="a").reused == []


# tick runs three times, with check between; then it fails at done.
LOOP = log(
    started({"n": 0}),
    *node_run("tick", 1, {"n": 1}),
    *node_run("check", 2, {}),
    *node_run("tick", 3, {"n": 2}),
    *node_run("check", 4, {}),
    *node_run("tick", 5, {"n": 3}),
    *node_run("check", 6, {}),
    ("node.started", {"nodeId": "done", "run": 7}),
    ("node.failed", {"nodeId": "done", "run": 7, "error": "boom"}),
)


def test_a_node_in_a_loop_is_cut_at_its_latest_run_and_each_node_before_reused_from_its_latest_completion() -> None:
    where = cut("exe_s", LOOP, "tick", begin_node="tick")

    # The third run of tick saw n = 2; check's latest completion before it is its second run
    assert where.variables == {"n": 2}
    assert [(e.nodeId, e.run) for e in where.reused] == [("check", 4)]


def test_no_node_means_where_the_source_began_with_its_first_variables() -> None:
    where = cut("exe_s", LOOP, None, begin_node="tick")

    assert (where.from_node, where.variables, where.reused) == ("tick", {"n": 0}, [])


def test_where_a_run_that_never_got_going_began_is_still_reached() -> None:
    never = log(started({"n": 0}), ("execution.failed", {"error": "could not be started"}))

    assert cut("exe_s", never, "first", begin_node="first").variables == {"n": 0}
    with pytest.raises(BadRequest, match="execution exe_s never reached node 'second'"):
        cut("exe_s", never, "second", begin_node="first")


def test_a_node_the_source_never_reached_is_refused() -> None:
    with pytest.raises(BadRequest, match=r"^fromNode: execution exe_s never reached node 'd'; it cannot begin there$"):
        cut("exe_s", CHAIN, "d", begin_node="a")


def test_values_kept_in_s3_stay_references_to_be_copied() -> None:
    ref = ValueRef(key="executions/exe_s/0000000003/doc@ab.json", bytes=20_000)
    events = log(
        started({"n": 0}),
        ("node.started", {"nodeId": "fetch", "run": 1}),
        ("node.completed", {"nodeId": "fetch", "run": 1, "startedAt": AT, "variables": {}, "refs": {"doc": ref}}),
        ("node.started", {"nodeId": "use", "run": 2}),
    )

    assert cut("exe_s", events, "use", begin_node="fetch").variables == {"n": 0, "doc": ref}


# A rerun of CHAIN from c: a and b reused, its variables those before c.
RERUN = log(
    started({"name": "Ada", "x": 2, "y": "1-Ada"}, rerunOf=RerunOf(executionId="exe_s", fromNode="c")),
    ("node.reused", {"nodeId": "a", "startedAt": AT, "completedAt": AT, "output": {"x": 1}}),
    ("node.reused", {"nodeId": "b", "startedAt": AT, "completedAt": AT, "output": {"y": "1-Ada", "x": 2}}),
    *node_run("c", 1, {"z": 3}),
    ("node.started", {"nodeId": "d", "run": 2}),
    ("node.failed", {"nodeId": "d", "run": 2, "error": "boom"}),
)


def test_a_rerun_of_a_rerun_passes_on_the_nodes_reused_and_begins_where_the_rerun_began() -> None:
    assert began_at(RERUN, "a") == "c"
    later = cut("exe_r", RERUN, "d", begin_node="c")
    assert later.variables == {"name": "Ada", "x": 2, "y": "1-Ada", "z": 3}
    assert [(e.type, e.nodeId) for e in later.reused] == [
        ("node.reused", "a"),
        ("node.reused", "b"),
        ("node.completed", "c"),
    ]

    again = cut("exe_r", RERUN, None, begin_node="c")
    assert (again.from_node, [e.nodeId for e in again.reused]) == ("c", ["a", "b"])
    with pytest.raises(BadRequest, match="node 'a' did not run in execution exe_r, which reused it from exe_s"):
        cut("exe_r", RERUN, "a", begin_node="c")


def group(events: list[Event]) -> Group:
    control = Control(state="FAILED", workflowId="wf_x", workflowVersion=1, maxNodeRuns=10)
    return Group(first=events[0].seq, last=events[-1].seq, events=events, control=control)


def test_the_failed_node_is_the_one_whose_failure_ended_the_execution() -> None:
    assert failed_node([group(CHAIN[:5]), group(CHAIN[5:])]) == "c"
    assert failed_node([group(CHAIN[:7])]) is None  # not ended
    canceled_between_nodes = log(started({}), *node_run("a", 1, {}), ("execution.canceled", {}))
    assert failed_node([group(canceled_between_nodes)]) is None


def test_reused_nodes_keep_the_sources_times_and_output_and_leave_out_nodes_not_in_the_version() -> None:
    where = cut("exe_s", CHAIN, "c", begin_node="a")
    completed_b = where.reused[1].model_copy(update={"startedAt": "2026-01-01T00:00:01.000Z", "outputFrom": "*"})

    reused = reused_events("exe_s", [where.reused[0], completed_b], {"b", "c"})

    assert [(e.type, e.nodeId, e.startedAt, e.completedAt, e.output) for e in reused] == [
        ("node.reused", "b", "2026-01-01T00:00:01.000Z", AT, {"y": "1-Ada", "x": 2})
    ]


def test_reused_outputs_past_the_budget_become_references_to_the_sources_values_biggest_first(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(reruns, "REUSED_OUTPUTS_BYTES", 1_000)
    events = log(
        started({}),
        *node_run("small", 1, {"s": "x" * 300}, outputFrom="s"),
        *node_run("big", 2, {"b": "x" * 900}, outputFrom="b"),
    )

    reused = reused_events("exe_s", [events[2], events[4]], {"small", "big"})

    assert reused[0].output == "x" * 300
    assert reused[1].output == {"$ref": "/api/workflows/execute/exe_s/variables/b?seq=5", "bytes": 902}


class FakeBlobs:
    """What the rerun asks of S3: copies and puts, recorded; a key named in ``missing`` holds nothing."""

    def __init__(self, missing: set[str] | None = None) -> None:
        self.copies: list[tuple[str, str]] = []
        self.puts: dict[str, Any] = {}
        self.missing = missing or set()

    def copy(self, source_key: str, key: str) -> None:
        from stepwise.blobs import BlobNotFound

        if source_key in self.missing:
            raise BlobNotFound(source_key)
        self.copies.append((source_key, key))

    def put_json(self, key: str, value: Any) -> int:
        self.puts[key] = value
        return len(str(value)) + 2


def test_values_kept_in_s3_are_copied_and_inline_ones_past_the_budget_put_biggest_first() -> None:
    blobs = FakeBlobs()
    ref = ValueRef(key="executions/exe_s/0000000003/doc@ab.json", bytes=20_000)
    variables = {"doc": ref, "a": "x" * 600, "b": "y" * 500, "c": "z" * 10}

    inline, refs = carried_variables(blobs, "exe_new", variables, inline_budget=700)

    assert blobs.copies == [(ref.key, "executions/exe_new/0000000001/doc.json")]
    assert refs["doc"] == ValueRef(key="executions/exe_new/0000000001/doc.json", bytes=20_000)
    assert inline == {"b": "y" * 500, "c": "z" * 10}
    assert blobs.puts == {"executions/exe_new/0000000001/a.json": "x" * 600}
    assert refs["a"].key == "executions/exe_new/0000000001/a.json"


def test_a_value_gone_from_s3_is_a_conflict_that_says_how_to_go_on() -> None:
    ref = ValueRef(key="executions/exe_s/0000000003/doc@ab.json", bytes=20_000)

    with pytest.raises(Conflict, match=r"variable 'doc' is no longer kept .*; set it in the rerun's variables"):
        carried_variables(FakeBlobs({ref.key}), "exe_new", {"doc": ref}, inline_budget=1_000)
