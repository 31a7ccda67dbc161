"""Executions: the ``EXECUTION`` item (who started what, the state for listings), and the commit of a change.

An execution's record is its log (:mod:`stepwise.store.history`); :meth:`ExecutionStore.commit` appends a group
and then writes its projections: the ``EXECUTION`` item (only when what it shows changed), the variables and the
node runs the group set (:mod:`stepwise.store.values`). A crash between the two loses nothing: whoever writes
next after a failure (a retried step, the failure path, the API's next change) or reads (GET) calls
:meth:`ExecutionStore.project` again, and projections only ever replace older ones.

An execution is listed twice, both times under its id (ids sort by time): by owner and workflow in
``GSI1`` and by owner alone in ``GSI2``. A listing reads the tighter one (``GSI1`` when a workflow is given),
and a range of start times is a range of ids, read as one sort key range, never a Scan. The id's time
is when the run was asked for: a scheduled tick's id carries the tick's time, and Scheduler delivers a tick
up to an hour late (``schedules.MAX_EVENT_AGE_SECONDS``), so the id range starts ``LATE_START`` earlier and
a filter on ``startedAt`` keeps exactly the runs started in the range. Executions written before ``GSI2``
existed have no ``GSI2`` key: ``stepwise.store.migrations`` adds it.

An execution that has not ended is also listed by its state in ``GSI3`` (``STATE#<state>`` / id, keys only),
which the reconciler reads (:meth:`ExecutionStore.unfinished`); its end removes it from there, so that index
holds only the executions in flight.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from stepwise import ids
from stepwise.clock import iso, now
from stepwise.models.events import Event
from stepwise.models.execution import TERMINAL_STATES
from stepwise.models.records import Control, ExecutionRecord, Group
from stepwise.store.errors import ConditionFailed
from stepwise.store.history import HistoryStore, execution_key, group_key
from stepwise.store.listings import Filter, Listing
from stepwise.store.slots import owner_of
from stepwise.store.table import Put, Update
from stepwise.store.values import ValueStore

EXECUTION = "EXECUTION"
_STATE = {"#state": "state"}
_FIRST = {"#first": "first"}
# How much earlier than its start an execution's id may be dated (a scheduled tick delivered late), and
# later (clocks a little apart).
LATE_START = timedelta(hours=1, minutes=5)
EARLY_START = timedelta(minutes=1)


@dataclass(frozen=True)
class ExecutionQuery:
    """What an execution listing asks for: one owner's executions, newest first, optionally narrowed.

    ``started_from`` is included, ``started_to`` excluded (consecutive ranges never list a run twice).
    """

    owner: str
    workflow_id: str | None = None
    state: str | None = None
    started_by: str | None = None
    started_from: datetime | None = None
    started_to: datetime | None = None

    def listing(self) -> Listing:
        """The Query that lists these executions: the tighter index, the id range, the filters."""
        if self.workflow_id:
            partition, index = _by_workflow(self.owner, self.workflow_id), "GSI1"
        else:
            partition, index = _by_owner(self.owner), "GSI2"
        sort_range = None
        if self.started_from or self.started_to:
            first = self.started_from - LATE_START if self.started_from else None
            last = self.started_to + EARLY_START if self.started_to else None
            sort_range = ids.id_range("exe", _milliseconds(first, 0), _milliseconds(last, 1 << 48))
        filters = []
        if self.state:
            filters.append(Filter("state", "=", self.state))
        if self.started_by:
            filters.append(Filter("startedBy", "=", self.started_by))
        if self.started_from:
            filters.append(Filter("startedAt", ">=", iso(self.started_from)))
        if self.started_to:
            filters.append(Filter("startedAt", "<", iso(self.started_to)))
        return Listing(partition, index, sort_range, tuple(filters))


def _milliseconds(moment: datetime | None, default: int) -> int:
    return default if moment is None else int(moment.timestamp() * 1000)


def _by_workflow(owner: str, workflow_id: str) -> str:
    return f"OWNER#{owner}#WORKFLOW#{workflow_id}"


def _by_owner(owner: str) -> str:
    return f"OWNER#{owner}#EXECUTIONS"


def index_keys(owner: str, workflow_id: str, execution_id: str) -> dict[str, str]:
    """The listing keys of an execution item: by owner and workflow (``GSI1``), by owner (``GSI2``)."""
    return {
        "GSI1PK": _by_workflow(owner, workflow_id),
        "GSI1SK": execution_id,
        "GSI2PK": _by_owner(owner),
        "GSI2SK": execution_id,
    }


def state_keys(execution_id: str, state: str) -> dict[str, str | None]:
    """The ``GSI3`` keys of an execution in ``state``: by state while it runs, none once it ended (None: removed)."""
    if state in TERMINAL_STATES:
        return {"GSI3PK": None, "GSI3SK": None}
    return {"GSI3PK": f"STATE#{state}", "GSI3SK": execution_id}


def execution_record(item: Mapping[str, Any]) -> ExecutionRecord:
    """The record an execution item (plain values) holds."""
    return ExecutionRecord.model_validate(item)


def _summary_item(execution_id: str, group: Group) -> dict[str, Any]:
    """The ``EXECUTION`` item that the first group of a log (``execution.started``) projects."""
    started, control = group.events[0], group.control
    if started.type != "execution.started" or started.by is None:
        raise ValueError(f"execution {execution_id}: its log does not begin with who started it")
    return {
        "PK": execution_key(execution_id),
        "SK": EXECUTION,
        **index_keys(started.by.sub, control.workflowId, execution_id),
        "id": execution_id,
        "workflowId": control.workflowId,
        "workflowVersion": control.workflowVersion,
        "owner": started.by.sub,
        "startedAt": started.at,
        "startedBy": started.startedBy or started.by.sub,
        "startedByName": started.by.name,
        # A rerun's source and first node (None: left out of the item).
        "rerunOfId": started.rerunOf.executionId if started.rerunOf else None,
        "rerunFromNode": started.rerunOf.fromNode if started.rerunOf else None,
    }


# Told, after a commit that gave concurrency slots back, whose they were (the owner): the composition root sets
# it to start the runs that waited for them (stepwise.service.concurrency.promote).
SlotsFreed = Callable[[str], object]


class ExecutionStore(HistoryStore, ValueStore):
    """``EXECUTION#<id>`` / ``EXECUTION`` (listed by owner and workflow), and the commit of an execution's changes.

    ``slots_freed`` (None until the composition root sets it) is called after every commit that gave slots back.
    """

    slots_freed: SlotsFreed | None = None

    def commit(
        self,
        execution_id: str,
        after: Group | None,
        events: Sequence[Event],
        control: Control,
        *,
        task_token: str | None = None,
    ) -> Group:
        """Append the events right after ``after`` (``SeqTaken`` if another writer did first), then project them.

        ``task_token`` (a pause) is kept on the ``EXECUTION`` item for resume and cancel.
        """
        group = self.append(execution_id, after, events, control)
        self.project(execution_id, group, before=after.control if after else None, task_token=task_token)
        freed = [counter for counter in (after.control.slots if after else {}) if counter not in control.slots]
        if freed and self.slots_freed is not None:
            # Every change that ends or pauses a run comes through here: the one place that wakes its queue.
            self.slots_freed(owner_of(freed[0]))
        return group

    def project(
        self, execution_id: str, group: Group, *, before: Control | None = None, task_token: str | None = None
    ) -> None:
        """Write what ``group`` changes in the execution's other items (again: a repair writes only what is missing).

        ``before`` is the control state the group was appended after, when known: the ``EXECUTION`` item is then
        written only if what it shows changed.
        """
        self._project(execution_id, group, before=before, task_token=task_token, conditional=False)

    def _project(
        self, execution_id: str, group: Group, *, before: Control | None, task_token: str | None, conditional: bool
    ) -> None:
        # The summary last: whoever sees its new state (an execution ended) finds the variables and node runs
        # of the same group written already.
        if self.project_values(execution_id, group, conditional=conditional) and self._appended_after(
            execution_id, group
        ):
            # Put without conditions, they may have buried what a newer group's projection wrote meanwhile: write
            # the newer groups' projections again, each only over an older one.
            for newer in self.groups_after(execution_id, group.last):
                self._project(execution_id, newer, before=None, task_token=None, conditional=True)
        if group.first == 1:
            self._project_summary(execution_id, group)
        elif before is None or task_token or not _same_summary(before, group.control):
            self._project_state(execution_id, group, task_token)

    def _appended_after(self, execution_id: str, group: Group) -> bool:
        """True when a group follows ``group`` in the log (one strongly consistent read of its key: 1 RCU if none)."""
        return (
            self.get(execution_key(execution_id), group_key(group.last + 1), consistent=True, names=_FIRST) is not None
        )

    def _project_summary(self, execution_id: str, group: Group) -> None:
        item = {**_summary_item(execution_id, group), **_state_fields(group.control), "seq": group.last}
        item.update((name, value) for name, value in state_keys(execution_id, group.control.state).items() if value)
        if group.control.state in TERMINAL_STATES:
            item["expiresAt"] = self.expires_at()
        try:
            self.put(Put(item, condition="attribute_not_exists(PK) OR seq < :seq", values={":seq": group.last}))
        except ConditionFailed:
            return  # a later group's projection is there already

    def _project_state(self, execution_id: str, group: Group, task_token: str | None) -> None:
        fields: dict[str, Any] = {
            **_state_fields(group.control),
            **state_keys(execution_id, group.control.state),
            "seq": group.last,
        }
        if group.control.state in TERMINAL_STATES:
            fields["expiresAt"] = self.expires_at()
        if task_token:
            fields["taskToken"] = task_token
        elif group.control.state != "PAUSED":
            fields["taskToken"] = None  # a token is only good while PAUSED
        names = {f"#f{index}": name for index, name in enumerate(fields)}
        assignments = [f"#f{index} = :f{index}" for index, value in enumerate(fields.values()) if value is not None]
        removals = [f"#f{index}" for index, value in enumerate(fields.values()) if value is None]
        values = {f":f{index}": value for index, value in enumerate(fields.values()) if value is not None}
        expression = "SET " + ", ".join(assignments) + (" REMOVE " + ", ".join(removals) if removals else "")
        # A pause's own projection carries its task token: a reader that projected the same group first (a GET
        # between the group and this write) must not keep the token off the item.
        newer = "seq <= :seq" if task_token else "seq < :seq"
        update = Update(
            pk=execution_key(execution_id),
            sk=EXECUTION,
            expression=expression,
            condition=f"attribute_exists(PK) AND {newer}",
            names=names,
            values={**values, ":seq": group.last},
        )
        try:
            self.apply(update)
        except ConditionFailed:
            # A later group's projection is there already (or the summary's own is still missing); or this group's
            # own, by a reader, which has no token: the token of the pause goes on all the same.
            if task_token:
                self.keep_task_token(execution_id, task_token, seq=group.last)

    def keep_task_token(self, execution_id: str, task_token: str, *, seq: int) -> bool:
        """Keep a newer token of the pause that group ``seq`` of the log holds (a retried pause task), unless the item
        shows a later group already (resumed or canceled since: no token then); False when it does."""
        try:
            self.update(
                execution_key(execution_id),
                EXECUTION,
                expression="SET taskToken = :token",
                condition="#state = :paused AND seq <= :seq",
                names=_STATE,
                values={":token": task_token, ":paused": "PAUSED", ":seq": seq},
            )
        except ConditionFailed:
            return False
        return True

    def get_execution(self, execution_id: str) -> ExecutionRecord | None:
        """The ``EXECUTION`` item (strongly consistent), or None."""
        item = self.get(execution_key(execution_id), EXECUTION, consistent=True)
        return execution_record(item) if item else None

    def execution_state(self, execution_id: str) -> str | None:
        """Just the state (one small item, a cheap read)."""
        item = self.get(execution_key(execution_id), EXECUTION, consistent=True, names=_STATE)
        return str(item["state"]) if item else None

    def unfinished(self, state: str) -> Iterator[str]:
        """The ids of the executions in ``state`` (PENDING, RUNNING or PAUSED), oldest first, page by page.

        Read from ``GSI3`` (eventually consistent): a caller decides on each execution's log, not on this.
        """
        return (str(item["GSI3SK"]) for item in self.query_index("GSI3", f"STATE#{state}"))

    def reserve_execution_id(self, key: str, execution_id: str, fingerprint: str, ttl_seconds: int) -> str:
        """The execution id a start with this idempotency ``key`` runs: ``execution_id`` for the first, the first's
        for any repeat (a retry after the first died between its record and its state machine run).

        ``fingerprint`` (of what the start asked for) must match the first's: else ``ConditionFailed``.
        """
        moment = int(now().timestamp())
        item = {
            "PK": f"START#{key}",
            "SK": "START",
            "executionId": execution_id,
            "fingerprint": fingerprint,
            "expiresAt": moment + ttl_seconds,
        }
        # DynamoDB deletes expired items late: one past its time counts as gone.
        condition = "attribute_not_exists(PK) OR expiresAt < :now"
        try:
            self.put(Put(item, condition=condition, values={":now": moment}))
        except ConditionFailed as taken:
            first = self.get(f"START#{key}", "START", consistent=True)
            if first is None or first["fingerprint"] != fingerprint:
                raise taken
            return str(first["executionId"])
        return execution_id

    def find_executions(
        self, query: ExecutionQuery, limit: int, cursor: str | None
    ) -> tuple[list[ExecutionRecord], str | None]:
        """One page of the executions ``query`` asks for, newest first, and the next page's cursor.

        ``InvalidCursor`` for a cursor of another listing, or of this one with other filters.
        """
        items, next_cursor = self.list_page(query.listing(), limit, cursor)
        return [execution_record(item) for item in items], next_cursor


def _state_fields(control: Control) -> dict[str, Any]:
    return {
        "state": control.state,
        "pauseRequested": control.pauseRequested,
        "completedAt": control.completedAt,
        "error": control.error,
        "queuedAt": control.queued.queuedAt if control.queued else None,
        "queueLimit": control.queued.limit if control.queued else None,
    }


def _same_summary(before: Control, after: Control) -> bool:
    return _state_fields(before) == _state_fields(after)
