"""Workflows: the current version (listed by owner) and every frozen version an execution may be pinned to."""

from __future__ import annotations

from typing import Any

from stepwise.models.workflow import WorkflowDefinition, WorkflowView
from stepwise.store.codec import from_json, to_json
from stepwise.store.table import Put, Table

CURRENT = "WORKFLOW"


def _pk(workflow_id: str) -> str:
    return f"WORKFLOW#{workflow_id}"


def _version_sk(version: int) -> str:
    return f"VERSION#{version:06d}"


def _current_item(view: WorkflowView) -> dict[str, Any]:
    return {
        "PK": _pk(view.id),
        "SK": CURRENT,
        "GSI1PK": f"OWNER#{view.owner}#WORKFLOWS",
        "GSI1SK": view.id,
        "owner": view.owner,
        "version": view.version,
        "createdAt": view.createdAt,
        "updatedAt": view.updatedAt,
        "definition": to_json(view.definition_json()),
    }


def _version_put(view: WorkflowView) -> Put:
    item = {
        "PK": _pk(view.id),
        "SK": _version_sk(view.version),
        "definition": to_json(view.definition_json()),
        "createdAt": view.updatedAt,
    }
    return Put(item, condition="attribute_not_exists(PK)")


def _view(item: dict[str, Any]) -> WorkflowView:
    return WorkflowView.model_validate(
        {
            **from_json(item["definition"]),
            "id": str(item["PK"]).removeprefix("WORKFLOW#"),
            "version": item["version"],
            "owner": item.get("owner"),
            "createdAt": item.get("createdAt"),
            "updatedAt": item.get("updatedAt"),
        }
    )


# Versions are immutable, so a warm Lambda reads each one from DynamoDB once.
_VERSIONS: dict[tuple[str, str, int], WorkflowDefinition] = {}
_MAX_CACHED_VERSIONS = 256


class WorkflowStore(Table):
    """``WORKFLOW#<id>`` / ``WORKFLOW`` (the current version) and ``/VERSION#<n>`` (each version, frozen)."""

    def put_new_workflow(self, view: WorkflowView) -> None:
        """Store a new workflow and its version 1 (``ConditionFailed`` if the id is taken)."""
        self.put_all([Put(_current_item(view), condition="attribute_not_exists(PK)"), _version_put(view)])

    def put_workflow_version(self, view: WorkflowView) -> None:
        """Make ``view`` (version n) current, if the stored current version is still n - 1.

        ``ConditionFailed`` when it was changed or deleted meanwhile.
        """
        current = Put(_current_item(view), condition="version = :previous", values={":previous": view.version - 1})
        self.put_all([current, _version_put(view)])

    def get_workflow(self, workflow_id: str) -> WorkflowView | None:
        """The current version of a workflow, or None."""
        item = self.get(_pk(workflow_id), CURRENT)
        return _view(item) if item else None

    def get_workflow_version(self, workflow_id: str, version: int) -> WorkflowDefinition | None:
        """A frozen version of a workflow (cached per process: versions never change)."""
        cache_key = (self.table, workflow_id, version)
        if cache_key not in _VERSIONS:
            item = self.get(_pk(workflow_id), _version_sk(version))
            if not item:
                return None
            if len(_VERSIONS) > _MAX_CACHED_VERSIONS:
                _VERSIONS.clear()
            _VERSIONS[cache_key] = WorkflowDefinition.model_validate(from_json(item["definition"]))
        return _VERSIONS[cache_key]

    def delete_workflow(self, workflow_id: str) -> None:
        """Remove the workflow; its frozen versions stay for executions that still read them."""
        self.delete(_pk(workflow_id), CURRENT)

    def list_workflows(self, owner: str, limit: int, cursor: str | None) -> tuple[list[WorkflowView], str | None]:
        """The owner's workflows, newest first (``InvalidCursor`` for a cursor of another listing)."""
        items, next_cursor = self.query_index(f"OWNER#{owner}#WORKFLOWS", limit, cursor)
        return [_view(item) for item in items], next_cursor
