"""Concurrency slots' pure rules: which events give slots back, and the writes a change of slots and queue takes."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from stepwise.models.events import Event, new_event
from stepwise.models.records import Control, QueueSpot
from stepwise.service.concurrency import Limits, slots_for
from stepwise.store import LimitReached, SeqTaken, Store
from stepwise.store.errors import ConditionFailed
from stepwise.store.slots import (
    SLOTS_PREFIX,
    full_counter,
    owner_counter,
    owner_of,
    slot_writes,
    workflow_counter,
)
from stepwise.store.table import Delete, Put, Update

AT = "2030-01-01T00:00:00.000Z"
OWNER = owner_counter("alice")
WORKFLOW = workflow_counter("alice", "wf_1")
HELD = {WORKFLOW: 2, OWNER: 100}


def control(**fields: Any) -> Control:
    return Control.model_validate(
        {"state": "RUNNING", "workflowId": "wf_1", "workflowVersion": 1, "maxNodeRuns": 10, **fields}
    )


def spot(**fields: Any) -> QueueSpot:
    return QueueSpot.model_validate(
        {
            "owner": "alice",
            "key": f"{AT}#exe_1",
            "queuedAt": AT,
            "limit": "workflow",
            "workflowId": "wf_1",
            "workflowSlot": WORKFLOW,
            **fields,
        }
    )


@pytest.mark.parametrize("ending", ["execution.completed", "execution.failed", "execution.canceled"])
def test_every_end_gives_the_slots_back_and_leaves_the_queue(ending: str) -> None:
    running = control(slots=HELD)
    waiting = control(state="PENDING", queued=spot())

    assert running.after([new_event(ending, AT)]).slots == {}
    assert waiting.after([new_event(ending, AT)]).queued is None


def test_a_pause_gives_the_slots_back_and_other_events_keep_them() -> None:
    running = control(slots=HELD, pauseRequested=True)

    assert running.after([new_event("node.started", AT, nodeId="a", run=1)]).slots == HELD
    assert running.after([new_event("execution.paused", AT, reason="requested")]).slots == {}


def test_leaving_the_queue_clears_the_spot() -> None:
    assert control(state="PENDING", queued=spot()).after([new_event("execution.dequeued", AT)]).queued is None


def test_slots_are_the_workflows_when_it_has_a_limit_and_the_owners_when_the_stack_has_one() -> None:
    from stepwise.models.workflow import Concurrency

    assert slots_for(Limits(100), "alice", "wf_1", Concurrency(limit=2)) == HELD
    assert slots_for(Limits(0), "alice", "wf_1", None) == {}
    assert slots_for(Limits(7), "alice", "wf_1", None) == {OWNER: 7}
    assert owner_of(WORKFLOW) == owner_of(OWNER) == "alice"


def test_a_start_takes_each_slot_on_its_limit_and_a_workflows_only_when_none_of_its_runs_wait() -> None:
    writes = slot_writes("exe_1", None, control(state="PENDING", slots=HELD)).writes

    assert writes == [
        Update(
            pk=SLOTS_PREFIX + WORKFLOW,
            sk="SLOTS",
            expression="ADD #running :running",
            condition="(attribute_not_exists(#running) OR #running < :limit) AND "
            "(attribute_not_exists(#queued) OR #queued < :one)",
            names={"#running": "running", "#queued": "queued"},
            values={":running": 1, ":limit": 2, ":one": 1},
        ),
        Update(
            pk=SLOTS_PREFIX + OWNER,
            sk="SLOTS",
            expression="ADD #running :running",
            condition="(attribute_not_exists(#running) OR #running < :limit)",
            names={"#running": "running"},
            values={":running": 1, ":limit": 100},
        ),
    ]


def test_an_end_gives_each_slot_back_unconditionally() -> None:
    before = control(slots=HELD)

    writes = slot_writes("exe_1", before, before.after([new_event("execution.completed", AT)])).writes

    assert [(write.pk, write.expression, write.condition, write.values) for write in writes] == [  # type: ignore[union-attr]
        (SLOTS_PREFIX + WORKFLOW, "ADD #running :running", "", {":running": -1}),
        (SLOTS_PREFIX + OWNER, "ADD #running :running", "", {":running": -1}),
    ]


def test_joining_the_queue_puts_its_entry_and_counts_it_against_its_owner_and_its_workflow() -> None:
    writes = slot_writes("exe_1", None, control(state="PENDING", queued=spot())).writes

    assert writes == [
        Put(
            {
                "PK": "QUEUE#alice",
                "SK": f"{AT}#exe_1",
                "executionId": "exe_1",
                "workflowId": "wf_1",
                "limit": "workflow",
            },
            condition="attribute_not_exists(SK)",
        ),
        *(
            Update(
                pk=SLOTS_PREFIX + counter,
                sk="SLOTS",
                expression="ADD #queued :queued",
                condition="",
                names={"#queued": "queued"},
                values={":queued": 1},
            )
            for counter in (OWNER, WORKFLOW)
        ),
    ]


def test_leaving_the_queue_takes_the_slots_without_waiting_behind_itself_in_one_update_per_counter() -> None:
    before = control(state="PENDING", queued=spot())
    after = before.after([new_event("execution.dequeued", AT)]).model_copy(update={"slots": HELD})

    writes = slot_writes("exe_1", before, after).writes

    assert writes[0] == Delete("QUEUE#alice", f"{AT}#exe_1")
    assert [(write.pk, write.expression, write.condition, write.values) for write in writes[1:]] == [  # type: ignore[union-attr]
        (
            SLOTS_PREFIX + WORKFLOW,
            "ADD #running :running, #queued :queued",
            "(attribute_not_exists(#running) OR #running < :limit)",
            {":running": 1, ":queued": -1, ":limit": 2},
        ),
        (
            SLOTS_PREFIX + OWNER,
            "ADD #running :running, #queued :queued",
            "(attribute_not_exists(#running) OR #running < :limit)",
            {":running": 1, ":queued": -1, ":limit": 100},
        ),
    ]


def test_a_canceled_queued_run_only_leaves_the_queue() -> None:
    before = control(state="PENDING", queued=spot())

    writes = slot_writes("exe_1", before, before.after([new_event("execution.canceled", AT)])).writes

    assert writes[0] == Delete("QUEUE#alice", f"{AT}#exe_1")
    assert [(write.pk, write.expression, write.values) for write in writes[1:]] == [  # type: ignore[union-attr]
        (SLOTS_PREFIX + OWNER, "ADD #queued :queued", {":queued": -1}),
        (SLOTS_PREFIX + WORKFLOW, "ADD #queued :queued", {":queued": -1}),
    ]


def test_a_change_that_touches_no_slot_writes_nothing_more() -> None:
    before = control(slots=HELD)

    assert slot_writes("exe_1", before, before.after([new_event("node.started", AT, nodeId="a", run=1)])).writes == []


def test_the_full_counter_is_read_from_the_transactions_reasons_the_workflows_first() -> None:
    changes = slot_writes("exe_1", None, control(state="PENDING", slots=HELD))
    both = ConditionFailed("x", reasons=("None", "ConditionalCheckFailed", "ConditionalCheckFailed"))
    owner_only = ConditionFailed("x", reasons=("None", "None", "ConditionalCheckFailed"))

    assert full_counter(changes, both) == WORKFLOW
    assert full_counter(changes, owner_only) == OWNER
    assert full_counter(changes, ConditionFailed("x", reasons=("None", "None", "None"))) is None


# --------------------------------------------------------------------------------------- the store's answers


@pytest.fixture
def stubbed() -> Iterator[tuple[Store, Stubber]]:
    client = boto3.session.Session(region_name="us-east-1").client("dynamodb")
    with Stubber(client) as stubber:
        yield Store("stepwise-test", client=client), stubber
        stubber.assert_no_pending_responses()


def canceled(stubber: Stubber, *codes: str) -> None:
    reasons = [{"Code": code} for code in codes]
    stubber.add_client_error(
        "transact_write_items",
        "TransactionCanceledException",
        "Transaction cancelled",
        modeled_fields={"CancellationReasons": reasons},
    )


def started() -> list[Event]:
    return [new_event("execution.started", AT, workflowId="wf_1", workflowVersion=1, by={"sub": "alice", "name": "A"})]


def test_a_start_whose_slot_is_full_is_told_which_and_one_whose_record_exists_is_told_that(
    stubbed: tuple[Store, Stubber],
) -> None:
    store, stubber = stubbed
    taking = control(state="PENDING", slots=HELD)
    canceled(stubber, "None", "None", "ConditionalCheckFailed")
    canceled(stubber, "ConditionalCheckFailed", "ConditionalCheckFailed", "None")

    with pytest.raises(LimitReached) as full:
        store.append("exe_1", None, started(), taking)
    with pytest.raises(SeqTaken):
        store.append("exe_1", None, started(), taking)

    assert full.value.counter == OWNER


def test_a_transaction_that_met_another_on_a_hot_counter_is_tried_again(
    stubbed: tuple[Store, Stubber], monkeypatch: pytest.MonkeyPatch
) -> None:
    store, stubber = stubbed
    monkeypatch.setattr(time, "sleep", lambda seconds: None)
    canceled(stubber, "None", "None", "TransactionConflict")
    canceled(stubber, "None", "TransactionConflict", "None")
    stubber.add_response("transact_write_items", {})

    group = store.append("exe_1", None, started(), control(state="PENDING", slots=HELD))

    assert group.first == 1
