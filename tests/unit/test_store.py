"""The store's codec, cursors and errors, against botocore's Stubber: no moto, no socket.

The Stubber answers each DynamoDB call as DynamoDB would (an item, or an error code), so these tests pin
what the store makes of DynamoDB's answers: plain values both ways, JSON strings kept exact, and its own
errors (never botocore's) for the services to turn into the caller's.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber

from stepwise.errors import Conflict
from stepwise.identity import Caller
from stepwise.ids import derived_id
from stepwise.models.events import new_event
from stepwise.models.records import Control, Group
from stepwise.nodes.definitions import WorkflowInput
from stepwise.schedules import MAX_EVENT_AGE_SECONDS
from stepwise.service import workflows
from stepwise.store import (
    ConditionFailed,
    ExecutionQuery,
    InvalidCursor,
    ItemTooLarge,
    SeqTaken,
    Store,
    Throttled,
    ValidationFailed,
    decode_cursor,
    encode_cursor,
)
from stepwise.store.codec import decode, encode, from_json, to_json
from stepwise.store.executions import LATE_START
from stepwise.store.listings import Filter, Listing
from stepwise.store.table import FILTERED_READ, MAX_READS_PER_PAGE

TABLE = "stepwise-test"


@pytest.fixture
def stubbed() -> Iterator[tuple[Store, Stubber]]:
    client = boto3.session.Session(region_name="us-east-1").client("dynamodb")
    with Stubber(client) as stubber:
        yield Store(TABLE, client=client), stubber
        stubber.assert_no_pending_responses()


def workflow_key(owner: str, workflow_id: str) -> dict[str, Any]:
    return encode(
        {"PK": f"WORKFLOW#{workflow_id}", "SK": "WORKFLOW", "GSI1PK": f"OWNER#{owner}#WORKFLOWS", "GSI1SK": workflow_id}
    )


def execution_key(number: int = 1) -> dict[str, Any]:
    return encode(
        {
            "PK": f"EXECUTION#exe_{number}",
            "SK": "EXECUTION",
            "GSI2PK": "OWNER#alice#EXECUTIONS",
            "GSI2SK": f"exe_{number}",
        }
    )


def execution_item(**changes: Any) -> dict[str, Any]:
    values = {
        "PK": "EXECUTION#exe_1",
        "SK": "EXECUTION",
        "id": "exe_1",
        "workflowId": "wf_1",
        "workflowVersion": 3,
        "owner": "alice",
        "state": "RUNNING",
        "startedAt": "2030-01-01T00:00:00.000Z",
        "startedBy": "alice",
        "variables": to_json({"price": 0.1, "big": 12345678901234567890, "name": "Zoë"}),
        "nodeRuns": 2,
        "maxNodeRuns": 1000,
        "pauseRequested": False,
        "revision": 7,
        "GSI2PK": "OWNER#alice#EXECUTIONS",
        "GSI2SK": "exe_1",
        **changes,
    }
    return encode(values)


def test_plain_values_round_trip_and_numbers_come_back_as_int() -> None:
    values = {"name": "wf", "version": 12, "enabled": True, "nothing": None}

    item = encode(values)

    assert item == {"name": {"S": "wf"}, "version": {"N": "12"}, "enabled": {"BOOL": True}}
    back = decode(item)
    assert back == {"name": "wf", "version": 12, "enabled": True}
    assert type(back["version"]) is int


def test_a_variable_is_one_json_string_and_reads_back_exactly(stubbed: tuple[Store, Stubber]) -> None:
    store, stubber = stubbed
    value = {"price": 0.1, "big": 12345678901234567890, "name": "Zoë"}
    item = {"PK": "EXECUTION#exe_1", "SK": "VAR#order", "name": "order", "value": to_json(value), "bytes": 50, "seq": 7}
    stubber.add_response(
        "get_item", {"Item": encode(item)}, {"TableName": TABLE, "Key": key_of(item), "ConsistentRead": True}
    )

    read = store.variable("exe_1", "order")

    assert read is not None
    assert read.value == value
    assert type(read.value["price"]) is float
    assert (read.seq, read.ref) == (7, None)
    assert encode({"v": to_json({"a": 1})}) == {"v": {"S": '{"a":1}'}}
    assert from_json(None, {}) == {}


def key_of(item: dict[str, Any]) -> dict[str, Any]:
    return encode({"PK": item["PK"], "SK": item["SK"]})


def test_a_cursor_round_trips_and_a_foreign_one_is_refused() -> None:
    key = encode({"PK": "WORKFLOW#wf_1", "SK": "WORKFLOW", "GSI1PK": "OWNER#alice#WORKFLOWS", "GSI1SK": "wf_1"})
    keys = ("PK", "SK", "GSI1PK", "GSI1SK")

    cursor = encode_cursor(key, "listing-a")

    assert cursor is not None and "=" not in cursor
    assert decode_cursor(cursor, keys, "listing-a") == key
    for foreign in ("not a cursor!", encode_cursor(encode({"PK": "x"}), "listing-a")):
        with pytest.raises(InvalidCursor, match="pass the nextCursor"):
            decode_cursor(foreign, keys, "listing-a")
    with pytest.raises(InvalidCursor, match="not valid for this listing"):
        decode_cursor(cursor, keys, "listing-b")


def test_a_cursor_of_another_listing_is_refused_before_any_query(stubbed: tuple[Store, Stubber]) -> None:
    store, stubber = stubbed
    bob = Listing("OWNER#bob#WORKFLOWS")
    stubber.add_response(
        "query", {"Items": [workflow_key("bob", "wf_2")], "LastEvaluatedKey": workflow_key("bob", "wf_2")}
    )
    _, bobs = store.list_page(bob, 1, None)

    with pytest.raises(InvalidCursor, match="this listing"):
        store.list_workflows("alice", 10, bobs)


def test_a_cursor_is_bound_to_the_filters_it_was_given_with(stubbed: tuple[Store, Stubber]) -> None:
    store, stubber = stubbed
    running = ExecutionQuery("alice", state="RUNNING")
    stubber.add_response("query", {"Items": [execution_item()], "LastEvaluatedKey": execution_key()})
    _, cursor = store.find_executions(running, 1, None)

    for other in (ExecutionQuery("alice"), ExecutionQuery("alice", state="FAILED"), ExecutionQuery("alice", "wf_1")):
        with pytest.raises(InvalidCursor, match="this listing"):
            store.find_executions(other, 1, cursor)
    stubber.add_response("query", {"Items": []})
    assert store.find_executions(running, 1, cursor) == ([], None)


def test_a_filtered_page_reads_ahead_and_ends_at_its_last_item(stubbed: tuple[Store, Stubber]) -> None:
    store, stubber = stubbed
    # Given DynamoDB answers the filtered read with more matches than the page holds
    items = [execution_item(id=f"exe_{n}", PK=f"EXECUTION#exe_{n}", GSI2SK=f"exe_{n}") for n in range(5, 0, -1)]
    stubber.add_response("query", {"Items": items, "LastEvaluatedKey": execution_key(1)}, running_query())

    # When a page of 3 is read
    page, cursor = store.find_executions(ExecutionQuery("alice", state="RUNNING"), 3, None)

    # Then it holds the first 3, and the next page starts right after the third, not after the fifth
    assert [record.id for record in page] == ["exe_5", "exe_4", "exe_3"]
    stubber.add_response("query", {"Items": []}, {**running_query(), "ExclusiveStartKey": execution_key(3)})
    store.find_executions(ExecutionQuery("alice", state="RUNNING"), 3, cursor)


def running_query() -> dict[str, Any]:
    """The Query that lists alice's RUNNING executions across workflows."""
    return {
        "TableName": TABLE,
        "IndexName": "GSI2",
        "KeyConditionExpression": "GSI2PK = :pk",
        "ScanIndexForward": False,
        "FilterExpression": "#f0 = :f0",
        "ExpressionAttributeNames": {"#f0": "state"},
        "ExpressionAttributeValues": encode({":pk": "OWNER#alice#EXECUTIONS", ":f0": "RUNNING"}),
        "Limit": FILTERED_READ,
    }


