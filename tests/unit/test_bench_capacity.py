"""The bench's DynamoDB bill: item sizes and capacity units as AWS documents them (bench/capacity.py).

Sizes and units are checked against cases worked by hand from the DynamoDB Developer Guide ("DynamoDB item
sizes and formats", "DynamoDB read and write operations", the item size quota's example); the meter against
moto, with a table that has a global secondary index projecting everything, as the product's table does.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import pytest
from moto import mock_aws

BENCH_DIR = Path(__file__).resolve().parents[2] / "bench"


def _load_capacity() -> ModuleType:
    # bench/ is a directory of scripts, not a package: load the module by its file, as Python runs it.
    spec = importlib.util.spec_from_file_location("bench_capacity", BENCH_DIR / "capacity.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


capacity = _load_capacity()


# ---------------------------------------------------------------------------------------------- item sizes


def test_the_quota_pages_example_item_is_23_bytes() -> None:
    # "shirt-color" = "R" and "shirt-size" = "M": 11 + 1 + 10 + 1.
    item = {"shirt-color": {"S": "R"}, "shirt-size": {"S": "M"}}

    assert capacity.item_size(item) == 23


@pytest.mark.parametrize(
    ("value", "size"),
    [
        ({"N": "123"}, 3),  # 3 significant digits: 2 bytes, plus 1
        ({"N": "1000"}, 2),  # trailing zeroes are trimmed: 1 digit
        ({"N": "-0.00500"}, 2),  # so are leading ones
        ({"N": "12345678901234567890"}, 11),
        ({"N": "0"}, 2),
    ],
)
def test_a_number_costs_a_byte_per_two_significant_digits_plus_one(value: dict[str, str], size: int) -> None:
    assert capacity.item_size({"n": value}) == 1 + size


def test_strings_and_names_count_their_utf8_bytes() -> None:
    assert capacity.item_size({"é": {"S": "日本"}}) == 2 + 6


def test_binary_counts_its_raw_bytes_whether_given_as_bytes_or_base64() -> None:
    assert capacity.item_size({"b": {"B": b"\x00\x01\x02"}}) == 1 + 3
    assert capacity.item_size({"b": {"B": "AAEC"}}) == 1 + 3


def test_null_and_boolean_cost_one_byte() -> None:
    assert capacity.item_size({"n": {"NULL": True}, "ok": {"BOOL": False}}) == (1 + 1) + (2 + 1)


def test_lists_and_maps_cost_three_bytes_and_one_per_element() -> None:
    assert capacity.item_size({"e": {"M": {}}}) == 1 + 3
    # 3 + element "a" (1 + name 1 + value 2)
    assert capacity.item_size({"m": {"M": {"a": {"S": "xy"}}}}) == 1 + 3 + (1 + 1 + 2)
    # 3 + element 1 (1 + 2) + element true (1 + 1)
    assert capacity.item_size({"l": {"L": [{"N": "1"}, {"BOOL": True}]}}) == 1 + 3 + 3 + 2


def test_sets_count_their_members() -> None:
    assert capacity.item_size({"s": {"SS": ["ab", "c"]}, "t": {"NS": ["1", "22"]}}) == (1 + 3) + (1 + 2 + 2)


# ------------------------------------------------------------------------------------------------- units


def test_writes_bill_a_unit_per_kb_rounded_up_and_twice_in_a_transaction() -> None:
    assert capacity.write_units(0) == 1
    assert capacity.write_units(1024) == 1
    assert capacity.write_units(1025) == 2
    assert capacity.write_units(200_000) == 196
    assert capacity.write_units(1025, transactional=True) == 4


def test_reads_bill_a_unit_per_4_kb_half_when_eventually_consistent() -> None:
    # The guide's examples: 3.5 KB reads as 4 KB, 10 KB as 12 KB; a transactional read of 8 KB is 4 units.
    assert capacity.read_units(3584, consistent=True) == 1
    assert capacity.read_units(10 * 1024, consistent=True) == 3
    assert capacity.read_units(10 * 1024, consistent=False) == 1.5
    assert capacity.read_units(8 * 1024, consistent=True, transactional=True) == 4
    assert capacity.read_units(0, consistent=False) == 0.5


def test_batch_get_rounds_each_item_where_a_query_rounds_the_sum() -> None:
    # The guide's example: items of 1.5 KB and 6.5 KB cost 4 KB + 8 KB in a BatchGetItem, 8 KB in a Query.
    first, second = 1536, 6656
    each = capacity.read_units(first, consistent=True) + capacity.read_units(second, consistent=True)

    assert each == 3
    assert capacity.read_units(first + second, consistent=True) == 2


INDEX = capacity.Index(name="GSI1", keys=("GSI1PK", "GSI1SK"), projection="ALL")
TABLE_KEYS = ("PK", "SK")


def _item(**extra: str) -> dict[str, Any]:
    return {"PK": {"S": "p"}, "SK": {"S": "s"}, **{name: {"S": value} for name, value in extra.items()}}


def test_an_index_entry_costs_nothing_when_untouched_one_write_when_changed_two_when_its_key_moves() -> None:
    indexed = _item(GSI1PK="a", GSI1SK="1", body="x")

    assert capacity.index_write_units(indexed, indexed, INDEX, TABLE_KEYS) == 0
    assert capacity.index_write_units(indexed, {**indexed, "body": {"S": "y" * 2000}}, INDEX, TABLE_KEYS) == 2
    assert capacity.index_write_units(indexed, {**indexed, "GSI1SK": {"S": "2"}}, INDEX, TABLE_KEYS) == 2
    assert capacity.index_write_units(None, indexed, INDEX, TABLE_KEYS) == 1
    assert capacity.index_write_units(_item(body="x"), _item(body="y"), INDEX, TABLE_KEYS) == 0  # not in the index


def test_a_keys_only_index_ignores_other_attributes() -> None:
    keys_only = capacity.Index(name="GSI1", keys=("GSI1PK",), projection="KEYS_ONLY")
    before = _item(GSI1PK="a", body="x")

    assert capacity.index_write_units(before, {**before, "body": {"S": "y"}}, keys_only, TABLE_KEYS) == 0


# ------------------------------------------------------------------------------------------------- meter


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
