"""An execution's variables as a node sees them: read on demand, one item each, only those the node uses.

The variables live in items of their own (``VAR#<name>``, :mod:`stepwise.store.values`), never in the
control state, so a node that reads one small variable reads one small item whatever the size of the
others. A value a node sets that is bigger than the inline threshold is kept whole in S3 (:class:`Values`,
:mod:`stepwise.blobs`) and fetched when a node first uses it.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from stepwise.blobs import Blobs, value_key
from stepwise.models.events import ValueRef
from stepwise.models.records import VariableItem
from stepwise.store import Store
from stepwise.store.values import json_bytes

LoadValue = Callable[[ValueRef], Any]


@dataclass(frozen=True)
class Values:
    """Where an execution's values are kept: in its items up to ``inline_bytes`` of JSON, whole in S3 above.

    Without ``blobs`` (a function that only reads, or a test) every value stays in the items.
    """

    blobs: Blobs | None = None
    inline_bytes: int = 8192

    def keep(
        self, execution_id: str, seq: int, values: Mapping[str, Any]
    ) -> tuple[dict[str, Any], dict[str, ValueRef]]:
        """The values to keep inline, and the references of those put in S3 (as set by event ``seq``)."""
        inline: dict[str, Any] = {}
        refs: dict[str, ValueRef] = {}
        for name, value in values.items():
            size = json_bytes(value)
            if self.blobs is None or size <= self.inline_bytes:
                inline[name] = value
                continue
            # Two invocations of one step (a retry while the first still runs) may both get here with the same
            # seq: each writes a key of its own, so the loser never overwrites what the winner's log names.
            key = value_key(execution_id, seq, f"{name}@{secrets.token_hex(4)}")
            refs[name] = ValueRef(key=key, bytes=self.blobs.put_json(key, value))
        return inline, refs

    def load(self, ref: ValueRef) -> Any:
        """A value kept in S3."""
        if self.blobs is None:
            raise LookupError(f"value {ref.key} is kept in S3, and no bucket is configured")
        return self.blobs.get_json(ref.key)


class ExecutionVariables(Mapping[str, Any]):
    """The variables of an execution as its newest group left them, each read when first used and then kept.

    ``load`` fetches a value kept in S3. Iterating (or ``len``) reads them all: a node that sends every
    variable to an agent needs them all.
    """

    def __init__(self, store: Store, execution_id: str, load: LoadValue) -> None:
        self._store = store
        self._execution_id = execution_id
        self._load = load
        self._values: dict[str, Any] = {}
        self._absent: set[str] = set()
        self._complete = False

    def _value(self, item: VariableItem) -> Any:
        return self._load(item.ref) if item.ref else item.value

    def __getitem__(self, name: str) -> Any:
        if name in self._values:
            return self._values[name]
        if self._complete or name in self._absent:
            raise KeyError(name)
        item = self._store.variable(self._execution_id, name)
        if item is None:
            self._absent.add(name)
            raise KeyError(name)
        self._values[name] = value = self._value(item)
        return value

    def _read_all(self) -> None:
        if self._complete:
            return
        for item in self._store.variables(self._execution_id):
            if item.name not in self._values:
                self._values[item.name] = self._value(item)
        self._complete = True

    def __iter__(self) -> Iterator[str]:
        self._read_all()
        return iter(list(self._values))

    def __len__(self) -> int:
        self._read_all()
        return len(self._values)

    def remember(self, values: Mapping[str, Any]) -> None:
        """Values set since the items were read (by the nodes before, in the same step: not written yet)."""
        for name, value in values.items():
            self._values[name] = value
            self._absent.discard(name)

    def read(self) -> dict[str, Any]:
        """Every variable, as a plain dict."""
        self._read_all()
        return dict(self._values)
