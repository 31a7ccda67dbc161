"""An execution's log: event groups under ``EXECUTION#<id>`` / ``EVENT#<first seq>``, appended, never changed.

A group holds the events of one change (``first``..``last``) and the control state after them. Appending it
is the commit: a PutItem of ``EVENT#<first>``, on ``attribute_not_exists(SK)``, where ``first`` is one past the
``last`` of the newest group the writer read. Two writers that read the same newest group try the same key and
exactly one wins (the other gets :class:`SeqTaken`, reads the newest group again and decides anew), so the
numbers start at 1, grow by 1, are never reused and never out of order. A writer that read an older group
than the newest can never append: the key it tries is taken. Groups are keyed by their first number (not their
last) for that reason: groups of different sizes appended after the same one would have different last
numbers, and both would go in.

Every other item of the execution is a projection of the log (:mod:`stepwise.store.projections`), written
after the group that it projects: the log alone is the record.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from stepwise.models.events import Event
from stepwise.models.records import Control, Group
from stepwise.store.codec import from_json, to_json
from stepwise.store.errors import ConditionFailed
from stepwise.store.slots import LimitReached, full_counter, slot_writes
from stepwise.store.table import Put, Table

EVENT_PREFIX = "EVENT#"
_DIGITS = 10
_HIGHEST = f"{EVENT_PREFIX}{'9' * _DIGITS}"


class SeqTaken(ConditionFailed):
    """Another writer appended to the log first: read its newest group again and decide anew."""


def execution_key(execution_id: str) -> str:
    """The partition of every item of an execution."""
    return f"EXECUTION#{execution_id}"


def group_key(first: int) -> str:
    """The sort key of the group whose first event is ``first``."""
    return f"{EVENT_PREFIX}{first:0{_DIGITS}d}"


def group_of(item: dict[str, Any]) -> Group:
    """The group a stored item holds."""
    return Group(
        first=int(item["first"]),
        last=int(item["last"]),
        events=[Event.model_validate(event) for event in from_json(item["events"], [])],
        control=Control.model_validate(from_json(item["control"])),
    )


class HistoryStore(Table):
    """The groups of an execution's log: the newest one (the control state), appends, and reads by position."""

    def tail(self, execution_id: str) -> Group | None:
        """The newest group (strongly consistent: one small item), or None when the execution has no log."""
        newest = self.query(
            execution_key(execution_id), sk_prefix=EVENT_PREFIX, descending=True, limit=1, consistent=True
        )
        item = next(newest, None)
        return group_of(item) if item else None

    def append(self, execution_id: str, after: Group | None, events: Sequence[Event], control: Control) -> Group:
        """Append ``events`` right after ``after`` (None: as the first group), numbered from ``after.last + 1``.

        :class:`SeqTaken` when another group was appended after ``after`` first. Returns the group as stored.

        When ``control`` takes or gives back concurrency slots, or joins or leaves a queue, those writes go in the
        same transaction (:mod:`stepwise.store.slots`); :class:`LimitReached` when a slot it takes is not free.
        """
        if not events:
            raise ValueError("a group holds at least one event")
        first = after.last + 1 if after else 1
        numbered = [event.numbered(first + index) for index, event in enumerate(events)]
        group = Group(first=first, last=first + len(numbered) - 1, events=numbered, control=control)
        item = {
            "PK": execution_key(execution_id),
            "SK": group_key(first),
            "first": group.first,
            "last": group.last,
            "events": to_json([event.stored() for event in numbered]),
            "control": to_json(control.model_dump(mode="json", exclude_defaults=True)),
            "expiresAt": self.expires_at(from_now=True),
        }
        put = Put(item, condition="attribute_not_exists(SK)")
        slots = slot_writes(execution_id, after.control if after else None, control)
        try:
            if slots.writes:
                self.write_all([put, *slots.writes])
            else:
                self.put(put)
        except ConditionFailed as failed:
            if slots.writes and failed.reasons[:1] != ("ConditionalCheckFailed",):
                if (counter := full_counter(slots, failed)) is not None:
                    raise LimitReached(f"the slots of {counter} are taken", counter) from failed
                raise
            raise SeqTaken(str(failed), failed.code) from failed
        return group

    def group_holding(self, execution_id: str, seq: int) -> Group | None:
        """The group that holds event ``seq``, or None when there is no such event yet."""
        if seq < 1:
            return None
        holding = self.query(
            execution_key(execution_id),
            sk_range=(EVENT_PREFIX, group_key(seq)),
            descending=True,
            limit=1,
            consistent=True,
        )
        item = next(holding, None)
        group = group_of(item) if item else None
        return group if group and group.last >= seq else None

    def groups_after(self, execution_id: str, after: int, *, limit: int | None = None) -> Iterator[Group]:
        """The groups that start after event ``after``, oldest first (at most ``limit`` groups)."""
        items = self.query(
            execution_key(execution_id),
            sk_range=(group_key(after + 1), _HIGHEST),
            limit=limit,
            consistent=True,
        )
        return (group_of(item) for item in items)

    def newest_events(self, execution_id: str, *, before: int) -> Iterator[list[Event]]:
        """The events of each group that starts before event ``before``, the newest group first (read page by page,
        as far as the caller goes; only the events: what the newest log lines need)."""
        if before <= 1:
            return iter(())
        items = self.query(
            execution_key(execution_id),
            sk_range=(EVENT_PREFIX, group_key(before - 1)),
            descending=True,
            page_size=100,
            consistent=True,
            names={"#events": "events"},
        )
        return ([Event.model_validate(event) for event in from_json(item["events"], [])] for item in items)

    def events(self, execution_id: str) -> Iterator[Event]:
        """Every event of the execution, in order (for replays and migrations, not for requests)."""
        for group in self.groups_after(execution_id, 0):
            yield from group.events
