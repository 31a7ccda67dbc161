"""The bench's meter against moto's DynamoDB: it bills each call as AWS would (sizes from bench/capacity.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from tests.support.bench import load_bench_module

capacity = load_bench_module("capacity")


def _item(**extra: str) -> dict[str, Any]:
    return {"PK": {"S": "p"}, "SK": {"S": "s"}, **{name: {"S": value} for name, value in extra.items()}}


@pytest.fixture
def table() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        client.create_table(
            TableName="bench",
            KeySchema=[{"AttributeName": "PK", "KeyType": "HASH"}, {"AttributeName": "SK", "KeyType": "RANGE"}],
            AttributeDefinitions=[
                {"AttributeName": name, "AttributeType": "S"} for name in ("PK", "SK", "GSI1PK", "GSI1SK")
            ],
            GlobalSecondaryIndexes=[
                {
                    "IndexName": "GSI1",
                    "KeySchema": [
                        {"AttributeName": "GSI1PK", "KeyType": "HASH"},
                        {"AttributeName": "GSI1SK", "KeyType": "RANGE"},
                    ],
                    "Projection": {"ProjectionType": "ALL"},
                }
            ],
            BillingMode="PAY_PER_REQUEST",
        )
        yield client


def test_the_meter_bills_what_aws_would_for_a_listed_item_that_grows(table: Any) -> None:
    meter = capacity.Meter()
    small = {**_item(GSI1PK="owner", GSI1SK="1"), "body": {"S": "x" * 100}}
    key = {"PK": {"S": "p"}, "SK": {"S": "s"}}

    with meter.installed(), meter.scoped("node"):
        table.put_item(TableName="bench", Item=small)
        table.update_item(
            TableName="bench",
            Key=key,
            UpdateExpression="SET body = :body",
            ExpressionAttributeValues={":body": {"S": "y" * 5000}},
        )
        table.get_item(TableName="bench", Key=key, ConsistentRead=True, ProjectionExpression="PK")
        with pytest.raises(table.exceptions.ConditionalCheckFailedException):
            table.put_item(TableName="bench", Item=small, ConditionExpression="attribute_not_exists(PK)")
        table.delete_item(TableName="bench", Key=key)
    table.put_item(TableName="bench", Item=small)  # outside the meter: not counted
    usage = meter.usage()

    assert (usage.dynamodb_reads, usage.dynamodb_writes) == (1, 4)
    # put 1 + update (5 KB after) 5 + failed put (the 5 KB item there) 5 + delete (5 KB) 5
    assert usage.write_units == 1 + 5 + 5 + 5
    # the index entry: put 1, changed 5, removed 5
    assert usage.index_write_units == 1 + 5 + 5
    # a projection reads (and bills) the whole 5 KB item: 2 units
    assert usage.read_units == 2
    assert meter.overhead_seconds > 0


def test_the_meter_bills_each_item_of_a_batch_on_its_own(table: Any) -> None:
    meter = capacity.Meter()
    table.put_item(TableName="bench", Item={**_item(), "body": {"S": "x" * 3000}})  # 3 KB there before
    other = {"PK": {"S": "p"}, "SK": {"S": "other"}, "body": {"S": "y" * 100}}

    with meter.installed(), meter.scoped("node"):
        table.batch_write_item(
            RequestItems={
                "bench": [{"PutRequest": {"Item": {**_item(), "body": {"S": "z"}}}}, {"PutRequest": {"Item": other}}]
            }
        )
        keys = [{"PK": {"S": "p"}, "SK": {"S": sk}} for sk in ("s", "other", "missing")]
        table.batch_get_item(RequestItems={"bench": {"Keys": keys, "ConsistentRead": True}})
    usage = meter.usage()

    assert (usage.dynamodb_reads, usage.dynamodb_writes) == (1, 1)
    # each put: the larger of the item before (3 KB) and after; the new item 1
    assert usage.write_units == 3 + 1
    # each key read on its own, rounded up per item, a missing one too
    assert usage.read_units == 1 + 1 + 1
