"""Agents: one item each, the record as JSON, listed by owner."""

from __future__ import annotations

from typing import Any

from stepwise.models.agent import AgentRecord
from stepwise.store.codec import from_json, to_json
from stepwise.store.table import Put, Table

SORT_KEY = "AGENT"


def _pk(agent_id: str) -> str:
    return f"AGENT#{agent_id}"


def _record(item: dict[str, Any]) -> AgentRecord:
    return AgentRecord.model_validate(from_json(item["body"]))


class AgentStore(Table):
    """``AGENT#<id>`` / ``AGENT``."""

    def put_agent(self, agent: AgentRecord, *, new: bool) -> None:
        """Store an agent; ``new`` refuses to overwrite, otherwise it must exist (else ``ConditionFailed``)."""
        item = {
            "PK": _pk(agent.id),
            "SK": SORT_KEY,
            "GSI1PK": f"OWNER#{agent.owner}#AGENTS",
            "GSI1SK": agent.id,
            "body": to_json(agent.model_dump(mode="json")),
        }
        self.put(Put(item, condition="attribute_not_exists(PK)" if new else "attribute_exists(PK)"))

    def get_agent(self, agent_id: str) -> AgentRecord | None:
        """An agent, or None."""
        item = self.get(_pk(agent_id), SORT_KEY)
        return _record(item) if item else None

    def delete_agent(self, agent_id: str) -> None:
        """Remove an agent."""
        self.delete(_pk(agent_id), SORT_KEY)

    def list_agents(self, owner: str, limit: int, cursor: str | None) -> tuple[list[AgentRecord], str | None]:
        """The owner's agents, newest first (``InvalidCursor`` for a cursor of another listing)."""
        items, next_cursor = self.query_index(f"OWNER#{owner}#AGENTS", limit, cursor)
        return [_record(item) for item in items], next_cursor
