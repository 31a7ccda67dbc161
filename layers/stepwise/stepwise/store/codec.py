"""DynamoDB's wire format, through boto3's own TypeSerializer and TypeDeserializer.

The store speaks plain values (str, int, bool) to this codec and nothing else does. Variables, node
outputs, log lines and definitions are stored as compact JSON strings (``to_json``), not as DynamoDB maps:
exact (a float never round-trips through ``Decimal``), one attribute to read, and no 32-level nesting limit.
So every number the store keeps is a whole number (a version, a revision, a count, an epoch), and
``decode`` gives it back as an ``int``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal
from functools import cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

# An item (or a key, or expression values) in DynamoDB's wire format: {"name": {"S": "..."}, ...}.
Item = dict[str, Any]


@cache
def _serializer() -> TypeSerializer:
    # Imported on first use: importing boto3 costs a handler's cold start about 80 ms before it needs it.
    from boto3.dynamodb.types import TypeSerializer

    return TypeSerializer()


@cache
def _deserializer() -> TypeDeserializer:
    from boto3.dynamodb.types import TypeDeserializer

    return TypeDeserializer()


def encode(values: Mapping[str, Any]) -> Item:
    """The wire format of plain values; a None leaves its attribute out (DynamoDB has no empty attributes)."""
    serialize = _serializer().serialize
    return {name: serialize(value) for name, value in values.items() if value is not None}


def decode(item: Mapping[str, Any]) -> dict[str, Any]:
    """Plain values from the wire format; numbers come back as ``int`` (the store keeps only whole numbers)."""
    deserialize = _deserializer().deserialize
    return {name: _plain(deserialize(value)) for name, value in item.items()}


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


def key(pk: str, sk: str) -> Item:
    """The wire format of an item's primary key."""
    return encode({"PK": pk, "SK": sk})


def to_json(value: Any) -> str:
    """The compact JSON string a value is stored as (UTF-8 as is: fewer bytes than ``\\u`` escapes)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def from_json(text: str | None, default: Any = None) -> Any:
    """The value stored by ``to_json``; ``default`` when the attribute is absent."""
    return default if text is None else json.loads(text)
