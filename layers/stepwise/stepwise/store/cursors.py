"""Listing cursors: where a listing's page ended, as an opaque, URL-safe string bound to that listing.

A cursor holds the LastEvaluatedKey and the fingerprint of the listing that handed it out (its index,
partition, key range and filters), so a cursor passed to another listing, or to the same listing with
other filters, is refused rather than read as a position it never was.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Mapping
from typing import Any

from stepwise.store.codec import Item, decode, encode
from stepwise.store.errors import InvalidCursor

UNREADABLE = "cursor is not valid: pass the nextCursor of the previous page unchanged"
FOREIGN = "cursor is not valid for this listing: pass the nextCursor of this listing's previous page"


def encode_cursor(key: Mapping[str, Any] | None, listing: str) -> str | None:
    """An opaque, URL-safe cursor for a LastEvaluatedKey (wire format) of ``listing``; None when there is none."""
    if not key:
        return None
    plain = json.dumps({"key": decode(key), "listing": listing}, separators=(",", ":"))
    return base64.urlsafe_b64encode(plain.encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None, expected_keys: Iterable[str], listing: str) -> Item | None:
    """The ExclusiveStartKey (wire format) a cursor of ``listing`` stands for; ``InvalidCursor`` otherwise."""
    if not cursor:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        plain = json.loads(base64.urlsafe_b64decode(padded.encode()))
        if not isinstance(plain, dict) or not isinstance(plain.get("key"), dict):
            raise ValueError(cursor)
    except (ValueError, binascii.Error) as error:
        raise InvalidCursor(UNREADABLE) from error
    if plain.get("listing") != listing:
        raise InvalidCursor(FOREIGN)
    if set(plain["key"]) != set(expected_keys):
        raise InvalidCursor(UNREADABLE)
    return encode({name: str(value) for name, value in plain["key"].items()})
