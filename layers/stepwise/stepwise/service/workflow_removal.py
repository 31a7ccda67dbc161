"""Deleting a workflow: a use case over two aggregates, so neither CRUD module calls the other.

The workflow's schedules go first (from Scheduler, so they fire no more, then from the table), then the
workflow and its versions, taken off its agents' ``usedBy`` in the same transaction. Past executions stay
readable: they keep the version they ran.
"""

from __future__ import annotations

from stepwise.identity import Caller
from stepwise.service import schedules, workflows
from stepwise.store import Store


def delete(store: Store, schedule_group: str, caller: Caller, workflow_id: str) -> None:
    """Delete the caller's workflow with its schedules (in ``schedule_group``, the stack's Scheduler group)."""
    current = workflows.get_owned(store, caller, workflow_id)
    schedules.delete_all_of_workflow(store, schedule_group, workflow_id)
    store.delete_workflow(workflow_id, current.agent_ids())
