"""moto's TransactWriteItems as the local stack runs it (stepwise.local.transactions): all or nothing, the same
errors as DynamoDB's, and a cost that does not grow with the table."""

from __future__ import annotations

import copy
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError


def item(pk: str, **extra: Any) -> dict[str, Any]:
    return {"PK": {"S": pk}, "SK": {"S": "X"}, **{name: {"N": str(value)} for name, value in extra.items()}}


@pytest.fixture
def table(aws: Any) -> tuple[Any, str]:
    return boto3.client("dynamodb"), aws.table_names["StepwiseTable"]


def read(client: Any, name: str, pk: str) -> dict[str, Any] | None:
    found: dict[str, Any] | None = client.get_item(TableName=name, Key={"PK": {"S": pk}, "SK": {"S": "X"}}).get("Item")
    return found


def test_the_local_stack_runs_its_own_transactions(aws: Any) -> None:
    from moto.dynamodb.models import DynamoDBBackend

    from stepwise.local import transactions

    assert DynamoDBBackend.transact_write_items is transactions.transact_write_items


def test_a_transaction_is_all_or_nothing_and_says_which_write_failed(table: tuple[Any, str]) -> None:
    client, name = table
    client.put_item(TableName=name, Item=item("counter", running=1))
    client.put_item(TableName=name, Item=item("gone"))
    writes = [
        {"Put": {"TableName": name, "Item": item("new")}},
        {
            "Update": {
                "TableName": name,
                "Key": {"PK": {"S": "counter"}, "SK": {"S": "X"}},
                "UpdateExpression": "ADD running :one",
                "ExpressionAttributeValues": {":one": {"N": "1"}},
            }
        },
        {"Delete": {"TableName": name, "Key": {"PK": {"S": "gone"}, "SK": {"S": "X"}}}},
        {"Put": {"TableName": name, "Item": item("counter2"), "ConditionExpression": "attribute_exists(PK)"}},
    ]

    with pytest.raises(ClientError) as refused:
        client.transact_write_items(TransactItems=writes)

    reasons = [reason["Code"] for reason in refused.value.response["CancellationReasons"]]
    assert reasons == ["None", "None", "None", "ConditionalCheckFailed"]
    assert read(client, name, "new") is None
    assert read(client, name, "counter") == item("counter", running=1)
    assert read(client, name, "gone") == item("gone")

    client.transact_write_items(TransactItems=writes[:3])

    assert read(client, name, "new") == item("new")
    assert read(client, name, "counter") == item("counter", running=2)
    assert read(client, name, "gone") is None


def test_two_writes_of_one_item_are_refused_as_dynamodb_refuses_them(table: tuple[Any, str]) -> None:
    client, name = table
    writes = [{"Put": {"TableName": name, "Item": item("same")}}, {"Put": {"TableName": name, "Item": item("same")}}]

    with pytest.raises(ClientError, match="multiple operations on one item"):
        client.transact_write_items(TransactItems=writes)


def test_a_transaction_copies_the_items_it_writes_not_the_table(
    table: tuple[Any, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from moto.dynamodb.models.table import Table

    client, name = table
    deep = copy.deepcopy

    def no_table_copies(value: Any, *args: Any) -> Any:
        assert not isinstance(value, Table), "a transaction copied the whole table"
        return deep(value, *args)

    monkeypatch.setattr(copy, "deepcopy", no_table_copies)

    client.transact_write_items(TransactItems=[{"Put": {"TableName": name, "Item": item("cheap")}}])

    assert read(client, name, "cheap") == item("cheap")
