"""The table gateway: every DynamoDB call of the store, in plain values, with the store's own errors.

The per-aggregate stores build items and expressions from plain values; this module marshals them
(``codec``), makes the call, and turns botocore's errors into ``stepwise.store.errors``.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from botocore.exceptions import BotoCoreError, ClientError

from stepwise import aws
from stepwise.clock import now
from stepwise.store.codec import decode, encode, key
from stepwise.store.cursors import FOREIGN, decode_cursor, encode_cursor
from stepwise.store.errors import (
    ConditionFailed,
    InvalidCursor,
    ItemTooLarge,
    StorageError,
    Throttled,
    Unreachable,
    ValidationFailed,
)
from stepwise.store.listings import Listing

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

# A listing page reads at most this many times (a selective filter over a long history ends a page early).
MAX_READS_PER_PAGE = 10
# With filters, each read asks DynamoDB for at least this many items (it counts the items it reads).
FILTERED_READ = 100
# DynamoDB's own limits on one BatchWriteItem and one BatchGetItem request.
BATCH_WRITE_ITEMS = 25
BATCH_GET_KEYS = 100
# What DynamoDB left unprocessed (throttled) is sent again, this many times at most, after a growing pause.
BATCH_ATTEMPTS = 8
_BATCH_PAUSE_SECONDS = 0.05
# A Standard Step Functions execution lasts at most a year: node runs and log lines, written while it runs,
# expire a year after that, and the execution item itself the retention period after it ends.
_LONGEST_RUN_DAYS = 366
# A transaction that met another one on the same item (a hot slot counter) is tried again, up to this many
# times, after a short random pause: it wrote nothing, and botocore does not retry it.
TRANSACTION_TRIES = 6
_CONFLICT_PAUSE_SECONDS = 0.02


@dataclass(frozen=True)
class Put:
    """One item to write, and the condition it is written on (plain values)."""

    item: Mapping[str, Any]
    condition: str | None = None
    names: Mapping[str, str] = field(default_factory=dict)
    values: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Update:
    """One update of the item (pk, sk), and the condition it is made on (plain values)."""

    pk: str
    sk: str
    expression: str
    condition: str
    names: Mapping[str, str] = field(default_factory=dict)
    values: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Delete:
    """One item to delete in a transaction (unconditionally: deleting what is not there changes nothing)."""

    pk: str
    sk: str


def _translated(error: ClientError) -> StorageError:
    code = aws.error_code(error)
    message = f"DynamoDB: {aws.error_message(error)}"
    if code == "ConditionalCheckFailedException":
        item = cast(Mapping[str, Any] | None, error.response.get("Item"))
        return ConditionFailed(message, code, decode(item) if item else None)
    if code == "TransactionCanceledException":
        # One reason per write, in the order sent ("None" for those that would have gone through).
        codes = tuple(str(reason.get("Code", "")) for reason in error.response.get("CancellationReasons", []))
        if set(codes) & aws.THROTTLING_CODES or "ThrottlingError" in codes:
            return Throttled(message, code)
        return ConditionFailed(message, code, reasons=codes)
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
        raise Unreachable(f"DynamoDB could not be reached: {error}") from error


class Table:
    """One DynamoDB table (``PK``/``SK``, indexes ``GSI1`` to ``GSI3``); ``retention_days`` sets the items' TTL.

    ``retention_days`` 0 writes no ``expiresAt`` (items are kept); the composition root passes the configured days.
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

    def _update_request(self, update: Update) -> dict[str, Any]:
        request: dict[str, Any] = {
            "TableName": self.table,
            "Key": key(update.pk, update.sk),
            "UpdateExpression": update.expression,
        }
        if update.condition:
            request["ConditionExpression"] = update.condition
        if update.names:
            request["ExpressionAttributeNames"] = dict(update.names)
        if update.values:
            request["ExpressionAttributeValues"] = encode(update.values)
        return request

    def apply(self, update: Update) -> None:
        """Make one update on its own (``ConditionFailed`` when its condition does not hold)."""
        with _storage_call():
            self.client.update_item(**self._update_request(update))

    def write_all(self, writes: Sequence[Put | Update | Delete]) -> None:
        """Make the writes together or not at all (one transaction; ``ConditionFailed`` if any condition fails,
        its ``reasons`` saying which). A transaction canceled only because another one was writing the same
        item at the same time is tried again (``TRANSACTION_TRIES`` in all)."""
        items = [self._transact_item(write) for write in writes]
        for attempt in range(1, TRANSACTION_TRIES + 1):
            try:
                with _storage_call():
                    self.client.transact_write_items(TransactItems=items)
                return
            except ConditionFailed as failed:
                conflict = "TransactionConflict" in failed.reasons and "ConditionalCheckFailed" not in failed.reasons
                if not conflict or attempt == TRANSACTION_TRIES:
                    raise
            time.sleep(random.uniform(0, _CONFLICT_PAUSE_SECONDS * 2**attempt))

    def _transact_item(self, write: Put | Update | Delete) -> Any:
        if isinstance(write, Put):
            return {"Put": self._put_request(write)}
        if isinstance(write, Update):
            return {"Update": self._update_request(write)}
        return {"Delete": {"TableName": self.table, "Key": key(write.pk, write.sk)}}

    def put_all(self, items: Sequence[Mapping[str, Any]]) -> None:
        """Write whole items, unconditionally, 25 to a call (BatchWriteItem): each is billed as a PutItem would be.

        What DynamoDB leaves unprocessed is sent again; ``Throttled`` if some is still left after a few tries.
        The items are not written together: a failure may leave some written and others not.
        """
        for start in range(0, len(items), BATCH_WRITE_ITEMS):
            chunk = items[start : start + BATCH_WRITE_ITEMS]
            requests: list[Any] = [{"PutRequest": {"Item": encode(item)}} for item in chunk]
            for attempt in range(BATCH_ATTEMPTS):
                with _storage_call():
                    answer = self.client.batch_write_item(RequestItems={self.table: requests})
                requests = list(answer.get("UnprocessedItems", {}).get(self.table, []))
                if not requests:
                    break
                time.sleep(_BATCH_PAUSE_SECONDS * 2**attempt)
            else:
                raise Throttled(f"DynamoDB left {len(requests)} items unwritten after {BATCH_ATTEMPTS} tries")

    def get_all(self, keys: Sequence[tuple[str, str]], *, consistent: bool = False) -> dict[tuple[str, str], Any]:
        """The items with these (pk, sk) keys that exist, 100 keys to a call (BatchGetItem), by key."""
        found: dict[tuple[str, str], Any] = {}
        unique = list(dict.fromkeys(keys))
        for start in range(0, len(unique), BATCH_GET_KEYS):
            request: dict[str, Any] = {
                "Keys": [key(pk, sk) for pk, sk in unique[start : start + BATCH_GET_KEYS]],
                "ConsistentRead": consistent,
            }
            for attempt in range(BATCH_ATTEMPTS):
                with _storage_call():
                    answer = self.client.batch_get_item(RequestItems={self.table: cast(Any, request)})
                for item in answer.get("Responses", {}).get(self.table, []):
                    plain = decode(item)
                    found[(plain["PK"], plain["SK"])] = plain
                left = answer.get("UnprocessedKeys", {}).get(self.table)
                if not left or not left.get("Keys"):
                    break
                request = dict(left)
                time.sleep(_BATCH_PAUSE_SECONDS * 2**attempt)
            else:
                raise Throttled(f"DynamoDB left keys unread after {BATCH_ATTEMPTS} tries")
        return found

    def update(
        self,
        pk: str,
        sk: str,
        *,
        expression: str,
        condition: str,
        names: Mapping[str, str] | None = None,
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
            "ExpressionAttributeValues": encode(values),
        }
        if names:
            request["ExpressionAttributeNames"] = dict(names)
        if return_old:
            request["ReturnValues"] = "ALL_OLD"
            request["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
        with _storage_call():
            answer = self.client.update_item(**request)
        attributes = answer.get("Attributes")
        return decode(attributes) if attributes else None

    def delete(self, pk: str, sk: str, *, condition: str | None = None) -> None:
        """Delete one item (nothing happens if it is not there); with ``condition``, only if it holds, else
        ``ConditionFailed`` with the item as it is."""
        request: dict[str, Any] = {"TableName": self.table, "Key": key(pk, sk)}
        if condition:
            request["ConditionExpression"] = condition
            request["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
        with _storage_call():
            self.client.delete_item(**request)

    def query(
        self,
        pk: str,
        *,
        sk_prefix: str | None = None,
        sk_range: tuple[str, str] | None = None,
        descending: bool = False,
        limit: int | None = None,
        page_size: int | None = None,
        consistent: bool = False,
        names: Mapping[str, str] | None = None,
    ) -> Iterator[dict[str, Any]]:
        """The items under ``pk`` whose sort key starts with ``sk_prefix`` (or lies in ``sk_range``, both ends
        included), in sort key order (``descending``: newest first), page by page; at most ``limit`` of them.

        ``page_size`` reads that many items per call (a caller that may stop early reads no more than it uses);
        ``names`` (``{"#n": "attribute"}``) returns only those attributes.
        """
        condition = "PK = :pk"
        values: dict[str, Any] = {":pk": pk}
        if sk_range is not None:
            condition += " AND SK BETWEEN :low AND :high"
            values[":low"], values[":high"] = sk_range
        elif sk_prefix is not None:
            condition += " AND begins_with(SK, :prefix)"
            values[":prefix"] = sk_prefix
        request: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": condition,
            "ExpressionAttributeValues": encode(values),
            "ConsistentRead": consistent,
            "ScanIndexForward": not descending,
        }
        if names:
            request["ProjectionExpression"] = ", ".join(names)
            request["ExpressionAttributeNames"] = dict(names)
        left = limit
        while left is None or left > 0:
            sizes = [value for value in (left, page_size) if value is not None]
            if sizes:
                request["Limit"] = min(sizes)
            with _storage_call():
                answer = self.client.query(**request)
            items = answer.get("Items", [])
            yield from (decode(item) for item in items)
            if left is not None:
                left -= len(items)
            if not answer.get("LastEvaluatedKey"):
                return
            request["ExclusiveStartKey"] = answer["LastEvaluatedKey"]

    def query_index(self, index: str, partition: str) -> Iterator[dict[str, Any]]:
        """Every item of one partition of ``index`` (keyed ``<index>PK``), in sort key order, page by page."""
        request: dict[str, Any] = {
            "TableName": self.table,
            "IndexName": index,
            "KeyConditionExpression": f"{index}PK = :pk",
            "ExpressionAttributeValues": encode({":pk": partition}),
        }
        while True:
            with _storage_call():
                answer = self.client.query(**request)
            yield from (decode(item) for item in answer.get("Items", []))
            if not answer.get("LastEvaluatedKey"):
                return
            request["ExclusiveStartKey"] = answer["LastEvaluatedKey"]

    def list_page(self, listing: Listing, limit: int, cursor: str | None) -> tuple[list[dict[str, Any]], str | None]:
        """One page of a listing, newest first: at most ``limit`` items, and the cursor of the next page.

        Without filters each read asks for what is still missing. With filters DynamoDB counts the items it
        reads, not the ones it keeps, so each read asks for more and the page ends at its ``limit``-th item.
        At most ``MAX_READS_PER_PAGE`` reads: a page may then hold fewer items, with a cursor to go on from.
        ``InvalidCursor`` for a cursor of another listing (or the same one with other filters).
        """
        fingerprint = listing.fingerprint()
        start = decode_cursor(cursor, listing.key_names, fingerprint)
        if start is not None and decode(start)[listing.key_names[2]] != listing.partition:
            raise InvalidCursor(FOREIGN)
        request, values = listing.query()
        request.update(TableName=self.table, ExpressionAttributeValues=encode(values))
        collected: list[dict[str, Any]] = []
        for _ in range(MAX_READS_PER_PAGE):
            missing = limit - len(collected)
            request["Limit"] = max(missing, FILTERED_READ) if listing.filters else missing
            if start:
                request["ExclusiveStartKey"] = start
            try:
                with _storage_call():
                    answer = self.client.query(**request)
            except ValidationFailed as error:
                if cursor is None:
                    raise
                # Only a start key made up by hand gets this far (one outside the listing's key range).
                raise InvalidCursor(FOREIGN) from error
            collected.extend(decode(item) for item in answer.get("Items", []))
            start = answer.get("LastEvaluatedKey")
            if len(collected) > limit:
                collected = collected[:limit]
                start = encode({name: collected[-1][name] for name in listing.key_names})
            if not start or len(collected) == limit:
                break
        return collected, encode_cursor(start, fingerprint)

    def scan(
        self, condition: str, values: Mapping[str, Any], names: Mapping[str, str] | None = None
    ) -> Iterator[dict[str, Any]]:
        """Every item for which ``condition`` holds, page by page: for one-off migrations, never for a request."""
        paginator = self.client.get_paginator("scan")
        request: dict[str, Any] = {
            "TableName": self.table,
            "FilterExpression": condition,
            "ExpressionAttributeValues": encode(values),
            "ConsistentRead": True,
        }
        if names:
            request["ExpressionAttributeNames"] = dict(names)
        with _storage_call():
            for page in paginator.paginate(**request):
                yield from (decode(item) for item in page.get("Items", []))
