"""What a process's DynamoDB and S3 calls would be billed in AWS: item sizes and capacity units, per call.

:class:`Meter` wraps botocore's ``BaseClient._make_api_call``. For every DynamoDB call made while a scope is set
(the bench sets one around each node-runner invocation) it records the call and its units as AWS bills them:

- Item size: the lengths of attribute names and values (:func:`item_size`, after "DynamoDB item sizes and
  formats" in the DynamoDB Developer Guide).
- Writes: one unit per KB of the item, rounded up per item, at least one. PutItem and UpdateItem bill the
  larger of the item before and after, DeleteItem the item deleted; a write whose condition fails still bills
  the item (as it was, or as it would have been). TransactWriteItems bills two units per KB per item.
  BatchWriteItem bills each item on its own.
- Global secondary indexes: a write that puts, changes or removes an item's index entry costs units in the
  index too (two writes when the index key changes), sized by the entry (the whole item with ``ALL``).
- Reads: one unit per 4 KB of the whole item (a projection reads less but bills the same), half for an
  eventually consistent read, at least one (half) per item even when none is found; Query and Scan add up
  the items they read (before any filter) and round up once per request; BatchGetItem bills each item;
  TransactGetItems two units per 4 KB per item.

The before and after images, whole items behind a projection, and items a filter dropped are read with extra
calls that bypass the count; the time they take is kept in :attr:`Meter.overhead_seconds`, so a caller can
take it off its timings. S3 calls are counted by the price class they bill in (PUT/COPY/POST/LIST, GET).
"""

from __future__ import annotations

import base64
import math
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

WRITE_UNIT_BYTES = 1024
READ_UNIT_BYTES = 4096
# A List or Map costs 3 bytes whatever it holds, and each of its elements 1 byte more.
CONTAINER_BYTES = 3
ELEMENT_BYTES = 1

READS = frozenset({"GetItem", "Query", "Scan", "BatchGetItem", "TransactGetItems"})
WRITES = frozenset({"PutItem", "UpdateItem", "DeleteItem", "TransactWriteItems", "BatchWriteItem"})
# S3 bills requests in two classes (the GET class also holds HEAD and SELECT); DELETE is free.
S3_PUT_CLASS = frozenset(
    {"PutObject", "CopyObject", "CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload", "ListObjectsV2"}
)
S3_GET_CLASS = frozenset({"GetObject", "HeadObject", "SelectObjectContent"})
# What a Query or Scan request may carry that changes what it returns but not what it reads (and bills).
_NOT_BILLED = ("FilterExpression", "ProjectionExpression", "Select", "AttributesToGet", "QueryFilter", "ScanFilter")
_PLACEHOLDER = re.compile(r"[#:][A-Za-z0-9_]+")

Item = Mapping[str, Any]


# ------------------------------------------------------------------------------------------------ sizes


def _number_size(text: str) -> int:
    """About one byte per two significant digits, plus one (leading and trailing zeroes do not count)."""
    digits = Decimal(text).normalize().as_tuple().digits
    significant = len(digits) if any(digits) else 1
    return math.ceil(significant / 2) + 1


def _binary_size(value: Any) -> int:
    # Sent base64-encoded over the wire, billed by its raw bytes; boto3 hands us bytes either way.
    return len(value) if isinstance(value, bytes | bytearray) else len(base64.b64decode(value))


def value_size(value: Mapping[str, Any]) -> int:
    """Bytes of one attribute value in DynamoDB's wire format (``{"S": "..."}``, ``{"M": {...}}``, ...)."""
    (kind, content), *_ = value.items()
    if kind == "S":
        return len(content.encode())
    if kind == "N":
        return _number_size(content)
    if kind == "B":
        return _binary_size(content)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(len(text.encode()) for text in content)
    if kind == "NS":
        return sum(_number_size(text) for text in content)
    if kind == "BS":
        return sum(_binary_size(raw) for raw in content)
    if kind == "L":
        return CONTAINER_BYTES + sum(ELEMENT_BYTES + value_size(element) for element in content)
    if kind == "M":
        return CONTAINER_BYTES + sum(
            ELEMENT_BYTES + len(name.encode()) + value_size(element) for name, element in content.items()
        )
    raise ValueError(f"unknown DynamoDB type {kind!r}")


def item_size(item: Item) -> int:
    """Bytes of an item in DynamoDB's wire format, as AWS sizes it for capacity units: names plus values."""
    return sum(len(name.encode()) + value_size(value) for name, value in item.items())


def write_units(size: int, *, transactional: bool = False) -> int:
    """Write units for one item of ``size`` bytes (1 per KB, rounded up, at least 1; twice in a transaction)."""
    units = max(1, math.ceil(size / WRITE_UNIT_BYTES))
    return 2 * units if transactional else units


