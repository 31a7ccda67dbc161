"""The store's own errors: what went wrong in DynamoDB, in storage terms.

They say nothing about HTTP: the services decide what a failed condition or an unreadable cursor means to
a caller (a 409, a 400, a duplicate tick) and raise a domain error (``stepwise.errors``). A throttle, or a
table that could not be reached, is also a :class:`stepwise.aws.TransientError`: the API answers 503 and a
node runner step that meets one is run again by the state machine. Any other fault stays a ``StorageError``:
the API answers a generic 500, and a step that meets one fails (the state machine's Catch records it).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from stepwise.aws import TransientError


class StorageError(Exception):
    """A DynamoDB call failed; ``code`` is DynamoDB's error code ("" when the table could not be reached)."""

    def __init__(self, message: str, code: str = "") -> None:
        super().__init__(message)
        self.code = code


class ConditionFailed(StorageError):
    """A conditional write found the item otherwise than required (changed, deleted, or there already).

    ``item`` is the item as it was, when DynamoDB returned it (plain values), else None. For a transaction,
    ``reasons`` holds DynamoDB's code for each of its writes, in order ("None" for a write that was fine).
    """

    def __init__(
        self, message: str, code: str = "", item: Mapping[str, Any] | None = None, reasons: tuple[str, ...] = ()
    ) -> None:
        super().__init__(message, code)
        self.item = item
        self.reasons = reasons


class Throttled(StorageError, TransientError):
    """DynamoDB refused the call for now (throughput or request rate), after the client's own retries."""


class Unreachable(StorageError, TransientError):
    """DynamoDB did not answer (a connection error or a timeout): a write may or may not have been made."""


class ValidationFailed(StorageError):
    """DynamoDB refused the request as malformed."""


class ItemTooLarge(ValidationFailed):
    """The item would exceed DynamoDB's 400 KB item size."""


class InvalidCursor(StorageError):
    """A listing cursor that this store did not hand out, or handed out for another listing."""
