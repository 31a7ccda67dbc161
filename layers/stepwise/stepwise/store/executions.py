"""Executions: the execution item, its node runs and its log lines, all under ``EXECUTION#<id>``.

Every change of the execution item is a conditional write on its state (and, for the node runner, its
revision), so a terminal state is never overwritten and a cancel wins any race with a running node.

An execution is listed twice, both times under its id (ids sort by time): by owner and workflow in
``GSI1`` and by owner alone in ``GSI2``. A listing reads the tighter one (``GSI1`` when a workflow is given),
and a range of start times is a range of ids, read as one sort key range, never a Scan. The id's time
is when the run was asked for: a scheduled tick's id carries the tick's time, and Scheduler delivers a tick
up to an hour late (``schedules.MAX_EVENT_AGE_SECONDS``), so the id range starts ``LATE_START`` earlier and
a filter on ``startedAt`` keeps exactly the runs started in the range. Executions written before ``GSI2``
existed have no ``GSI2`` key: ``stepwise.store.migrations`` adds it.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel

from stepwise import ids
from stepwise.clock import iso
from stepwise.models.execution import TERMINAL_STATES, LogLine
from stepwise.models.records import ActiveNode, ExecutionRecord, NodeRun
from stepwise.store.codec import from_json, to_json
from stepwise.store.errors import ConditionFailed
from stepwise.store.listings import Filter, Listing
from stepwise.store.table import Put, Table

EXECUTION = "EXECUTION"
RUN_PREFIX = "RUN#"
LOG_PREFIX = "LOG#"
_STATE = {"#state": "state"}
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


def _pk(execution_id: str) -> str:
    return f"EXECUTION#{execution_id}"


def _in_states(states: Sequence[str]) -> tuple[str, dict[str, Any]]:
    """``#state IN (:from0, ...)`` and its values."""
    values: dict[str, Any] = {f":from{index}": state for index, state in enumerate(states)}
    return f"#state IN ({', '.join(values)})", values


def _stored(value: str | bool | int | BaseModel) -> str | bool | int:
    """A model is stored as its JSON; plain values as they are."""
    return to_json(value.model_dump(mode="json")) if isinstance(value, BaseModel) else value


def execution_record(item: Mapping[str, Any]) -> ExecutionRecord:
    """The record an execution item (plain values) holds."""
    return ExecutionRecord.model_validate(
        {
            **item,
            "variables": from_json(item.get("variables"), {}),
            "activeNode": from_json(item.get("activeNode")),
        }
    )