def read_units(size: int, *, consistent: bool, transactional: bool = False) -> float:
    """Read units for ``size`` bytes read at once (1 per 4 KB, rounded up, at least 1; half when eventually
    consistent, twice in a transaction)."""
    units = max(1, math.ceil(size / READ_UNIT_BYTES))
    if transactional:
        return 2.0 * units
    return float(units) if consistent else units / 2


# ---------------------------------------------------------------------------------------------- indexes


@dataclass(frozen=True)
class Index:
    """A global secondary index: its key attributes and what it projects (``ALL``, ``KEYS_ONLY``, ``INCLUDE``)."""

    name: str
    keys: tuple[str, ...]
    projection: str
    included: tuple[str, ...] = ()

    def entry(self, item: Item | None, table_keys: tuple[str, ...]) -> dict[str, Any] | None:
        """The item's entry in this index, or None when the item lacks an index key (a sparse index)."""
        if item is None or any(key not in item for key in self.keys):
            return None
        if self.projection == "ALL":
            return dict(item)
        kept = {*table_keys, *self.keys, *(self.included if self.projection == "INCLUDE" else ())}
        return {name: value for name, value in item.items() if name in kept}


def index_write_units(before: Item | None, after: Item | None, index: Index, table_keys: tuple[str, ...]) -> int:
    """Units a table write costs in ``index``: an entry put or removed is one write, a changed index key two
    (remove the old, put the new), a changed projection one, an untouched entry none."""
    old, new = index.entry(before, table_keys), index.entry(after, table_keys)
    if old is None and new is None:
        return 0
    if old is None or new is None:
        return write_units(item_size(old or new or {}))
    if any(old[key] != new[key] for key in index.keys):
        return write_units(item_size(old)) + write_units(item_size(new))
    if old == new:
        return 0
    return write_units(max(item_size(old), item_size(new)))


# ------------------------------------------------------------------------------------------------ usage


@dataclass(frozen=True)
class Call:
    """One metered call: when, in which scope, and what it is billed."""

    at: float
    scope: str
    service: str
    operation: str
    read_units: float = 0.0
    write_units: float = 0.0
    index_write_units: float = 0.0


@dataclass
class Usage:
    """The sum of some calls."""

    dynamodb_reads: int = 0
    dynamodb_writes: int = 0
    read_units: float = 0.0
    write_units: float = 0.0
    index_write_units: float = 0.0
    s3_put_class: int = 0
    s3_get_class: int = 0

    @classmethod
    def of(cls, calls: list[Call]) -> Usage:
        """The usage of ``calls``."""
        usage = cls()
        for call in calls:
            if call.service == "dynamodb":
                usage.dynamodb_reads += call.operation in READS
                usage.dynamodb_writes += call.operation in WRITES
                usage.read_units += call.read_units
                usage.write_units += call.write_units
                usage.index_write_units += call.index_write_units
            elif call.service == "s3":
                usage.s3_put_class += call.operation in S3_PUT_CLASS
                usage.s3_get_class += call.operation in S3_GET_CLASS
        return usage

    @property
    def all_write_units(self) -> float:
        """Write units in the table and its indexes: what the bill counts."""
        return self.write_units + self.index_write_units


# ------------------------------------------------------------------------------------------------ meter


@dataclass
class _Table:
    keys: tuple[str, ...]
    indexes: tuple[Index, ...]


