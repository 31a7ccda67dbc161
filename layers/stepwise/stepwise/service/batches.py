"""A batch: node runs of one step recorded together, as one group of the log (a chunk).

An instant node (``setVariables``, ``condition``, any node type that declares itself instant) takes
microseconds: recording each in a group of its own, in a step of its own, would cost two Step Functions
transitions, a Lambda invocation and a read of the log per node. Instead a step runs instant nodes one after
the other on the control state as the previous one left it, keeps their events here, and appends them as one
group when it must: with the events of the node that ends the step (one that calls out is claimed in that
group; one that waits records its wait there; the last node records the end), when the chunk is full
(:class:`Budget`: node runs, bytes), and when the Lambda's time runs short. A full chunk is appended and the
step goes on with the next one.

Each node is recorded as if it had run alone: its ``node.started``, log lines and ``node.completed`` (with the
variables it set), and the step limit counts it. The group is conditional on the newest group the step read,
like every append (:mod:`stepwise.store.history`): when another writer appended first (a cancel, a pause
request or its withdrawal, a retried step), the chunk is not written (:class:`BatchLost`) and the step decides
anew on the newest group. Its nodes had no effect outside the chunk (a value put in S3 is only referenced by
it), so running them again is safe: a cancel wins, and a pause takes effect at the node boundary right after
the request in the log, with no node of the chunk before it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from stepwise.models.events import Event
from stepwise.models.records import Control, Group
from stepwise.store import Store
from stepwise.store.codec import to_json
from stepwise.store.history import SeqTaken


@dataclass(frozen=True)
class Budget:
    """How much one step does before it hands back to the state machine, and how big one chunk grows.

    - ``nodes``, ``chunk_bytes``: a chunk is appended once it holds this many node runs, or this much event JSON
      (the next step's read of the newest group costs one read unit per 4 KB of it).
    - ``most_bytes``: a chunk never grows past this, well under DynamoDB's 400 KB per item (the control state
      rides along): a node whose events would take it further is appended in the next chunk.
    - ``time_margin_ms``: no new node starts with less Lambda time left than this; the step appends what it
      ran and the state machine calls the next one.
    - ``call_out_within_ms``: a node that calls out is claimed in the same step only this soon after the step
      began, so its call gets as long as in a step of its own.
    """

    nodes: int = 100
    chunk_bytes: int = 48 * 1024
    most_bytes: int = 300 * 1024
    time_margin_ms: int = 5_000
    call_out_within_ms: int = 2_000


class BatchLost(Exception):
    """Another writer appended to the log before the chunk: it was not written; decide anew on ``newest``."""

    def __init__(self, newest: Group) -> None:
        super().__init__("another writer appended to the log first; the chunk was not written")
        self.newest = newest


def _size(events: Iterable[Event]) -> int:
    return sum(len(to_json(event.stored()).encode()) for event in events)


class Batch:
    """The events of a step not appended yet (the chunk), on top of ``tail``, the newest group as the step knows it.

    ``step`` is the step's number (:attr:`Control.steps`): every group the step appends carries it.
    """

    def __init__(self, store: Store, execution_id: str, tail: Group, budget: Budget, *, step: int) -> None:
        self.store = store
        self.execution_id = execution_id
        self.budget = budget
        self.step = step
        self.restart(tail)

    def restart(self, tail: Group) -> None:
        """An empty chunk on ``tail`` (the group just appended, or read)."""
        self.tail = tail
        self.events: list[Event] = []
        self.node_runs = 0
        self.bytes = 0
        # The variables the chunk's events set: name -> JSON bytes (their items are not written yet).
        self.sizes: dict[str, int] = {}
        self.control: Control = tail.control.model_copy(update={"steps": max(tail.control.steps, self.step)})

    @property
    def next_seq(self) -> int:
        """The seq the next event added would get."""
        return self.tail.last + 1 + len(self.events)

    def node_ids(self) -> set[str]:
        """The nodes that ran in the chunk."""
        return {event.nodeId for event in self.events if event.nodeId}

    def full(self) -> bool:
        """True once the chunk holds as many node runs, or as many bytes, as one chunk should."""
        return self.node_runs >= self.budget.nodes or self.bytes >= self.budget.chunk_bytes

    def add(
        self, events: list[Event], *, node_run: bool = True, sizes: dict[str, int] | None = None, **updates: Any
    ) -> None:
        """Keep ``events`` in the chunk (``updates``: what else changes in the control state, ``sizes``: the
        variables they set). A chunk they would take past ``most_bytes`` is appended first."""
        size = _size(events)
        if self.events and self.bytes + size > self.budget.most_bytes:
            self.commit()
        self.events.extend(events)
        self.bytes += size
        self.node_runs += node_run
        self.sizes.update(sizes or {})
        self.control = self.control.after(events).model_copy(update=updates)

    def commit(self) -> None:
        """Append the chunk (nothing when it is empty); ``BatchLost`` when another writer appended first."""
        if not self.events:
            return
        try:
            group = self.store.commit(self.execution_id, self.tail, self.events, self.control)
        except SeqTaken:
            newest = self.store.tail(self.execution_id)
            if newest is None:
                raise RuntimeError(f"execution {self.execution_id} lost its log") from None
            raise BatchLost(newest) from None
        self.restart(group)