def test_a_page_of_a_rare_filter_ends_after_a_bounded_number_of_reads(stubbed: tuple[Store, Stubber]) -> None:
    store, stubber = stubbed
    for _ in range(MAX_READS_PER_PAGE):
        stubber.add_response("query", {"Items": [], "LastEvaluatedKey": execution_key()})

    page, cursor = store.find_executions(ExecutionQuery("alice", state="PAUSED"), 20, None)

    assert page == []
    assert cursor is not None  # the caller goes on from there


def test_a_time_range_is_an_id_range_on_the_tighter_index() -> None:
    start, end = datetime(2030, 1, 1, 12, tzinfo=UTC), datetime(2030, 1, 2, tzinfo=UTC)

    by_owner = ExecutionQuery("alice", started_from=start, started_to=end).listing()
    by_workflow = ExecutionQuery("alice", "wf_1", started_by="bob").listing()

    assert (by_owner.index, by_owner.partition) == ("GSI2", "OWNER#alice#EXECUTIONS")
    assert (by_workflow.index, by_workflow.partition, by_workflow.sort_range) == (
        "GSI1",
        "OWNER#alice#WORKFLOW#wf_1",
        None,
    )
    assert by_workflow.filters == (Filter("startedBy", "=", "bob"),)
    assert by_owner.filters == (
        Filter("startedAt", ">=", "2030-01-01T12:00:00.000Z"),
        Filter("startedAt", "<", "2030-01-02T00:00:00.000Z"),
    )
    # A tick Scheduler delivered an hour late carries the tick's time in its id: still in range
    lowest, highest = by_owner.sort_range or ("", "")
    late_tick = derived_id("exe", int((start - timedelta(hours=1)).timestamp() * 1000), "seed")
    assert lowest <= late_tick <= highest
    assert lowest <= new_id_at(end - timedelta(milliseconds=1)) <= highest
    assert new_id_at(start - timedelta(hours=2)) < lowest
    assert LATE_START.total_seconds() > MAX_EVENT_AGE_SECONDS