@dataclass
class Meter:
    """Records the billed units of every DynamoDB and S3 call made while :attr:`scope` is set (any thread)."""

    scope: str | None = None
    # Off: calls are neither counted nor accounted for (a profile of the node path without the meter's calls).
    enabled: bool = True
    calls: list[Call] = field(default_factory=list)
    overhead_seconds: float = 0.0
    _tables: dict[str, _Table] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @contextmanager
    def installed(self) -> Iterator[Meter]:
        """Wrap botocore's ``_make_api_call`` meanwhile (every client, every thread), then put it back."""
        from botocore.client import BaseClient

        # A private method, absent from botocore's type stubs: hence getattr and setattr.
        original = getattr(BaseClient, "_make_api_call")  # noqa: B009
        meter = self

        def metered(client: BaseClient, operation: str, params: dict[str, Any]) -> Any:
            scope = meter.scope
            service = client.meta.service_model.service_name
            if scope is None or service not in ("dynamodb", "s3"):
                return original(client, operation, params)
            if service == "s3":
                meter._record(Call(time.monotonic(), scope, service, operation))
                return original(client, operation, params)

            def uncounted(name: str, request: dict[str, Any]) -> Any:
                return original(client, name, request)

            return meter._dynamodb_call(uncounted, operation, params, scope)

        setattr(BaseClient, "_make_api_call", metered)  # noqa: B010
        try:
            yield self
        finally:
            setattr(BaseClient, "_make_api_call", original)  # noqa: B010

    @contextmanager
    def scoped(self, scope: str) -> Iterator[None]:
        """Count the calls made meanwhile under ``scope`` (when enabled)."""
        self.scope = scope if self.enabled else None
        try:
            yield
        finally:
            self.scope = None

    def mark(self) -> int:
        """A position in :attr:`calls`: ``usage(since=mark)`` sums what came after it."""
        with self._lock:
            return len(self.calls)

    def usage(self, since: int = 0, *, scope: str | None = None, between: tuple[float, float] | None = None) -> Usage:
        """The usage of the calls after ``since`` (in ``scope``, and made between two ``time.monotonic`` times)."""
        with self._lock:
            calls = self.calls[since:]
        return Usage.of(
            [
                call
                for call in calls
                if (scope is None or call.scope == scope) and (between is None or between[0] <= call.at <= between[1])
            ]
        )

    def first_call(self, since: int = 0, *, scope: str | None = None) -> Call:
        """The first call after ``since`` (in ``scope``)."""
        with self._lock:
            calls = self.calls[since:]
        return next(call for call in calls if scope is None or call.scope == scope)

    def _record(self, call: Call) -> None:
        with self._lock:
            self.calls.append(call)

    # -- DynamoDB ------------------------------------------------------------------------------------------

    def _dynamodb_call(
        self, uncounted: Callable[[str, dict[str, Any]], Any], operation: str, params: dict[str, Any], scope: str
    ) -> Any:
        accounting = _Accounting(self, uncounted)
        began = time.perf_counter()
        accounting.before(operation, params)
        self.overhead_seconds += time.perf_counter() - began
        at = time.monotonic()
        try:
            answer = uncounted(operation, params)
        except Exception as error:
            began = time.perf_counter()
            reads, writes, index_writes = accounting.failed(error)
            self._record(Call(at, scope, "dynamodb", operation, reads, writes, index_writes))
            self.overhead_seconds += time.perf_counter() - began
            raise
        began = time.perf_counter()
        reads, writes, index_writes = accounting.succeeded(operation, params, answer)
        self._record(Call(at, scope, "dynamodb", operation, reads, writes, index_writes))
        self.overhead_seconds += time.perf_counter() - began
        return answer

    def table(self, name: str, uncounted: Callable[[str, dict[str, Any]], Any]) -> _Table:
        """The key attributes and global secondary indexes of table ``name`` (described once)."""
        if name not in self._tables:
            described = uncounted("DescribeTable", {"TableName": name})["Table"]
            indexes = tuple(
                Index(
                    name=index["IndexName"],
                    keys=tuple(key["AttributeName"] for key in index["KeySchema"]),
                    projection=index["Projection"]["ProjectionType"],
                    included=tuple(index["Projection"].get("NonKeyAttributes", ())),
                )
                for index in described.get("GlobalSecondaryIndexes", [])
            )
            self._tables[name] = _Table(tuple(key["AttributeName"] for key in described["KeySchema"]), indexes)
        return self._tables[name]


def _pruned(request: dict[str, Any]) -> dict[str, Any]:
    """``request`` without the names and values its remaining expressions no longer use."""
    used = set()
    for name, text in request.items():
        if name.endswith("Expression") and isinstance(text, str):
            used.update(_PLACEHOLDER.findall(text))
    for field_name in ("ExpressionAttributeNames", "ExpressionAttributeValues"):
        if field_name in request:
            kept = {key: value for key, value in request[field_name].items() if key in used}
            if kept:
                request[field_name] = kept
            else:
                del request[field_name]
    return request


