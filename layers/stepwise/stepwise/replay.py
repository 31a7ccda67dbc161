"""Replaying an execution's log: its variables as they were just before any node run started.

The variables are never stored as a whole; the log holds every change of them: the initial variables in
``execution.started`` and the variables each node set in its ``node.completed``. Folding those events, in
order, up to a node run's ``node.started`` gives the variables that run saw (a node sees the variables as the
newest group before it left them: no node runs between its start and its completion).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from stepwise.models.events import Event, ValueRef


def variables_before(
    events: Iterable[Event], run: int, load: Callable[[ValueRef], Any] | None = None
) -> dict[str, Any]:
    """The variables just before node run ``run`` started (``LookupError`` when the log has no such run).

    Values kept in S3 are loaded with ``load`` when given, else left as their :class:`ValueRef`.
    """
    variables: dict[str, Any] = {}
    for event in events:
        if event.type == "node.started" and event.run == run:
            return variables
        fold(variables, event, load)
    raise LookupError(f"no node run {run} in this log")


def fold(variables: dict[str, Any], event: Event, load: Callable[[ValueRef], Any] | None = None) -> None:
    """Set in ``variables`` what ``event`` set (only ``execution.started`` and ``node.completed`` set any)."""
    if event.type in ("execution.started", "node.completed"):
        for name, value in event.set_variables().items():
            variables[name] = load(value) if load and isinstance(value, ValueRef) else value


def node_runs(events: Iterable[Event]) -> list[tuple[str, int]]:
    """Every node run that started, in order: (node id, run number)."""
    started = (event for event in events if event.type == "node.started")
    return [(event.nodeId, event.run) for event in started if event.nodeId and event.run]