def new_id_at(moment: datetime) -> str:
    return derived_id("exe", int(moment.timestamp() * 1000), "any")


def test_an_append_after_a_group_someone_else_appended_after_is_seq_taken(stubbed: tuple[Store, Stubber]) -> None:
    store, stubber = stubbed
    # Given the newest group this writer read ends at event 3
    read = Group(
        first=2,
        last=3,
        events=[],
        control=Control(state="RUNNING", workflowId="wf_1", workflowVersion=1, maxNodeRuns=9),
    )
    happened = [
        new_event("execution.pause_requested", "2030-01-01T00:00:00.000Z", by={"sub": "alice", "name": "Alice"})
    ]
    # When it appends, the put is of EVENT#4 on its absence, and DynamoDB says another writer put it first
    expected = {
        "TableName": TABLE,
        "Item": ANY,
        "ConditionExpression": "attribute_not_exists(SK)",
    }
    stubber.add_client_error(
        "put_item", "ConditionalCheckFailedException", "The conditional request failed", expected_params=expected
    )

    with pytest.raises(SeqTaken):
        store.append("exe_1", read, happened, read.control.after(happened))

    # And a put that goes in numbers its events from 4, with the control state after them
    stubber.add_response("put_item", {}, expected)
    group = store.append("exe_1", read, happened, read.control.after(happened))
    assert (group.first, group.last, [event.seq for event in group.events]) == (4, 4, [4])
    assert group.control.pauseRequested is True


@pytest.mark.parametrize(
    ("code", "message", "expected"),
    [
        ("ProvisionedThroughputExceededException", "Rate exceeded", Throttled),
        ("ThrottlingException", "Rate exceeded", Throttled),
        ("ValidationException", "Item size has exceeded the maximum allowed size", ItemTooLarge),
        ("ConditionalCheckFailedException", "The conditional request failed", ConditionFailed),
    ],
)
def test_dynamodb_errors_become_the_stores_own(
    stubbed: tuple[Store, Stubber], code: str, message: str, expected: type[Exception]
) -> None:
    store, stubber = stubbed
    stubber.add_client_error("put_item", code, message)

    with pytest.raises(expected) as raised:
        store.put_body("PK", "SK", {"a": 1}, condition="attribute_not_exists(PK)")

    assert raised.value.code == code  # type: ignore[attr-defined]
    assert message in str(raised.value)


def test_a_throttle_or_a_table_not_reached_is_transient_and_other_refusals_are_not(
    stubbed: tuple[Store, Stubber],
) -> None:
    from botocore.exceptions import EndpointConnectionError

    from stepwise.aws import TransientError

    store, stubber = stubbed
    stubber.add_client_error("put_item", "ProvisionedThroughputExceededException", "Rate exceeded")
    stubber.add_client_error("put_item", "ValidationException", "One or more parameter values were invalid")

    with pytest.raises(TransientError):
        store.put_body("PK", "SK", {"a": 1})
    with pytest.raises(ValidationFailed) as refused:
        store.put_body("PK", "SK", {"a": 1})
    assert not isinstance(refused.value, TransientError)

    def unreachable(**_: Any) -> None:
        raise EndpointConnectionError(endpoint_url="https://dynamodb.us-east-1.amazonaws.com")

    stubber.deactivate()
    store.client.put_item = unreachable  # type: ignore[method-assign,assignment]
    with pytest.raises(TransientError, match="could not be reached"):
        store.put_body("PK", "SK", {"a": 1})


def test_a_workflow_changed_meanwhile_is_a_409_that_says_so(stubbed: tuple[Store, Stubber]) -> None:
    store, stubber = stubbed
    definition = {"name": "t", "nodes": [{"id": "a", "type": "setVariables", "config": {"values": {"x": 1}}}]}
    current = {
        "PK": "WORKFLOW#wf_01J0000000000000000000000A",
        "SK": "WORKFLOW",
        "owner": "alice",
        "version": 1,
        "createdAt": "2030-01-01T00:00:00.000Z",
        "updatedAt": "2030-01-01T00:00:00.000Z",
        "definition": to_json(definition),
    }
    stubber.add_response("get_item", {"Item": encode(current)})
    stubber.add_client_error("transact_write_items", "TransactionCanceledException", "Transaction cancelled")

    with pytest.raises(Conflict, match="changed or deleted meanwhile"):
        workflows.update(
            store,
            Caller(sub="alice", groups=frozenset()),
            "wf_01J0000000000000000000000A",
            WorkflowInput.model_validate(definition),
        )