class _Accounting:
    """The units of one DynamoDB call: images read before it, units worked out after it."""

    def __init__(self, meter: Meter, uncounted: Callable[[str, dict[str, Any]], Any]) -> None:
        self.meter = meter
        self.uncounted = uncounted
        # (table, key, item before, item written or None for a delete/update, transactional)
        self.writes: list[tuple[str, dict[str, Any], Item | None, Item | None, bool]] = []

    def _key(self, table: str, item: Item) -> dict[str, Any]:
        return {name: item[name] for name in self.meter.table(table, self.uncounted).keys}

    def _item(self, table: str, key: Mapping[str, Any]) -> Item | None:
        answer = self.uncounted("GetItem", {"TableName": table, "Key": dict(key), "ConsistentRead": True})
        item: Item | None = answer.get("Item")
        return item

    def _items(self, table: str, keys: list[dict[str, Any]]) -> list[Item | None]:
        """The items with these keys (None where there is none), read 100 to a call: a batch of 100 items
        would take the meter 100 calls otherwise, which would weigh on the timings it leaves out."""
        names = self.meter.table(table, self.uncounted).keys
        found: dict[tuple[str, ...], Item] = {}
        for start in range(0, len(keys), 100):
            request: dict[str, Any] = {"Keys": keys[start : start + 100], "ConsistentRead": True}
            while request.get("Keys"):
                answer = self.uncounted("BatchGetItem", {"RequestItems": {table: request}})
                for item in answer.get("Responses", {}).get(table, []):
                    found[tuple(str(item[name]) for name in names)] = item
                request = answer.get("UnprocessedKeys", {}).get(table, {})
        return [found.get(tuple(str(key[name]) for name in names)) for key in keys]

    def _plan_write(self, kind: str, request: Mapping[str, Any], transactional: bool) -> None:
        table = request["TableName"]
        key = self._key(table, request["Item"]) if kind == "Put" else dict(request["Key"])
        written = request["Item"] if kind == "Put" else None
        self.writes.append((table, key, self._item(table, key), written, transactional))

    def before(self, operation: str, params: dict[str, Any]) -> None:
        if operation in ("PutItem", "UpdateItem", "DeleteItem"):
            self._plan_write(operation.removesuffix("Item"), params, transactional=False)
        elif operation == "TransactWriteItems":
            for action in params["TransactItems"]:
                ((kind, request),) = action.items()
                self._plan_write(kind, request, transactional=True)
        elif operation == "BatchWriteItem":
            for table, requests in params["RequestItems"].items():
                keys = [
                    self._key(table, request["PutRequest"]["Item"])
                    if "PutRequest" in request
                    else dict(request["DeleteRequest"]["Key"])
                    for request in requests
                ]
                befores = self._items(table, keys)
                for request, key, before in zip(requests, keys, befores, strict=True):
                    written = request["PutRequest"]["Item"] if "PutRequest" in request else None
                    self.writes.append((table, key, before, written, False))

    def _written(self) -> tuple[float, float]:
        """Units of writes that happened: the larger of each item before and after, and its index entries."""
        units = index_units = 0.0
        for table, key, before, written, transactional in self.writes:
            after = written if written is not None else self._item(table, key)
            units += write_units(max(item_size(before or {}), item_size(after or {})), transactional=transactional)
            shape = self.meter.table(table, self.uncounted)
            index_units += sum(index_write_units(before, after, index, shape.keys) for index in shape.indexes)
        return units, index_units

    def failed(self, error: Exception) -> tuple[float, float, float]:
        code = getattr(error, "response", {}).get("Error", {}).get("Code", "")
        if code not in ("ConditionalCheckFailedException", "TransactionCanceledException"):
            return 0.0, 0.0, 0.0  # refused before any work (validation, throttling): not billed
        # A write whose condition failed bills the item as it is, or as it would have been; no index changed.
        units = sum(
            write_units(max(item_size(before or {}), item_size(written or {})), transactional=transactional)
            for _, _, before, written, transactional in self.writes
        )
        return 0.0, float(units), 0.0

    def succeeded(self, operation: str, params: dict[str, Any], answer: Any) -> tuple[float, float, float]:
        if operation in WRITES:
            units, index_units = self._written()
            return 0.0, units, index_units
        if operation == "GetItem":
            item = answer.get("Item")
            if item is not None and ("ProjectionExpression" in params or "AttributesToGet" in params):
                item = self._item(params["TableName"], params["Key"])
            consistent = bool(params.get("ConsistentRead"))
            return read_units(item_size(item or {}), consistent=consistent), 0.0, 0.0
        if operation in ("Query", "Scan"):
            items = answer.get("Items", [])
            if any(name in params for name in _NOT_BILLED):
                read = _pruned({name: value for name, value in params.items() if name not in _NOT_BILLED})
                items = self.uncounted(operation, read).get("Items", [])
            # An index is read eventually consistent whatever the request says (DynamoDB refuses otherwise).
            consistent = bool(params.get("ConsistentRead")) and "IndexName" not in params
            return read_units(sum(item_size(item) for item in items), consistent=consistent), 0.0, 0.0
        if operation == "BatchGetItem":
            units = 0.0
            for table, request in params["RequestItems"].items():
                unprocessed = answer.get("UnprocessedKeys", {}).get(table, {}).get("Keys", [])
                keys = [key for key in request["Keys"] if key not in unprocessed]
                for item in self._items(table, keys):
                    units += read_units(item_size(item or {}), consistent=bool(request.get("ConsistentRead")))
            return units, 0.0, 0.0
        if operation == "TransactGetItems":
            units = 0.0
            for action in params["TransactItems"]:
                request = action["Get"]
                size = item_size(self._item(request["TableName"], request["Key"]) or {})
                units += read_units(size, consistent=True, transactional=True)
            return units, 0.0, 0.0
        return 0.0, 0.0, 0.0  # DescribeTable and friends: control plane, not billed per request
