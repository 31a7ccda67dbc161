"""moto's DynamoDB Query, reading one partition as DynamoDB does, instead of sorting the whole table.

moto 5.2.5 answers a Query on the table (no index) by sorting every item of every partition
(``Table.all_items()``) and keeping those of the asked partition: each Query costs the size of the table.
An execution is a log of groups read by Query (its newest group on every node step, its events, its
variables), so the local stack would slow down with every execution it ran. While
:func:`queries_read_one_partition` is active, such a Query sees only its partition's items, already in key
order; everything else about it (key conditions, order, limits, pages, filters) is moto's own code.

A private seam (pinned moto): :func:`check_seam` fails loudly, naming the installed version, if it moves.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

_WRITTEN_FOR = "5.2.5"
_PARAMETERS = ["self", "hash_key", "range_comparison", "range_objs", "limit", "exclusive_start_key"]


class _Partition:
    """A moto table seen through one partition: ``all_items`` is that partition's items, in key order."""

    def __init__(self, table: Any, hash_key: Any) -> None:
        self._table = table
        self._items = table.items.get(hash_key, {})

    def all_items(self) -> list[Any]:
        return sorted(self._items.values(), key=lambda item: item.range_key.value)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._table, name)


def check_seam() -> Callable[..., Any]:
    """moto's ``Table.query``, once its shape is the one this module was written for."""
    import moto
    from moto.dynamodb.models.table import Table

    query = Table.__dict__.get("query")
    shape_holds = (
        query is not None
        and list(inspect.signature(query).parameters)[: len(_PARAMETERS)] == _PARAMETERS
        and callable(Table.__dict__.get("all_items"))
        and "all_items" in inspect.getsource(query)
    )
    if not shape_holds:
        raise RuntimeError(
            f"moto {getattr(moto, '__version__', 'unknown')}: Table.query/all_items changed (written for moto "
            f"{_WRITTEN_FOR}); stepwise.local.partition_queries must be adapted, or pin moto"
        )
    return query  # type: ignore[return-value]


@contextmanager
def queries_read_one_partition() -> Iterator[None]:
    """While active, a Query on a moto table's own keys reads only the asked partition."""
    from moto.dynamodb.models.table import Table

    original = check_seam()
    signature = inspect.signature(original)

    def query(self: Any, *args: Any, **kwargs: Any) -> Any:
        asked = signature.bind(self, *args, **kwargs).arguments
        hash_key = asked.get("hash_key")
        on_the_table = asked.get("index_name") is None and hash_key is not None and self.range_key_attr
        return original(_Partition(self, hash_key) if on_the_table else self, *args, **kwargs)

    Table.query = query  # type: ignore[method-assign]
    try:
        yield
    finally:
        Table.query = original  # type: ignore[method-assign]
