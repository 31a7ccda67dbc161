"""Workflow definitions as stored and run: their shape only, so any version ever stored reads back.

The rules a definition must pass to be stored (each node's config against its type, targets that exist,
well-formed placeholders, lengths and ranges) are checked on write, with the node types
(:mod:`stepwise.nodes.definitions`); they never run on a read. A rule tightened tomorrow then refuses new
definitions that break it, and yesterday's workflows still read, and the executions pinned to them still
run: the node runner validates a node's config with its type's model only when it runs that node.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class RetryPolicy(BaseModel):
    """How often a node that calls out tries again after a transient failure."""

    maxAttempts: int = 3
    backoffSeconds: float = 1.0


class NodeDefinition(BaseModel):
    """One node as stored: ``type`` names its node type, ``config`` is that type's settings."""

    id: str
    type: str
    name: str | None = None
    config: dict[str, Any] = Field(default_factory=dict, description="the node type's settings")
    next: str | None = Field(default=None, description="node id to continue at; default is the next in the list")
    timeoutSeconds: float | None = Field(default=None, description="for nodes that call out")
    retry: RetryPolicy | None = Field(default=None, description="for nodes that call out")


class Concurrency(BaseModel):
    """How many runs of the workflow may run at once, and what a start over that does (stepwise.service.concurrency).

    ``queue``: the run waits, PENDING, and starts by itself in start order when a run ends; ``reject``: the start
    is refused (429).
    """

    limit: int
    onLimit: Literal["queue", "reject"] = "queue"


class WorkflowDefinition(BaseModel):
    """A workflow's definition as stored: its nodes in order, default variables, output, step and concurrency limits."""

    name: str
    description: str | None = None
    variables: dict[str, Any] = Field(default_factory=dict, description="default variables of every run")
    nodes: Sequence[NodeDefinition]
    output: list[str] | None = Field(default=None, description="variables that make the output; default all")
    maxNodeRuns: int | None = Field(default=None, description="step limit; default 1,000")
    concurrency: Concurrency | None = Field(default=None, description="runs at once at most; default no limit")

    def node(self, node_id: str) -> NodeDefinition:
        """The node with that id (ids are unique: checked on write)."""
        return next(node for node in self.nodes if node.id == node_id)

    def following(self, node_id: str) -> str | None:
        """The node after ``node_id``: its ``next``, else the next in list order, else None (the end)."""
        for index, node in enumerate(self.nodes):
            if node.id == node_id:
                if node.next:
                    return node.next
                return self.nodes[index + 1].id if index + 1 < len(self.nodes) else None
        return None

    def agent_ids(self) -> list[str]:
        """The agents its agentTask nodes call, each once, in the order the nodes first name them."""
        named = (node.config.get("agentId") for node in self.nodes if node.type == "agentTask")
        return list(dict.fromkeys(str(agent_id) for agent_id in named if agent_id))

    def output_of(self, variables: dict[str, Any]) -> Any:
        """An execution's output: the variables named by ``output``, else all of them (a view, not stored)."""
        if self.output is None:
            return variables
        return {name: variables.get(name) for name in self.output}


class WorkflowView(WorkflowDefinition):
    """A stored workflow as the API shows it."""

    id: str
    version: int
    owner: str
    createdAt: str
    updatedAt: str

    def definition_json(self) -> dict[str, Any]:
        """Just the definition part, as JSON-ready data."""
        return self.model_dump(mode="json", include=set(WorkflowDefinition.model_fields), by_alias=True)


class StartExecutionRequest(BaseModel):
    """The optional body of a start: variables merged over the workflow's defaults."""

    model_config = ConfigDict(extra="forbid")

    variables: dict[str, Any] = Field(default_factory=dict)
