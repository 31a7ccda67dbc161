"""Agents: one item each, the record as JSON, listed by owner, with the workflows that use it.

``usedBy`` (a string set on the agent item) names the workflows whose current version calls the agent. A
workflow write adds its id (and takes it off the agents it no longer calls) in the same transaction that
stores the version, on the condition that each agent still exists; deleting an agent is conditional on
``usedBy`` being empty. The two conditions meet on the one agent item, so a workflow can never come to use
an agent deleted meanwhile, and finding an agent's users needs no Scan and no Query over the workflows:
one read of one item. A deleted workflow is taken off its agents just after the delete, so ``usedBy`` may
briefly name a workflow that is gone; ``service.agents.delete`` checks before it believes it.
"""

from __future__ import annotations

from contextlib import suppress
from typing import Any

from stepwise.models.agent import AgentRecord
from stepwise.store.codec import from_json, to_json
from stepwise.store.errors import ConditionFailed
from stepwise.store.listings import Listing
from stepwise.store.table import Put, Table, Update

SORT_KEY = "AGENT"
_EXISTS = "attribute_exists(PK)"


def _pk(agent_id: str) -> str:
    return f"AGENT#{agent_id}"


def _record(item: dict[str, Any]) -> AgentRecord:
    return AgentRecord.model_validate(from_json(item["body"]))


def used_by(agent_id: str, workflow_id: str) -> Update:
    """The write (in a workflow's transaction) that records the workflow as a user of the agent, if it exists."""
    return Update(_pk(agent_id), SORT_KEY, "ADD usedBy :workflow", _EXISTS, values={":workflow": {workflow_id}})


def not_used_by(agent_id: str, workflow_id: str) -> Update:
    """The write (in a workflow's transaction) that takes the workflow out of the agent's users, if it exists."""
    return Update(_pk(agent_id), SORT_KEY, "DELETE usedBy :workflow", _EXISTS, values={":workflow": {workflow_id}})


class AgentStore(Table):
    """``AGENT#<id>`` / ``AGENT``: ``body`` (the record as JSON) and ``usedBy`` (workflow ids)."""

    def put_agent(self, agent: AgentRecord, *, new: bool) -> None:
        """Store an agent; ``new`` refuses to overwrite, otherwise it must exist (else ``ConditionFailed``).

        An update replaces the record and keeps the agent's ``usedBy``.
        """
        body = to_json(agent.model_dump(mode="json"))
        if not new:
            self.update(
                _pk(agent.id),
                SORT_KEY,
                expression="SET body = :body",
                condition=_EXISTS,
                values={":body": body},
            )
            return
        item = {
            "PK": _pk(agent.id),
            "SK": SORT_KEY,
            "GSI1PK": f"OWNER#{agent.owner}#AGENTS",
            "GSI1SK": agent.id,
            "body": body,
        }
        self.put(Put(item, condition="attribute_not_exists(PK)"))

    def get_agent(self, agent_id: str) -> AgentRecord | None:
        """An agent, or None."""
        item = self.get(_pk(agent_id), SORT_KEY)
        return _record(item) if item else None

    def delete_agent(self, agent_id: str, *, unless_used: bool = False) -> set[str]:
        """Remove an agent; ``unless_used`` only if no workflow is recorded as using it.

        Returns the ids of the workflows recorded as using it when it was left alone (else an empty set).
        """
        if not unless_used:
            self.delete(_pk(agent_id), SORT_KEY)
            return set()
        try:
            self.delete(_pk(agent_id), SORT_KEY, condition="attribute_not_exists(usedBy)")
        except ConditionFailed as failed:
            return {str(workflow) for workflow in (failed.item or {}).get("usedBy", ())}
        return set()

    def forget_agent_user(self, agent_id: str, workflow_id: str) -> None:
        """Take the workflow out of the agent's users (nothing happens if the agent is gone)."""
        with suppress(ConditionFailed):
            self.apply(not_used_by(agent_id, workflow_id))

    def list_agents(self, owner: str, limit: int, cursor: str | None) -> tuple[list[AgentRecord], str | None]:
        """The owner's agents, newest first (``InvalidCursor`` for a cursor of another listing)."""
        items, next_cursor = self.list_page(Listing(f"OWNER#{owner}#AGENTS"), limit, cursor)
        return [_record(item) for item in items], next_cursor
