"""An execution's variables and node runs as the log left them: ``VAR#<name>`` and ``NODE#<nodeId>`` items.

Both are projections of the log (:mod:`stepwise.store.history`): written after the group they project, each
on the condition that it holds an older event (``seq``), so writing one twice, late or out of order changes
nothing, and a crash before they are written loses nothing (the group is there; a repair writes them again).

- ``VAR#<name>``: one top-level variable, as the newest event that set it left it: ``value`` (JSON text), or
  ``ref`` when S3 keeps it (a value over the inline threshold, :mod:`stepwise.blobs`); ``bytes``, ``seq``. A node
  that sets one variable writes one of these, whatever the size of the others.
- ``NODE#<nodeId>``: the latest run of a node (state, times, error, output as the API shows it) and ``runs``,
  how many times it ran. A new run counts on the condition that the item holds an older run, so a repeated
  projection never counts twice. A node a rerun reused (``node.reused``) is run 0, ``reused``, until it runs.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from stepwise.models.events import Event, ValueRef, shown_output
from stepwise.models.records import Group, NodeItem, VariableItem
from stepwise.store.codec import from_json, to_json
from stepwise.store.errors import ConditionFailed
from stepwise.store.history import execution_key
from stepwise.store.table import Put, Table, Update

VARIABLE_PREFIX = "VAR#"
NODE_PREFIX = "NODE#"
_NEWER = "attribute_not_exists(SK) OR seq < :seq"


def json_bytes(value: Any) -> int:
    """The size of a value as the store keeps it (compact UTF-8 JSON)."""
    return len(to_json(value).encode())


def variable_of(item: Mapping[str, Any]) -> VariableItem:
    """The variable a stored item holds."""
    ref = from_json(item.get("ref"))
    return VariableItem(
        name=str(item["name"]),
        value=from_json(item.get("value")),
        ref=ValueRef.model_validate(ref) if ref else None,
        bytes=int(item["bytes"]),
        seq=int(item["seq"]),
    )


def node_of(item: Mapping[str, Any]) -> NodeItem:
    """The node run a stored item holds."""
    return NodeItem.model_validate({**item, "output": from_json(item.get("output"))})


def _node_runs(group: Group) -> dict[tuple[str, int], list[Event]]:
    """The events of each node run in the group (node.skipped and log lines change no node run)."""
    runs: dict[tuple[str, int], list[Event]] = {}
    for event in group.events:
        if event.type in ("node.started", "node.waiting", "node.completed", "node.failed") and event.nodeId:
            runs.setdefault((event.nodeId, event.run or 0), []).append(event)
    return runs


class ValueStore(Table):
    """``VAR#<name>`` and ``NODE#<nodeId>`` under ``EXECUTION#<id>``: written as projections, read by views."""

    # --- variables -------------------------------------------------------------------------------

    def variable(self, execution_id: str, name: str) -> VariableItem | None:
        """One variable (strongly consistent), or None when no event set it."""
        item = self.get(execution_key(execution_id), f"{VARIABLE_PREFIX}{name}", consistent=True)
        return variable_of(item) if item else None

    def variables(self, execution_id: str) -> list[VariableItem]:
        """Every variable of the execution."""
        items = self.query(execution_key(execution_id), sk_prefix=VARIABLE_PREFIX, consistent=True)
        return [variable_of(item) for item in items]

    def project_variables(self, execution_id: str, group: Group) -> None:
        """Write the variables the group's events set (each only over an older one)."""
        for event in group.events:
            for name, value in event.set_variables().items():
                item: dict[str, Any] = {
                    "PK": execution_key(execution_id),
                    "SK": f"{VARIABLE_PREFIX}{name}",
                    "name": name,
                    "seq": event.seq,
                    "expiresAt": self.expires_at(from_now=True),
                }
                if isinstance(value, ValueRef):
                    item.update(ref=to_json(value.model_dump()), bytes=value.bytes)
                else:
                    text = to_json(value)
                    item.update(value=text, bytes=len(text.encode()))
                try:
                    self.put(Put(item, condition=_NEWER, values={":seq": event.seq}))
                except ConditionFailed:
                    continue  # a later event set it already

    # --- node runs -------------------------------------------------------------------------------

    def nodes(self, execution_id: str) -> Iterator[NodeItem]:
        """The latest run of every node that ran."""
        items = self.query(execution_key(execution_id), sk_prefix=NODE_PREFIX, consistent=True)
        return (node_of(item) for item in items)

    def project_nodes(self, execution_id: str, group: Group) -> None:
        """Write the latest run of each node the group's events changed (each only over an older run)."""
        for event in group.events:
            if event.type == "node.reused" and event.nodeId:
                self._project_reused(execution_id, event)
        for (node_id, run), events in _node_runs(group).items():
            last = events[-1]
            if last.type == "node.waiting" and len(events) == 1:
                continue  # a node that starts waiting still shows RUNNING since it started: nothing changes
            fields: dict[str, Any] = {
                "nodeId": node_id,
                "run": run,
                "state": {"node.completed": "COMPLETED", "node.failed": "FAILED"}.get(last.type, "RUNNING"),
                # A run taken over (node.started again, same run) keeps the time it first started.
                "startedAt": (events[0].startedAt or events[0].at)
                if events[0].type == "node.started"
                else last.startedAt,
                "completedAt": last.at if last.type in ("node.completed", "node.failed") else None,
                "error": last.error,
                "output": to_json(shown_output(last, execution_id)) if last.type == "node.completed" else None,
                "seq": last.seq,
                "expiresAt": self.expires_at(from_now=True),
                "reused": None,  # a node a rerun reused, run here after all
            }
            new_run = events[0].type == "node.started"
            # The usual case first: a run that starts here is new; a run that ends here started in an earlier
            # group. Only a repair (its start's projection lost) needs the other one.
            for counted in (new_run, not new_run):
                try:
                    self.apply(self._node_update(execution_id, fields, new_run=counted))
                except ConditionFailed:
                    continue
                break

    def _project_reused(self, execution_id: str, event: Event) -> None:
        """A node a rerun did not run again (``node.reused``): COMPLETED as it was in the source, run 0 of 0, so
        the node's first run here replaces it."""
        item = {
            "PK": execution_key(execution_id),
            "SK": f"{NODE_PREFIX}{event.nodeId}",
            "nodeId": event.nodeId,
            "run": 0,
            "runs": 0,
            "state": "COMPLETED",
            "startedAt": event.startedAt,
            "completedAt": event.completedAt,
            "output": to_json(event.output),
            "seq": event.seq,
            "reused": True,
            "expiresAt": self.expires_at(from_now=True),
        }
        try:
            self.put(Put(item, condition="attribute_not_exists(SK)"))
        except ConditionFailed:
            return  # projected already (a repair), or the node ran here since

    def _node_update(self, execution_id: str, fields: Mapping[str, Any], *, new_run: bool) -> Update:
        names = {f"#f{index}": name for index, name in enumerate(fields)}
        values: dict[str, Any] = {f":f{index}": value for index, value in enumerate(fields.values())}
        assignments = [f"#f{index} = :f{index}" for index, value in enumerate(fields.values()) if value is not None]
        removals = [f"#f{index}" for index, value in enumerate(fields.values()) if value is None]
        values = {name: value for name, value in values.items() if value is not None}
        values[":run"] = fields["run"]
        if new_run:
            assignments.append("runs = if_not_exists(runs, :zero) + :one")
            values.update({":zero": 0, ":one": 1})
            condition = "attribute_not_exists(SK) OR run < :run"
        else:
            values[":seq"] = fields["seq"]
            condition = "run = :run AND seq < :seq"
        expression = "SET " + ", ".join(assignments) + (" REMOVE " + ", ".join(removals) if removals else "")
        return Update(
            pk=execution_key(execution_id),
            sk=f"{NODE_PREFIX}{fields['nodeId']}",
            expression=expression,
            condition=condition,
            names=names,
            values=values,
        )
