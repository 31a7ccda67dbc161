"""What the listings share: the caller's cursor, read by the store."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from stepwise.errors import BadRequest
from stepwise.store import InvalidCursor


@contextmanager
def callers_cursor() -> Iterator[None]:
    """A cursor the store cannot use came from the caller: a 400 that says what to pass instead."""
    try:
        yield
    except InvalidCursor as error:
        raise BadRequest(str(error)) from error
