"""An execution's variables as a node sees them: read on demand, one item each, only those the node uses.

The variables live in items of their own (``VAR#<name>``, :mod:`stepwise.store.values`), never in the
control state, so a node that reads one small variable reads one small item whatever the size of the
others. A value kept in S3 is fetched when a node first uses it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from stepwise.models.events import ValueRef
from stepwise.models.records import VariableItem
from stepwise.store import Store

LoadValue = Callable[[ValueRef], Any]


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

    def read(self) -> dict[str, Any]:
        """Every variable, as a plain dict."""
        self._read_all()
        return dict(self._values)


def no_values_in_s3(ref: ValueRef) -> Any:
    """What a store without S3 does with a reference: it has none to follow."""
    raise LookupError(f"value {ref.key} is kept in S3, and no bucket is configured")


def from_mapping(values: Mapping[str, Any]) -> dict[str, Any]:
    """A plain copy of any mapping of variables."""
    return dict(values.items())
