"""moto's TransactWriteItems at the cost of the items it writes, not of the whole table.

moto makes a transaction atomic by deep-copying every table it touches before it starts and putting the copy
back when a condition fails: a transaction costs as much as the table is big (about 30 ms at 1,000 items, 170 ms
at 5,000 on this machine's moto 5.2.5), where DynamoDB's costs what it writes. Every run that holds a
concurrency slot writes its start, its pause and its end in one (:mod:`stepwise.store.slots`), so a local stack
that has served a few hundred runs would slow down with every run it had served.

:func:`cheap_transactions` replaces ``DynamoDBBackend.transact_write_items`` with the same checks and writes,
made atomic by keeping each item it is about to write as it was (a copy of that item) and putting those back if
any write of the transaction fails. It relies on :func:`stepwise.local.stack.serialize_dynamodb`: DynamoDB
requests are served one at a time, so no other request sees the items between a write and its undoing. It is a
private seam of moto's (pinned in requirements-dev.txt); ``tests/integration/test_local_transactions.py`` fails loudly
if it moves.
"""

from __future__ import annotations

import copy
from typing import Any


def _key(table: Any, op_type: str, op: dict[str, Any]) -> dict[str, Any]:
    if op_type != "Put":
        return dict(op["Key"])
    attributes = op["Item"]
    key = {table.hash_key_attr: attributes[table.hash_key_attr]}
    if table.range_key_attr is not None:
        key[table.range_key_attr] = attributes[table.range_key_attr]
    return key


class _ConditionFailed(Exception):
    """A write's condition did not hold; ``item`` is the item as it is, when the write asked for it."""

    def __init__(self, item: Any) -> None:
        super().__init__("The conditional request failed")
        self.item = item


def _write(backend: Any, op_type: str, op: dict[str, Any], key: dict[str, Any]) -> None:
    from moto.dynamodb.comparisons import get_filter_expression

    table_name = op["TableName"]
    names, values = op.get("ExpressionAttributeNames"), op.get("ExpressionAttributeValues")
    condition = op.get("ConditionExpression")
    if condition is not None:
        current = backend.get_item(table_name, key)
        if not get_filter_expression(condition, names, values).expr(current):
            wanted = current is not None and op.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD"
            raise _ConditionFailed(current.to_json()["Attributes"] if wanted else None)
    if op_type == "Put":
        backend.put_item(table_name, op["Item"], expression_attribute_names=names, expression_attribute_values=values)
    elif op_type == "Delete":
        backend.delete_item(table_name, key)
    elif op_type == "Update":
        backend.update_item(
            table_name,
            key,
            update_expression=op["UpdateExpression"],
            expression_attribute_names=names,
            expression_attribute_values=values,
        )


def _undo(backend: Any, saved: list[tuple[Any, Any, Any, Any]]) -> None:
    """Put each item back as it was before the transaction (the last written first)."""
    for table, hash_value, range_value, before in reversed(saved):
        if before is None:
            table.delete_item(hash_value, range_value)
        elif range_value is not None:
            table.items[hash_value][range_value] = before
        else:
            table.items[hash_value] = before


def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
    """moto's ``transact_write_items``: the same checks, errors and writes, undone item by item on failure."""
    from moto.dynamodb.exceptions import (
        ConditionalCheckFailed,
        MockValidationException,
        MultipleTransactionsException,
        TooManyTransactionsException,
        TransactionCanceledException,
        TransactWriteSingleOpException,
    )
    from moto.dynamodb.models.dynamo_type import DynamoType

    if len(transact_items) > 100:
        raise TooManyTransactionsException()
    seen: set[tuple[str, str]] = set()
    saved: list[tuple[Any, Any, Any, Any]] = []
    errors: list[tuple[Any, Any, Any]] = []
    for item in transact_items:
        if len(item) > 1:
            raise TransactWriteSingleOpException
        op_type, op = next(iter(item.items()))
        try:
            if op_type not in {"ConditionCheck", "Put", "Delete", "Update"}:
                raise ValueError("Unsupported transaction operation")
            table = self.get_table(op["TableName"])
            key = _key(table, op_type, op)
            unique = (str(op["TableName"]), str(dict(sorted(key.items()))))
            if unique in seen:
                raise MultipleTransactionsException()
            seen.add(unique)
            hash_value = DynamoType(key[table.hash_key_attr])
            range_value = DynamoType(key[table.range_key_attr]) if table.range_key_attr else None
            before = table.get_item(hash_value, range_value)
            saved.append((table, hash_value, range_value, copy.deepcopy(before)))
            _write(self, op_type, op, key)
            errors.append((None, None, None))
        except (MultipleTransactionsException, MockValidationException):
            _undo(self, saved)
            raise
        except _ConditionFailed as failed:
            errors.append(("ConditionalCheckFailed", str(failed), failed.item))
        except ConditionalCheckFailed as failed:
            errors.append(("ConditionalCheckFailed", str(failed.message), None))
        except Exception as error:
            errors.append((type(error).__name__, str(error), None))
    if any(code is not None for code, _, _ in errors):
        _undo(self, saved)
        raise TransactionCanceledException(errors)


def cheap_transactions() -> None:
    """Make moto's TransactWriteItems cost what it writes (once per process; see the module docstring)."""
    from moto.dynamodb.models import DynamoDBBackend

    if getattr(DynamoDBBackend.transact_write_items, "_stepwise_cheap", False):
        return
    transact_write_items._stepwise_cheap = True  # type: ignore[attr-defined]
    DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]
