"""Workflows: the current version (listed by owner) and every frozen version an execution may be pinned to.

Storing a version also records the workflow as a user of each agent it calls (``store.agents.used_by``), in
the same transaction, on the condition that each agent still exists. A stored definition is read back by its
shape only (:mod:`stepwise.models.workflow`): no check of a write runs on a read, so a workflow stored before a
check existed still reads.
"""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import suppress
from typing import Any

from stepwise.models.workflow import WorkflowDefinition, WorkflowView
from stepwise.store.agents import not_used_by, used_by
from stepwise.store.codec import from_json, to_json
from stepwise.store.errors import ConditionFailed
from stepwise.store.listings import Listing
from stepwise.store.table import Put, Table, Update

CURRENT = "WORKFLOW"
# The transaction that stores a version also writes one item per agent it calls, and holds 100 writes at most.
MAX_AGENTS = 50


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


def workflow_view(item: dict[str, Any]) -> WorkflowView:
    """The workflow a current-version item (plain values) holds."""
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


def _agent_uses(view: WorkflowView) -> list[Update]:
    return [used_by(agent_id, view.id) for agent_id in view.agent_ids()]


# Versions are immutable, so a warm Lambda reads each one from DynamoDB once.
_VERSIONS: dict[tuple[str, str, int], WorkflowDefinition] = {}
_MAX_CACHED_VERSIONS = 256


class WorkflowStore(Table):
    """``WORKFLOW#<id>`` / ``WORKFLOW`` (the current version) and ``/VERSION#<n>`` (each version, frozen)."""

    def put_new_workflow(self, view: WorkflowView) -> None:
        """Store a new workflow and its version 1 (``ConditionFailed`` if the id is taken or an agent it calls is
        gone)."""
        current = Put(_current_item(view), condition="attribute_not_exists(PK)")
        self.write_all([current, _version_put(view), *_agent_uses(view)])

    def put_workflow_version(self, view: WorkflowView, dropped_agents: Iterable[str] = ()) -> None:
        """Make ``view`` (version n) current, if the stored current version is still n - 1, and take the workflow
        out of the users of ``dropped_agents`` (agents version n - 1 called and n does not, that still exist).

        ``ConditionFailed`` when it was changed or deleted meanwhile, or an agent named is gone.
        """
        current = Put(_current_item(view), condition="version = :previous", values={":previous": view.version - 1})
        dropped = [not_used_by(agent_id, view.id) for agent_id in dropped_agents]
        self.write_all([current, _version_put(view), *_agent_uses(view), *dropped])

    def get_workflow(self, workflow_id: str) -> WorkflowView | None:
        """The current version of a workflow, or None."""
        item = self.get(_pk(workflow_id), CURRENT)
        return workflow_view(item) if item else None

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

    def delete_workflow(self, workflow_id: str, agents: Iterable[str] = ()) -> None:
        """Remove the workflow, then take it out of the users of ``agents`` (those its current version called).

        Its frozen versions stay for executions that still read them. An id never comes back, so the agents
        are updated after the delete, each on its own: one left naming the workflow (a crash in between) is
        put right when that agent is deleted (``service.agents.delete``).
        """
        self.delete(_pk(workflow_id), CURRENT)
        for agent_id in agents:
            with suppress(ConditionFailed):  # the agent is gone: nothing to take it off
                self.apply(not_used_by(agent_id, workflow_id))

    def list_workflows(self, owner: str, limit: int, cursor: str | None) -> tuple[list[WorkflowView], str | None]:
        """The owner's workflows, newest first (``InvalidCursor`` for a cursor of another listing)."""
        items, next_cursor = self.list_page(Listing(f"OWNER#{owner}#WORKFLOWS"), limit, cursor)
        return [workflow_view(item) for item in items], next_cursor
