"""Schedules of a workflow (EventBridge Scheduler)."""

from __future__ import annotations

from stepwise.store import Store


def delete_all_of_workflow(store: Store, workflow_id: str) -> None:
    """Delete every schedule of a workflow (when the workflow is deleted)."""
    for body in store.query_bodies(f"WORKFLOW#{workflow_id}", "SCHEDULE#"):
        store.delete_item(f"WORKFLOW#{workflow_id}", f"SCHEDULE#{body['id']}")
