"""Listing cursors: a listing's LastEvaluatedKey as an opaque, URL-safe string, and back."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Mapping
from typing import Any

from stepwise.store.codec import Item, decode, encode
from stepwise.store.errors import InvalidCursor


def encode_cursor(key: Mapping[str, Any] | None) -> str | None:
    """An opaque, URL-safe cursor for a listing's LastEvaluatedKey (wire format); None when there is none."""
    if not key:
        return None
    plain = json.dumps(decode(key), separators=(",", ":"))
    return base64.urlsafe_b64encode(plain.encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None, expected_keys: Iterable[str]) -> Item | None:
    """The ExclusiveStartKey (wire format) a cursor stands for; ``InvalidCursor`` if it was not ours."""
    if not cursor:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        plain = json.loads(base64.urlsafe_b64decode(padded.encode()))
        if not isinstance(plain, dict) or set(plain) != set(expected_keys):
            raise ValueError(cursor)
    except (ValueError, binascii.Error) as error:
        raise InvalidCursor("cursor is not valid: pass the nextCursor of the previous page unchanged") from error
    return encode({name: str(value) for name, value in plain.items()})
