"""A step's batch: what it holds, when it appends a chunk, and what a lost race does to it (a fake log)."""

from __future__ import annotations

from typing import Any

import pytest

from stepwise.models.events import Event, new_event
from stepwise.models.records import Control, Group
from stepwise.service.batches import Batch, BatchLost, Budget
from stepwise.store import SeqTaken

AT = "2030-01-01T00:00:00.000Z"


class FakeLog:
    """The store's commit and tail over a list of groups; ``taken`` makes the next commit lose its seq."""

    def __init__(self, control: Control) -> None:
        self.groups = [Group(first=1, last=1, events=[new_event("execution.running", AT).numbered(1)], control=control)]
        self.taken: Group | None = None

    def commit(self, execution_id: str, after: Group, events: list[Event], control: Control) -> Group:
        if self.taken is not None:
            self.groups.append(self.taken)
            self.taken = None
        if after.last != self.groups[-1].last:
            raise SeqTaken("taken", "ConditionalCheckFailedException")
        first = after.last + 1
        numbered = [event.numbered(first + index) for index, event in enumerate(events)]
        group = Group(first=first, last=first + len(events) - 1, events=numbered, control=control)
        self.groups.append(group)
        return group

    def tail(self, execution_id: str) -> Group:
        return self.groups[-1]


def node_run(node: str, run: int, **values: Any) -> list[Event]:
    return [
        new_event("node.started", AT, nodeId=node, run=run),
        new_event("node.completed", AT, nodeId=node, run=run, startedAt=AT, variables=values, next="next"),
    ]


def batch_on(log: FakeLog, budget: Budget, step: int = 3) -> Batch:
    return Batch(log, "exe_1", log.tail("exe_1"), budget, step=step)


@pytest.fixture
def log() -> FakeLog:
    return FakeLog(Control(state="RUNNING", workflowId="wf_1", workflowVersion=1, cursor="a", maxNodeRuns=10))


def test_a_chunk_is_appended_as_one_group_that_carries_the_steps_number(log: FakeLog) -> None:
    batch = batch_on(log, Budget(nodes=3))
    for run in (1, 2, 3):
        batch.add(node_run(f"n{run}", run, x=run))

    assert batch.full()
    assert batch.control.nodeRuns == 3 and batch.node_ids() == {"n1", "n2", "n3"}
    assert batch.next_seq == 8
    batch.commit()

    appended = log.groups[-1]
    assert (appended.first, appended.last) == (2, 7)
    assert (appended.control.nodeRuns, appended.control.steps) == (3, 3)
    assert batch.events == [] and batch.tail is appended and not batch.full()


def test_an_empty_chunk_appends_nothing(log: FakeLog) -> None:
    batch_on(log, Budget()).commit()

    assert len(log.groups) == 1


def test_a_node_that_would_take_the_chunk_past_its_most_bytes_goes_in_the_next_one(log: FakeLog) -> None:
    batch = batch_on(log, Budget(most_bytes=600))
    batch.add(node_run("a", 1, text="x" * 200))

    batch.add(node_run("b", 2, text="y" * 200))

    assert [event.nodeId for event in log.groups[-1].events] == ["a", "a"]
    assert [event.nodeId for event in batch.events] == ["b", "b"]


def test_a_chunk_that_loses_its_seq_is_not_written_and_names_the_newest_group(log: FakeLog) -> None:
    batch = batch_on(log, Budget())
    batch.add(node_run("a", 1, x=1))
    canceled = new_event("execution.canceled", AT).numbered(2)
    log.taken = Group(first=2, last=2, events=[canceled], control=log.groups[0].control)

    with pytest.raises(BatchLost) as lost:
        batch.commit()

    assert lost.value.newest.events == [canceled]
    assert [event.type for group in log.groups for event in group.events] == ["execution.running", "execution.canceled"]
