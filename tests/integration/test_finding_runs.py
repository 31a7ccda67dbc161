"""Finding any run: every execution of an owner across workflows, by state, starter and start time (moto).

Executions are recorded straight in the store at chosen start times (a scheduled tick's id carries the
tick's time, up to an hour before its start), so the time ranges are exact.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from stepwise.errors import BadRequest, NotOwner
from stepwise.identity import ADMIN_GROUP, Caller
from stepwise.ids import derived_id
from stepwise.models.records import ExecutionRecord
from stepwise.service import executions
from stepwise.store import Store
from stepwise.store.migrations import index_everything

ALICE, BOB = Caller("alice"), Caller("bob")
NOON = datetime(2030, 6, 1, 12, tzinfo=UTC)


@pytest.fixture
def store(aws: Any) -> Store:
    from stepwise.settings import get_settings

    return Store(get_settings().table_name)


def record(
    store: Store,
    started: datetime,
    *,
    owner: str = "alice",
    workflow: str = "wf_01J00000000000000000000001",
    state: str = "COMPLETED",
    started_by: str | None = None,
    id_time: datetime | None = None,
) -> str:
    """Record an execution that started at ``started`` (its id dated ``id_time``, by default the same)."""
    execution_id = derived_id("exe", int((id_time or started).timestamp() * 1000), f"{owner}{started}{workflow}")
    store.create_execution(
        ExecutionRecord(
            id=execution_id,
            workflowId=workflow,
            workflowVersion=1,
            owner=owner,
            state="PENDING",
            startedAt=started.strftime("%Y-%m-%dT%H:%M:%S.") + f"{started.microsecond // 1000:03d}Z",
            startedBy=started_by or owner,
            maxNodeRuns=10,
        )
    )
    if state != "PENDING":
        store.transition(execution_id, state, allowed_from=("PENDING",))
    return execution_id


def ids_of(rows: list[Any]) -> list[str]:
    return [row.id for row in rows]


def find(store: Store, caller: Caller = ALICE, limit: int = 50, **filters: Any) -> list[str]:
    rows, _ = executions.find(store, caller, limit=limit, **filters)
    return ids_of(rows)


def test_every_run_of_the_caller_across_workflows_newest_first(store: Store) -> None:
    first = record(store, NOON, workflow="wf_01J00000000000000000000001")
    second = record(store, NOON + timedelta(minutes=1), workflow="wf_01J00000000000000000000002")
    record(store, NOON + timedelta(minutes=2), owner="bob")

    assert find(store) == [second, first]
    assert find(store, BOB) != find(store)


def test_filters_by_workflow_state_and_starter(store: Store) -> None:
    failed = record(store, NOON, state="FAILED")
    ticked = record(store, NOON + timedelta(minutes=1), started_by="schedule:sch_01J00000000000000000000001")
    other = record(store, NOON + timedelta(minutes=2), workflow="wf_01J00000000000000000000002", state="FAILED")

    assert find(store, state="FAILED") == [other, failed]
    assert find(store, started_by="schedule:sch_01J00000000000000000000001") == [ticked]
    assert find(store, workflow_id="wf_01J00000000000000000000001") == [ticked, failed]
    assert find(store, workflow_id="wf_01J00000000000000000000001", state="FAILED") == [failed]


def test_from_is_included_and_to_excluded_even_for_a_tick_delivered_late(store: Store) -> None:
    before = record(store, NOON - timedelta(milliseconds=1))
    at_noon = record(store, NOON)
    # Scheduled for 11:05, delivered (and started) at 12:00:30 after Scheduler's retries
    late_tick = record(store, NOON + timedelta(seconds=30), id_time=NOON - timedelta(minutes=55))
    at_one = record(store, NOON + timedelta(hours=1))

    window = {"started_from": "2030-06-01T12:00:00Z", "started_to": "2030-06-01T13:00:00Z"}

    # (listed where its id puts it: at the time it was scheduled for)
    assert find(store, **window) == [at_noon, late_tick]
    assert find(store, started_from="2030-06-01T13:00:00.000Z") == [at_one]
    assert find(store, started_to="2030-06-01T12:00:00Z") == [before]
    assert find(store, started_from="2030-06-01T14:00:00+02:00", started_to="2030-06-01T12:00:00.001Z") == [at_noon]


def test_pages_follow_their_cursor_and_a_cursor_of_other_filters_is_a_400(store: Store) -> None:
    made = [record(store, NOON + timedelta(minutes=n), state="FAILED" if n % 2 else "COMPLETED") for n in range(5)]

    seen: list[str] = []
    cursor = None
    while True:
        rows, cursor = executions.find(store, ALICE, state="COMPLETED", limit=2, cursor=cursor)
        seen += ids_of(rows)
        if cursor is None:
            break
        with pytest.raises(BadRequest, match="not valid for this listing"):
            executions.find(store, ALICE, state="FAILED", limit=2, cursor=cursor)

    assert seen == [made[4], made[2], made[0]]


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        (
            {"started_from": "yesterday"},
            "from: 'yesterday' is not an ISO-8601 time; write it like 2024-05-01T09:30:00Z",
        ),
        ({"started_to": "2030-02-30"}, "to: '2030-02-30' is not an ISO-8601 time"),
        (
            {"started_from": "2030-01-02", "started_to": "2030-01-01"},
            "from (2030-01-02T00:00:00.000Z) must be before to",
        ),
        ({"workflow_id": "exe_01J00000000000000000000001"}, "workflowId: 'exe_01J00000000000000000000001' is not a"),
    ],
)
def test_a_bad_filter_is_a_400_that_says_what_to_write(store: Store, filters: dict[str, str], expected: str) -> None:
    with pytest.raises(BadRequest) as refused:
        executions.find(store, ALICE, limit=10, **filters)

    assert expected in str(refused.value)


def test_an_admin_may_list_another_owners_runs_and_no_one_else_may(store: Store) -> None:
    bobs = record(store, NOON, owner="bob")
    admin = Caller("auditor", frozenset({ADMIN_GROUP}))

    assert find(store, admin, owner="bob") == [bobs]
    assert find(store, BOB, owner="bob") == [bobs]
    with pytest.raises(NotOwner, match="Only an admin"):
        executions.find(store, ALICE, owner="bob", limit=10)


def test_runs_recorded_before_the_owner_index_are_found_by_workflow_and_after_the_migration_by_owner(
    store: Store,
) -> None:
    # Given an execution written by an older stack: no GSI2 key
    old = record(store, NOON)
    store.client.update_item(
        TableName=store.table,
        Key={"PK": {"S": f"EXECUTION#{old}"}, "SK": {"S": "EXECUTION"}},
        UpdateExpression="REMOVE GSI2PK, GSI2SK",
    )
    new = record(store, NOON + timedelta(minutes=1))
    assert find(store) == [new]
    assert find(store, workflow_id="wf_01J00000000000000000000001") == [new, old]

    # When the migration runs (twice: the second finds nothing to do)
    first, again = index_everything(store), index_everything(store)

    # Then the old run is found across workflows too
    assert (first.executions, again.executions) == (1, 0)
    assert find(store) == [new, old]


def test_the_openapi_document_describes_the_listing_and_a_pending_pause(api: Any) -> None:
    document = api.get("/api/openapi.json", user=None).body

    listing = document["paths"]["/api/executions"]["get"]
    assert {"workflowId", "state", "startedBy", "from", "to", "owner", "limit", "cursor"} == {
        parameter["name"] for parameter in listing["parameters"]
    }
    assert {"200", "400", "403"} <= set(listing["responses"])
    assert "pauseRequested" in document["components"]["schemas"]["ExecutionSummary"]["required"]
    assert "withdraw" in document["paths"]["/api/workflows/execute/{executionId}/resume"]["post"]["description"]
    force = document["paths"]["/api/agents/{agentId}"]["delete"]["parameters"]
    assert "force" in {parameter["name"] for parameter in force}
