"""The store's codec, cursors and errors, against botocore's Stubber: no moto, no socket.

The Stubber answers each DynamoDB call as DynamoDB would (an item, or an error code), so these tests pin
what the store makes of DynamoDB's answers: plain values both ways, JSON strings kept exact, and its own
errors (never botocore's) for the services to turn into the caller's.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from stepwise.errors import Conflict
from stepwise.identity import Caller
from stepwise.models.workflow import WorkflowDefinition
from stepwise.service import workflows
from stepwise.store import ConditionFailed, InvalidCursor, ItemTooLarge, Store, Throttled, decode_cursor, encode_cursor
from stepwise.store.codec import decode, encode, from_json, to_json

TABLE = "stepwise-test"


@pytest.fixture
def stubbed() -> Iterator[tuple[Store, Stubber]]:
    client = boto3.session.Session(region_name="us-east-1").client("dynamodb")
    with Stubber(client) as stubber:
        yield Store(TABLE, client=client), stubber
        stubber.assert_no_pending_responses()


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


def test_variables_are_one_json_string_and_read_back_exactly(stubbed: tuple[Store, Stubber]) -> None:
    store, stubber = stubbed
    stubber.add_response("get_item", {"Item": execution_item()})

    record = store.get_execution("exe_1")

    assert record is not None
    assert record.variables == {"price": 0.1, "big": 12345678901234567890, "name": "Zoë"}
    assert type(record.variables["price"]) is float
    assert (record.revision, record.nodeRuns, record.workflowVersion) == (7, 2, 3)
    assert encode({"v": to_json({"a": 1})}) == {"v": {"S": '{"a":1}'}}
    assert from_json(None, {}) == {}


def test_a_cursor_round_trips_and_a_foreign_one_is_refused() -> None:
    key = encode({"PK": "WORKFLOW#wf_1", "SK": "WORKFLOW", "GSI1PK": "OWNER#alice#WORKFLOWS", "GSI1SK": "wf_1"})

    cursor = encode_cursor(key)

    assert cursor is not None and "=" not in cursor
    assert decode_cursor(cursor, ("PK", "SK", "GSI1PK", "GSI1SK")) == key
    for foreign in ("not a cursor!", encode_cursor(encode({"PK": "x"}))):
        with pytest.raises(InvalidCursor, match="pass the nextCursor"):
            decode_cursor(foreign, ("PK", "SK", "GSI1PK", "GSI1SK"))


def test_a_cursor_of_another_listing_is_refused_before_any_query(stubbed: tuple[Store, Stubber]) -> None:
    store, _ = stubbed
    bobs = encode_cursor(encode({"PK": "A", "SK": "A", "GSI1PK": "OWNER#bob#WORKFLOWS", "GSI1SK": "wf_1"}))

    with pytest.raises(InvalidCursor, match="this listing"):
        store.list_workflows("alice", 10, bobs)


def test_a_failed_transition_returns_the_record_as_it_is(stubbed: tuple[Store, Stubber]) -> None:
    store, stubber = stubbed
    stubber.add_client_error(
        "update_item",
        "ConditionalCheckFailedException",
        "The conditional request failed",
        response_meta={},
        modeled_fields={"Item": execution_item(state="CANCELED")},
    )

    moved, current = store.transition("exe_1", "PAUSED", allowed_from=("RUNNING",))

    assert moved is False
    assert current is not None and current.state == "CANCELED"


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
            WorkflowDefinition.model_validate(definition),
        )
