"""The local stack's moto Query reads one partition (stepwise.local.partition_queries) and answers as moto does."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from stepwise.local.partition_queries import check_seam, queries_read_one_partition


@pytest.fixture
def table() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        client.create_table(
            TableName="t",
            KeySchema=[{"AttributeName": "PK", "KeyType": "HASH"}, {"AttributeName": "SK", "KeyType": "RANGE"}],
            AttributeDefinitions=[
                {"AttributeName": "PK", "AttributeType": "S"},
                {"AttributeName": "SK", "AttributeType": "S"},
            ],
            BillingMode="PAY_PER_REQUEST",
        )
        for partition in ("A", "B", "C"):
            for n in range(30):
                kind = "EVENT" if n % 3 else "VAR"
                item = {"PK": {"S": partition}, "SK": {"S": f"{kind}#{n:04d}"}, "n": {"N": str(n)}}
                client.put_item(TableName="t", Item=item)
        yield client


QUERIES: list[dict[str, Any]] = [
    {"KeyConditionExpression": "PK = :pk", "ExpressionAttributeValues": {":pk": {"S": "B"}}},
    {
        "KeyConditionExpression": "PK = :pk AND begins_with(SK, :p)",
        "ExpressionAttributeValues": {":pk": {"S": "B"}, ":p": {"S": "EVENT#"}},
        "ScanIndexForward": False,
        "Limit": 1,
    },
    {
        "KeyConditionExpression": "PK = :pk AND SK BETWEEN :a AND :b",
        "ExpressionAttributeValues": {":pk": {"S": "C"}, ":a": {"S": "EVENT#0005"}, ":b": {"S": "EVENT#0020"}},
        "Limit": 4,
    },
    {"KeyConditionExpression": "PK = :pk", "ExpressionAttributeValues": {":pk": {"S": "nowhere"}}},
]


def every_page(client: Any, query: dict[str, Any]) -> list[list[dict[str, Any]]]:
    pages, start = [], None
    while True:
        answer = client.query(TableName="t", **query, **({"ExclusiveStartKey": start} if start else {}))
        pages.append(answer["Items"])
        start = answer.get("LastEvaluatedKey")
        if not start:
            return pages


@pytest.mark.parametrize("query", QUERIES)
def test_a_query_reads_the_same_pages_from_its_partition_alone(table: Any, query: dict[str, Any]) -> None:
    from moto.dynamodb.models.table import Table

    expected = every_page(table, query)
    with queries_read_one_partition():
        sorted_the_table = []
        original = Table.all_items
        Table.all_items = lambda self: sorted_the_table.append(1) or original(self)  # type: ignore[method-assign]
        try:
            pages = every_page(table, query)
        finally:
            Table.all_items = original  # type: ignore[method-assign]

    assert pages == expected
    assert sorted_the_table == []  # the whole table was never read for it


def test_the_seam_is_there() -> None:
    assert callable(check_seam())
