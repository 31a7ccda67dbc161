"""Concurrency slots and the queue of runs that wait for them: counter items, queue entries, and their writes.

A **slot counter** counts the runs that hold one of its slots: one per owner (``SLOTS#OWNER#<sub>``, the stack's
owner-wide limit) and one per workflow that has a limit (``SLOTS#OWNER#<sub>#WORKFLOW#<id>``), each under
``SK = SLOTS``, with ``running`` and ``queued`` (the runs waiting in the queue: the owner's, or the workflow's).
A run takes a slot by ``running + 1`` on the condition ``running < limit`` (and, for a workflow's slot taken by
a new start or a resume, ``queued = 0``: a later start never overtakes a waiting run of the same workflow), and
gives it back by ``running - 1``. The counts of waiting runs also tell a promotion when the rest of a queue is
all runs of workflows that are full (:func:`stepwise.service.concurrency.promote`).

The **queue** of an owner is one partition, ``QUEUE#<sub>``, one entry per waiting run, sorted by
``<queuedAt>#<executionId>``: start order. An entry names the run, its workflow and the limit it waits for.

Nothing here is written on its own. A run's control state (:class:`~stepwise.models.records.Control`) says which
slots it holds (``slots``) and where it waits (``queued``); :func:`slot_writes` turns the difference between the
control state before a group and after it into these writes, and the history store makes them in the same
transaction as the group (:meth:`stepwise.store.history.HistoryStore.append`). So a counter never disagrees with
the log: a run that ends gives its slots back by the very write that records its end, whoever writes it (the
node runner, a cancel, the failure path, a repair), and a run taken out of the queue holds its slots by the write
that says so. A take that finds a counter full cancels the transaction: :class:`LimitReached` names the counter.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from stepwise.models.records import Control, QueueSpot
from stepwise.store.errors import ConditionFailed
from stepwise.store.table import Delete, Put, Table, Update

SLOTS_PREFIX = "SLOTS#"
SLOTS_SK = "SLOTS"
QUEUE_PREFIX = "QUEUE#"
_WORKFLOW = "#WORKFLOW#"
_NAMES = {"#running": "running", "#queued": "queued"}
# A promotion reads this many entries of a queue at a time (most find a slot among the first few).
QUEUE_PAGE = 25


class LimitReached(ConditionFailed):
    """A slot counter was full (or, for a workflow, had runs waiting before this one): ``counter`` names it."""

    def __init__(self, message: str, counter: str) -> None:
        super().__init__(message, "TransactionCanceledException")
        self.counter = counter


def owner_counter(owner: str) -> str:
    """The key of the owner's slot counter (its owner-wide limit)."""
    return f"OWNER#{owner}"


def workflow_counter(owner: str, workflow_id: str) -> str:
    """The key of a workflow's slot counter (named with its owner, so any key says whose queue it feeds)."""
    return f"OWNER#{owner}{_WORKFLOW}{workflow_id}"


def is_workflow_counter(counter: str) -> bool:
    """True for a workflow's slot counter, False for an owner's."""
    return _WORKFLOW in counter


def owner_of(counter: str) -> str:
    """Whose slot counter it is."""
    return counter.removeprefix("OWNER#").split(_WORKFLOW, 1)[0]


def queue_key(queued_at: str, execution_id: str) -> str:
    """An entry's place in its owner's queue: start order, ties by id."""
    return f"{queued_at}#{execution_id}"


@dataclass(frozen=True)
class QueueEntry:
    """One run waiting in its owner's queue."""

    key: str
    execution_id: str
    workflow_id: str
    limit: str


@dataclass
class _CounterChange:
    running: int = 0
    queued: int = 0
    limit: int = 0
    behind_waiting: bool = False


@dataclass(frozen=True)
class SlotWrites:
    """The writes a group's change of slots and queue takes, and the counter each write is for (None: an entry)."""

    writes: list[Put | Update | Delete] = field(default_factory=list)
    counters: list[str | None] = field(default_factory=list)


def _counter_update(counter: str, change: _CounterChange) -> Update:
    additions, values, conditions = [], {}, []
    if change.running:
        additions.append("#running :running")
        values[":running"] = change.running
    if change.queued:
        additions.append("#queued :queued")
        values[":queued"] = change.queued
    if change.running > 0:
        conditions.append("(attribute_not_exists(#running) OR #running < :limit)")
        values[":limit"] = change.limit
        if change.behind_waiting:
            conditions.append("(attribute_not_exists(#queued) OR #queued < :one)")
            values[":one"] = 1
    names = {name: attribute for name, attribute in _NAMES.items() if name in " ".join([*additions, *conditions])}
    return Update(
        pk=SLOTS_PREFIX + counter,
        sk=SLOTS_SK,
        expression="ADD " + ", ".join(additions),
        # A give-back has no condition: nothing may keep a run from ending.
        condition=" AND ".join(conditions),
        names=names,
        values=values,
    )


