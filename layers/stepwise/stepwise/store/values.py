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

A group that changes many items (the group of a batch of instant nodes) is projected in batches instead of one
conditional write per item: the node items it changes are read in one BatchGetItem (to count their runs and
skip any that a newer run holds already), then every item is put with BatchWriteItem, 25 to a call, without
conditions. Without a condition, a put could bury a newer projection written meanwhile; that can only happen if
a newer group was appended meanwhile, so the caller looks for one afterwards and projects it again (see
:meth:`stepwise.store.executions.ExecutionStore.project`).
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
# A group that changes more items than this is projected in batches (fewer calls, the same write units).
BATCHED_FROM = 4


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


def _latest_variables(group: Group) -> dict[str, tuple[int, Any]]:
    """Each variable the group's events set, as the last of them set it: (its seq, the value or ``ValueRef``)."""
    latest: dict[str, tuple[int, Any]] = {}
    for event in group.events:
        for name, value in event.set_variables().items():
            latest[name] = (event.seq, value)
    return latest


def _changes_run(events: list[Event]) -> bool:
    # A node that starts waiting in a group of its own still shows RUNNING since it started: nothing changes.
    return not (events[-1].type == "node.waiting" and len(events) == 1)


def _node_fields(execution_id: str, node_id: str, run: int, events: list[Event]) -> dict[str, Any]:
    """What the node item holds after ``events`` of one run (None: an attribute the item no longer has)."""
    last = events[-1]
    return {
        "nodeId": node_id,
        "run": run,
        "state": {"node.completed": "COMPLETED", "node.failed": "FAILED"}.get(last.type, "RUNNING"),
        # A run taken over (node.started again, same run) keeps the time it first started.
        "startedAt": (events[0].startedAt or events[0].at) if events[0].type == "node.started" else last.startedAt,
        "completedAt": last.at if last.type in ("node.completed", "node.failed") else None,
        "error": last.error,
        "output": to_json(shown_output(last, execution_id)) if last.type == "node.completed" else None,
        "seq": last.seq,
        "reused": None,  # a node a rerun reused, run here after all
    }


def projected_items(group: Group) -> int:
    """How many variable and node items projecting ``group`` writes (at most)."""
    nodes = {node_id for (node_id, _), events in _node_runs(group).items() if _changes_run(events)}
    return len(_latest_variables(group)) + len(nodes)


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

    def _variable_item(self, execution_id: str, name: str, seq: int, value: Any) -> dict[str, Any]:
        item: dict[str, Any] = {
            "PK": execution_key(execution_id),
            "SK": f"{VARIABLE_PREFIX}{name}",
            "name": name,
            "seq": seq,
            "expiresAt": self.expires_at(from_now=True),
        }
        if isinstance(value, ValueRef):
            item.update(ref=to_json(value.model_dump()), bytes=value.bytes)
        else:
            text = to_json(value)
            item.update(value=text, bytes=len(text.encode()))
        return item

    def project_variables(self, execution_id: str, group: Group) -> None:
        """Write the variables the group's events set (each only over an older one)."""
        for name, (seq, value) in _latest_variables(group).items():
            try:
                self.put(
                    Put(self._variable_item(execution_id, name, seq, value), condition=_NEWER, values={":seq": seq})
                )
            except ConditionFailed:
                continue  # a later event set it already

    def project_values(self, execution_id: str, group: Group, *, conditional: bool = False) -> bool:
        """Write the variables and node runs the group changed; True when they were put without conditions
        (a group that changes more than ``BATCHED_FROM`` items, unless ``conditional``): the caller then makes
        sure no newer group's projection was buried meanwhile."""
        # A rerun's first group (its reused nodes, each put only where no run is yet) is projected item by item.
        reuses = any(event.type == "node.reused" for event in group.events)
        if conditional or reuses or projected_items(group) <= BATCHED_FROM:
            self.project_variables(execution_id, group)
            self.project_nodes(execution_id, group)
            return False
        items = [self._variable_item(execution_id, name, *latest) for name, latest in _latest_variables(group).items()]
        items += self._node_items(execution_id, group)
        self.put_all(items)
        return True

    def _node_items(self, execution_id: str, group: Group) -> list[dict[str, Any]]:
        """The node items of the latest run of each node the group changed, with its runs counted, but not those
        whose item holds that run (as new, or newer) or a later run already."""
        by_node: dict[str, list[tuple[int, list[Event]]]] = {}
        for (node_id, run), events in _node_runs(group).items():
            if _changes_run(events):
                by_node.setdefault(node_id, []).append((run, events))
        pk = execution_key(execution_id)
        stored = self.get_all([(pk, f"{NODE_PREFIX}{node_id}") for node_id in by_node], consistent=True)
        items = []
        for node_id, runs in by_node.items():
            run, events = max(runs, key=lambda each: each[0])
            fields = _node_fields(execution_id, node_id, run, events)
            current = stored.get((pk, f"{NODE_PREFIX}{node_id}"))
            if current is not None and (int(current["run"]), int(current["seq"])) >= (run, fields["seq"]):
                continue
            held = int(current["run"]) if current is not None else 0
            counted = int(current.get("runs", 1)) if current is not None else 0
            # A run counts once: those the item holds (its run and older) are counted already.
            runs_now = counted + sum(1 for each, _ in runs if each > held)
            expires = self.expires_at(from_now=True)
            items.append({"PK": pk, "SK": f"{NODE_PREFIX}{node_id}", **fields, "runs": runs_now, "expiresAt": expires})
        return items

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
            if not _changes_run(events):
                continue
            fields = {**_node_fields(execution_id, node_id, run, events), "expiresAt": self.expires_at(from_now=True)}
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