class ExecutionStore(Table):
    """``EXECUTION#<id>`` / ``EXECUTION`` (listed by owner and workflow), ``/RUN#<n>`` and ``/LOG#<time>#<rand>``."""

    # --- the execution item ----------------------------------------------------------------------

    def create_execution(self, record: ExecutionRecord) -> None:
        """Store a new PENDING execution (``ConditionFailed`` if one with that id exists)."""
        item = {
            "PK": _pk(record.id),
            "SK": EXECUTION,
            **index_keys(record.owner, record.workflowId, record.id),
            "id": record.id,
            "workflowId": record.workflowId,
            "workflowVersion": record.workflowVersion,
            "owner": record.owner,
            "state": record.state,
            "startedAt": record.startedAt,
            "startedBy": record.startedBy,
            "variables": to_json(record.variables),
            "nodeRuns": 0,
            "maxNodeRuns": record.maxNodeRuns,
            "pauseRequested": False,
            "revision": 0,
            "cursor": record.cursor or None,
        }
        self.put(Put(item, condition="attribute_not_exists(PK)"))

    def get_execution(self, execution_id: str) -> ExecutionRecord | None:
        """The execution item (strongly consistent), or None."""
        item = self.get(_pk(execution_id), EXECUTION, consistent=True)
        return execution_record(item) if item else None

    def execution_state(self, execution_id: str) -> str | None:
        """Just the state (a cheap read a node in flight makes to notice a cancel)."""
        item = self.get(_pk(execution_id), EXECUTION, consistent=True, names=_STATE)
        return str(item["state"]) if item else None

    def load_execution(self, execution_id: str) -> tuple[ExecutionRecord | None, list[NodeRun], list[LogLine]]:
        """The execution with all its node runs and execution-level log lines (one paginated query)."""
        record: ExecutionRecord | None = None
        runs: list[NodeRun] = []
        logs: list[LogLine] = []
        for item in self.query(_pk(execution_id), consistent=True):
            sort_key = str(item["SK"])
            if sort_key == EXECUTION:
                record = execution_record(item)
            elif sort_key.startswith(RUN_PREFIX):
                runs.append(NodeRun.model_validate(from_json(item["body"])))
            elif sort_key.startswith(LOG_PREFIX):
                logs.extend(LogLine.model_validate(line) for line in from_json(item.get("logs"), []))
        return record, runs, logs

    def find_executions(
        self, query: ExecutionQuery, limit: int, cursor: str | None
    ) -> tuple[list[ExecutionRecord], str | None]:
        """One page of the executions ``query`` asks for, newest first, and the next page's cursor.

        ``InvalidCursor`` for a cursor of another listing, or of this one with other filters.
        """
        items, next_cursor = self.list_page(query.listing(), limit, cursor)
        return [execution_record(item) for item in items], next_cursor

    def transition(
        self,
        execution_id: str,
        to_state: str,
        *,
        allowed_from: Sequence[str],
        set_values: Mapping[str, str | bool | int | BaseModel] | None = None,
        remove: Sequence[str] = (),
        pause_requested: bool | None = None,
        expected_revision: int | None = None,
    ) -> tuple[bool, ExecutionRecord | None]:
        """Move the execution to ``to_state`` only from ``allowed_from`` (and, when given, only while the pause
        request and the revision are as the caller read them).

        ``set_values`` are plain values (a model is stored as its JSON). Returns (True, the record before) on
        success, (False, the record as it is) when the condition failed, so the caller can say why.
        """
        names = dict(_STATE)
        condition, values = _in_states(allowed_from)
        values.update({":to": to_state, ":one": 1})
        assignments = ["#state = :to", "revision = revision + :one"]
        for index, (name, value) in enumerate((set_values or {}).items()):
            names[f"#f{index}"] = name
            values[f":v{index}"] = _stored(value)
            assignments.append(f"#f{index} = :v{index}")
        if to_state in TERMINAL_STATES and (expires := self.expires_at()):
            values[":expires"] = expires
            assignments.append("expiresAt = :expires")
        expression = "SET " + ", ".join(assignments)
        if remove:
            names.update({f"#r{index}": name for index, name in enumerate(remove)})
            expression += " REMOVE " + ", ".join(f"#r{index}" for index in range(len(remove)))
        if pause_requested is not None:
            condition += " AND pauseRequested = :requested"
            values[":requested"] = pause_requested
        if expected_revision is not None:
            condition += " AND revision = :expected"
            values[":expected"] = expected_revision
        try:
            before = self.update(
                _pk(execution_id),
                EXECUTION,
                expression=expression,
                condition=condition,
                names=names,
                values=values,
                return_old=True,
            )
        except ConditionFailed as failed:
            return False, execution_record(failed.item) if failed.item else None
        return True, execution_record(before) if before else None

    def request_pause(
        self, execution_id: str, requested: bool, allowed_from: Sequence[str]
    ) -> tuple[bool, ExecutionRecord | None]:
        """Set (or withdraw) the pause request, only while the execution is in ``allowed_from`` and the request
        is not so already.

        Returns (True, the record before) on success, (False, the record as it is) when the condition failed.
        """
        condition, values = _in_states(allowed_from)
        try:
            before = self.update(
                _pk(execution_id),
                EXECUTION,
                expression="SET pauseRequested = :requested",
                condition=f"{condition} AND pauseRequested = :was",
                names=_STATE,
                values={**values, ":requested": requested, ":was": not requested},
                return_old=True,
            )
        except ConditionFailed as failed:
            return False, execution_record(failed.item) if failed.item else None
        return True, execution_record(before) if before else None

    # --- the node runner's writes ----------------------------------------------------------------

    def _update_running(
        self,
        record: ExecutionRecord,
        expression: str,
        values: Mapping[str, Any],
        *,
        names: Mapping[str, str] | None = None,
        also: str = "",
    ) -> bool:
        """Update the item while it is RUNNING at ``record``'s revision (and ``also`` holds); False when it changed
        meanwhile (a cancel, a pause request). ``:one`` is 1 in ``expression``."""
        try:
            self.update(
                _pk(record.id),
                EXECUTION,
                expression=expression,
                condition=f"#state = :running AND revision = :revision{also}",
                names={**_STATE, **(names or {})},
                values={**values, ":running": "RUNNING", ":revision": record.revision, ":one": 1},
            )
        except ConditionFailed:
            return False
        record.revision += 1
        return True

    def claim_node(self, record: ExecutionRecord, active: ActiveNode) -> bool:
        """Mark ``active`` as the running node (and count the run), if nothing changed since ``record``."""
        claimed = self._update_running(
            record,
            "SET nodeRuns = nodeRuns + :one, activeNode = :active, revision = revision + :one",
            {":active": _stored(active), ":no": False},
            also=" AND pauseRequested = :no",
        )
        if claimed:
            record.nodeRuns += 1
            record.activeNode = active
        return claimed

    def set_active_node(self, record: ExecutionRecord, active: ActiveNode, count_run: bool = False) -> bool:
        """Update the active node (a node that starts waiting), if nothing changed since ``record``."""
        increments = ", nodeRuns = nodeRuns + :one" if count_run else ""
        expression = f"SET activeNode = :active, revision = revision + :one{increments}"
        moved = self._update_running(record, expression, {":active": _stored(active)})
        if moved:
            record.activeNode = active
        return moved

    def commit_node(
        self,
        record: ExecutionRecord,
        run: NodeRun,
        *,
        variables: Mapping[str, Any],
        cursor: str | None,
        finish: tuple[str, str | None] | None = None,
        count_run: bool = False,
    ) -> bool:
        """Record a finished node run, then the variables and cursor after it (conditionally).

        ``finish`` = (state, error) also ends the execution. Returns False when the execution is no
        longer RUNNING at this revision (canceled meanwhile): the execution item is left alone and the
        caller overwrites the run as canceled. Two plain writes rather than a transaction: half the write
        cost in DynamoDB, and moto copies the whole table for every transaction. The run goes first, so a
        crash between the writes leaves a run on record, never variables without the run behind them.
        """
        values: dict[str, Any] = {":variables": to_json(dict(variables))}
        names = {"#cursor": "cursor"}
        assignments = ["variables = :variables", "revision = revision + :one"]
        if count_run:
            assignments.append("nodeRuns = nodeRuns + :one")
        removals = ["activeNode"]
        if cursor is None:
            removals.append("#cursor")
        else:
            assignments.append("#cursor = :cursor")
            values[":cursor"] = cursor
        if finish:
            state, error = finish
            assignments += ["#state = :final", "completedAt = :completed"]
            values[":final"] = state
            values[":completed"] = run.completedAt or ""
            if error:
                assignments.append("#error = :error")
                names["#error"] = "error"
                values[":error"] = error
            if expires := self.expires_at():
                assignments.append("expiresAt = :expires")
                values[":expires"] = expires
        self.put_node_run(record.id, run)
        expression = f"SET {', '.join(assignments)} REMOVE {', '.join(removals)}"
        return self._update_running(record, expression, values, names=names)

    def put_node_run(self, execution_id: str, run: NodeRun) -> None:
        """Record a node run on its own (a run whose result was discarded by a cancel)."""
        item = {
            "PK": _pk(execution_id),
            "SK": f"{RUN_PREFIX}{run.run:06d}",
            "body": _stored(run),
            "expiresAt": self.expires_at(from_now=True),
        }
        self.put(Put(item))

    def append_logs(self, execution_id: str, lines: Sequence[LogLine]) -> None:
        """Add execution-level log lines (one item per call)."""
        if not lines:
            return
        item = {
            "PK": _pk(execution_id),
            "SK": f"{LOG_PREFIX}{lines[0].timestamp}#{secrets.token_hex(4)}",
            "logs": to_json([line.model_dump(mode="json") for line in lines]),
            "expiresAt": self.expires_at(from_now=True),
        }
        self.put(Put(item))