def _entry(spot: QueueSpot, execution_id: str) -> Put:
    item = {
        "PK": QUEUE_PREFIX + spot.owner,
        "SK": spot.key,
        "executionId": execution_id,
        "workflowId": spot.workflowId,
        "limit": spot.limit,
    }
    return Put(item, condition="attribute_not_exists(SK)")


def _waits_in(spot: QueueSpot) -> list[str]:
    """The counters whose count of waiting runs a queued run adds to: its owner's, and its workflow's if limited."""
    return [owner_counter(spot.owner), *([spot.workflowSlot] if spot.workflowSlot else [])]


def slot_writes(execution_id: str, before: Control | None, after: Control) -> SlotWrites:
    """The counter updates and queue entry writes that take ``before``'s slots and queue place to ``after``'s.

    A slot held after and not before is taken (``running < limit``; for a workflow's slot, unless the run is
    leaving the queue, also ``queued = 0``); one held before and not after is given back; a queue place that
    appears is put, with the owner's and the workflow's ``queued`` counts up, and one that goes is deleted, with
    the counts down.
    """
    held = before.slots if before else {}
    spot_before = before.queued if before else None
    spot_after = after.queued
    leaving = spot_before is not None and (spot_after is None or spot_after.key != spot_before.key)
    joining = spot_after is not None and (spot_before is None or spot_before.key != spot_after.key)
    changes: dict[str, _CounterChange] = {}
    for counter, limit in after.slots.items():
        if counter not in held:
            change = changes.setdefault(counter, _CounterChange())
            change.running, change.limit = 1, limit
            change.behind_waiting = is_workflow_counter(counter) and not leaving
    for counter in held:
        if counter not in after.slots:
            changes.setdefault(counter, _CounterChange()).running = -1
    result = SlotWrites()
    if leaving and spot_before is not None:
        result.writes.append(Delete(QUEUE_PREFIX + spot_before.owner, spot_before.key))
        result.counters.append(None)
        for counter in _waits_in(spot_before):
            changes.setdefault(counter, _CounterChange()).queued -= 1
    if joining and spot_after is not None:
        result.writes.append(_entry(spot_after, execution_id))
        result.counters.append(None)
        for counter in _waits_in(spot_after):
            changes.setdefault(counter, _CounterChange()).queued += 1
    for counter, change in changes.items():
        if change.running or change.queued:
            result.writes.append(_counter_update(counter, change))
            result.counters.append(counter)
    return result


def full_counter(slot_changes: SlotWrites, failed: ConditionFailed) -> str | None:
    """The counter whose take made a transaction fail (its reasons after the group's own), else None.

    A workflow's counter is named before the owner's when both were full: the workflow's limit decides a reject.
    """
    reasons = failed.reasons[1:]
    full = [
        counter
        for counter, reason in zip(slot_changes.counters, reasons, strict=False)
        if counter and reason == "ConditionalCheckFailed"
    ]
    return next((counter for counter in full if is_workflow_counter(counter)), full[0] if full else None)


class SlotStore(Table):
    """Reads of the slot counters and the queues (their writes go with the groups of the runs, above)."""

    def slots_running(self, counter: str) -> tuple[int, int]:
        """How many runs hold a slot of the counter, and how many runs wait for it (strongly consistent)."""
        item = self.get(SLOTS_PREFIX + counter, SLOTS_SK, consistent=True)
        if not item:
            return 0, 0
        return int(item.get("running", 0)), int(item.get("queued", 0))

    def queue(self, owner: str, *, through: str | None = None) -> Iterator[QueueEntry]:
        """The owner's waiting runs, oldest first (``through``: up to that entry's key, included)."""
        partition = QUEUE_PREFIX + owner
        if through is None:
            items = self.query(partition, consistent=True, page_size=QUEUE_PAGE)
        else:
            # Keys start with a time (20..): "0" is before any of them.
            items = self.query(partition, sk_range=("0", through), consistent=True, page_size=QUEUE_PAGE)
        return (_queue_entry(item) for item in items)


def _queue_entry(item: dict[str, Any]) -> QueueEntry:
    return QueueEntry(
        key=str(item["SK"]),
        execution_id=str(item["executionId"]),
        workflow_id=str(item["workflowId"]),
        limit=str(item["limit"]),
    )
