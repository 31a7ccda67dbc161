"""One line per execution state change in the local stack's log, as a DynamoDB stream consumer would see them.

moto keeps the table in this process, and every write it applies (PutItem, UpdateItem, DeleteItem, each
item of a transaction) hands the item before and after to the table's stream shard,
``Table.stream_shard.add(old, new)``: the hook behind DynamoDB Streams. :func:`print_state_changes` takes
that place for the execution records (``EXECUTION#<id>`` / ``EXECUTION``, see ``stepwise.store``) and
prints ``HH:MM:SS execution <id> <STATE>`` when the ``state`` attribute changes, with the error of a
FAILED one. Whoever wrote it (the API, the node runner, a schedule), the line is the same.

It is a private seam of moto 5.2.5 (pinned in ``requirements-dev.txt``): :func:`print_state_changes`
fails loudly, naming the installed version, if a moto upgrade moves it.
"""

from __future__ import annotations

import contextlib
import inspect
import time
from collections.abc import Iterator
from typing import Any, TextIO

_EXECUTION_PREFIX = "EXECUTION#"
_EXECUTION_SORT_KEY = "EXECUTION"
_WRITTEN_FOR = "5.2.5"
_ERROR_CHARS = 200


def _value(item: Any, name: str) -> Any:
    attribute = item.attrs.get(name) if item is not None else None
    return attribute.value if attribute is not None else None


class ExecutionStateLog:
    """Stands in for a moto table's stream shard: prints execution state changes, passes the rest on."""

    def __init__(self, out: TextIO, stream: Any = None) -> None:
        self.out = out
        self._stream = stream  # a real stream the table already had (none in the template today)

    @property
    def stream(self) -> Any:
        """The stream the table had before this log (None: none); a pickled table keeps it instead of the log."""
        return self._stream

    def add(self, old: Any, new: Any) -> None:
        """Called by moto with the item before and after each write, under the table's request lock."""
        if self._stream is not None:
            self._stream.add(old, new)
        if new is None or _value(new, "SK") != _EXECUTION_SORT_KEY:
            return
        key = _value(new, "PK")
        state = _value(new, "state")
        if not isinstance(key, str) or not key.startswith(_EXECUTION_PREFIX) or state == _value(old, "state"):
            return
        line = f"{time.strftime('%H:%M:%S')} execution {key.removeprefix(_EXECUTION_PREFIX)} {state}"
        error = _value(new, "error")
        if state == "FAILED" and isinstance(error, str):
            line += f": {error if len(error) <= _ERROR_CHARS else error[:_ERROR_CHARS] + '...'}"
        self.out.write(line + "\n")  # one write: the request log writes to the same stream from other threads
        self.out.flush()

    def __deepcopy__(self, memo: dict[int, Any]) -> ExecutionStateLog:
        # moto copies the whole table before each transaction (to roll back); the copy must log too.
        return self

    def __getattr__(self, name: str) -> Any:
        # Reads of a real stream (DescribeStream, GetRecords) go to it.
        stream = self.__dict__.get("_stream")
        if stream is None or name.startswith("__"):
            raise AttributeError(name)
        return getattr(stream, name)


def _moto_table(table_name: str, region: str) -> Any:
    import moto
    from moto.core.models import DEFAULT_ACCOUNT_ID
    from moto.dynamodb.models import dynamodb_backends
    from moto.dynamodb.models.table import StreamShard

    table = dynamodb_backends[DEFAULT_ACCOUNT_ID][region].get_table(table_name)
    if not hasattr(table, "stream_shard") or list(inspect.signature(StreamShard.add).parameters) != [
        "self",
        "old",
        "new",
    ]:
        raise RuntimeError(
            f"moto {getattr(moto, '__version__', 'unknown')}: Table.stream_shard.add(old, new) is gone or has "
            f"changed (stepwise.local.execution_states was written for moto {_WRITTEN_FOR}); the local log "
            "cannot show execution state changes. Pin moto or adapt the seam."
        )
    return table


@contextlib.contextmanager
def print_state_changes(table_name: str, region: str, out: TextIO) -> Iterator[ExecutionStateLog]:
    """While active, every execution state change in moto's ``table_name`` prints one line to ``out``."""
    table = _moto_table(table_name, region)
    previous = table.stream_shard
    log = ExecutionStateLog(out, previous)
    table.stream_shard = log
    try:
        yield log
    finally:
        # A failed transaction puts moto's copy of the table in its place: undo on whichever is there now.
        with contextlib.suppress(Exception):
            table = _moto_table(table_name, region)
        if table.stream_shard is log:
            table.stream_shard = previous
