"""The bench's DynamoDB bill: item sizes and capacity units as AWS documents them (bench/capacity.py).

Sizes and units are checked against cases worked by hand from the DynamoDB Developer Guide ("DynamoDB item
sizes and formats", "DynamoDB read and write operations", the item size quota's example); the meter against
moto, with a table that has a global secondary index projecting everything, as the product's table does.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.bench import load_bench_module

capacity = load_bench_module("capacity")


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
