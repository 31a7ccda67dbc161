"""The table gateway: every DynamoDB call of the store, in plain values, with the store's own errors.

The per-aggregate stores build items and expressions from plain values; this module marshals them
(``codec``), makes the call, and turns botocore's errors into ``stepwise.store.errors``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from botocore.exceptions import BotoCoreError, ClientError

from stepwise import aws
from stepwise.clock import now
from stepwise.store.codec import decode, encode, key
from stepwise.store.cursors import decode_cursor, encode_cursor
from stepwise.store.errors import (
    ConditionFailed,
    InvalidCursor,
    ItemTooLarge,
    StorageError,
    Throttled,
    ValidationFailed,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

INDEX = "GSI1"
_INDEX_KEYS = ("PK", "SK", "GSI1PK", "GSI1SK")
# A Standard Step Functions execution lasts at most a year: node runs and log lines, written while it runs,
# expire a year after that, and the execution item itself the retention period after it ends.
_LONGEST_RUN_DAYS = 366


@dataclass(frozen=True)
class Put:
    """One item to write, and the condition it is written on (plain values)."""

    item: Mapping[str, Any]
    condition: str | None = None
    names: Mapping[str, str] = field(default_factory=dict)
    values: Mapping[str, Any] = field(default_factory=dict)


def _translated(error: ClientError) -> StorageError:
    code = aws.error_code(error)
    message = f"DynamoDB: {aws.error_message(error)}"
    if code == "ConditionalCheckFailedException":
        item = cast(Mapping[str, Any] | None, error.response.get("Item"))
        return ConditionFailed(message, code, decode(item) if item else None)
    if code == "TransactionCanceledException":
        reasons = {str(reason.get("Code", "")) for reason in error.response.get("CancellationReasons", [])}
        if reasons & aws.THROTTLING_CODES or "ThrottlingError" in reasons:
            return Throttled(message, code)
        return ConditionFailed(message, code)
    if code in aws.THROTTLING_CODES:
        return Throttled(message, code)
    if code == "ValidationException":
        if "size" in message.lower():
            return ItemTooLarge(message, code)
        return ValidationFailed(message, code)
    return StorageError(message, code)


@contextmanager
def _storage_call() -> Iterator[None]:
    try:
        yield
    except ClientError as error:
        raise _translated(error) from error
    except BotoCoreError as error:
        raise StorageError(f"DynamoDB could not be reached: {error}") from error


class Table:
    """One DynamoDB table (``PK``/``SK`` and the ``GSI1`` index); ``retention_days`` sets the items' TTL.

    ``retention_days`` 0 writes no ``expiresAt`` (items are kept); ``default_store`` passes the configured days.
    ``client`` defaults to the process's DynamoDB client.
    """

    def __init__(self, table_name: str, *, retention_days: int = 0, client: DynamoDBClient | None = None) -> None:
        self.table = table_name
        self.retention_days = retention_days
        self.client = client or aws.dynamodb()

    def expires_at(self, *, from_now: bool = False) -> int | None:
        """The TTL epoch of an ended execution's item; ``from_now`` is for items written while it may still run."""
        if not self.retention_days:
            return None
        days = self.retention_days + (_LONGEST_RUN_DAYS if from_now else 0)
        return int(now().timestamp()) + days * 86_400

    def get(
        self, pk: str, sk: str, *, consistent: bool = False, names: Mapping[str, str] | None = None
    ) -> dict[str, Any] | None:
        """The item, or None; ``names`` (``{"#n": "attribute"}``) reads only those attributes."""
        request: dict[str, Any] = {"TableName": self.table, "Key": key(pk, sk), "ConsistentRead": consistent}
        if names:
            request["ProjectionExpression"] = ", ".join(names)
            request["ExpressionAttributeNames"] = dict(names)
        with _storage_call():
            item = self.client.get_item(**request).get("Item")
        return decode(item) if item else None

    def _put_request(self, put: Put) -> dict[str, Any]:
        request: dict[str, Any] = {"TableName": self.table, "Item": encode(put.item)}
        if put.condition:
            request["ConditionExpression"] = put.condition
        if put.names:
            request["ExpressionAttributeNames"] = dict(put.names)
        if put.values:
            request["ExpressionAttributeValues"] = encode(put.values)
        return request

    def put(self, put: Put) -> None:
        """Write one item (``ConditionFailed`` when its condition does not hold)."""
        with _storage_call():
            self.client.put_item(**self._put_request(put))

    def put_all(self, puts: Sequence[Put]) -> None:
        """Write the items together or not at all (one transaction)."""
        with _storage_call():
            items: list[Any] = [{"Put": self._put_request(put)} for put in puts]
            self.client.transact_write_items(TransactItems=items)

    def update(
        self,
        pk: str,
        sk: str,
        *,
        expression: str,
        condition: str,
        names: Mapping[str, str],
        values: Mapping[str, Any],
        return_old: bool = False,
    ) -> dict[str, Any] | None:
        """Update the item on a condition; ``return_old`` returns it as it was before (and on a failed condition,
        ``ConditionFailed.item`` holds it as it is)."""
        request: dict[str, Any] = {
            "TableName": self.table,
            "Key": key(pk, sk),
            "UpdateExpression": expression,
            "ConditionExpression": condition,
            "ExpressionAttributeNames": dict(names),
            "ExpressionAttributeValues": encode(values),
        }
        if return_old:
            request["ReturnValues"] = "ALL_OLD"
            request["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
        with _storage_call():
            answer = self.client.update_item(**request)
        attributes = answer.get("Attributes")
        return decode(attributes) if attributes else None

    def delete(self, pk: str, sk: str) -> None:
        """Delete one item (nothing happens if it is not there)."""
        with _storage_call():
            self.client.delete_item(TableName=self.table, Key=key(pk, sk))

    def query(self, pk: str, *, sk_prefix: str | None = None, consistent: bool = False) -> Iterator[dict[str, Any]]:
        """Every item under ``pk`` (whose sort key starts with ``sk_prefix``), in sort key order, page by page."""
        condition = "PK = :pk"
        values: dict[str, Any] = {":pk": pk}
        if sk_prefix is not None:
            condition += " AND begins_with(SK, :prefix)"
            values[":prefix"] = sk_prefix
        paginator = self.client.get_paginator("query")
        with _storage_call():
            for page in paginator.paginate(
                TableName=self.table,
                KeyConditionExpression=condition,
                ExpressionAttributeValues=encode(values),
                ConsistentRead=consistent,
            ):
                yield from (decode(item) for item in page.get("Items", []))

    def query_index(
        self, partition: str, limit: int, cursor: str | None, *, state: str | None = None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """One page of a listing (newest first: ids sort by time), at most ``limit`` items, and the next cursor.

        ``state`` keeps only the items in that state; the pages are read on until ``limit`` items are found.
        """
        start = decode_cursor(cursor, _INDEX_KEYS)
        if start and decode(start)["GSI1PK"] != partition:
            raise InvalidCursor(
                "cursor is not valid for this listing: pass the nextCursor of this listing's previous page"
            )
        values: dict[str, Any] = {":pk": partition}
        request: dict[str, Any] = {
            "TableName": self.table,
            "IndexName": INDEX,
            "KeyConditionExpression": "GSI1PK = :pk",
            "ScanIndexForward": False,
        }
        if state:
            request["FilterExpression"] = "#state = :state"
            request["ExpressionAttributeNames"] = {"#state": "state"}
            values[":state"] = state
        request["ExpressionAttributeValues"] = encode(values)
        collected: list[dict[str, Any]] = []
        while True:
            request["Limit"] = limit - len(collected)
            if start:
                request["ExclusiveStartKey"] = start
            with _storage_call():
                answer = self.client.query(**request)
            collected.extend(decode(item) for item in answer.get("Items", []))
            start = answer.get("LastEvaluatedKey")
            if not start or len(collected) >= limit:
                return collected, encode_cursor(start)
