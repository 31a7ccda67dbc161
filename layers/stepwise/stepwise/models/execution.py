"""Executions as the API shows them: the seed's WorkflowExecution, field for field."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

ExecutionState = Literal["PENDING", "RUNNING", "COMPLETED", "FAILED", "CANCELED", "PAUSED"]
NodeState = Literal["PENDING", "RUNNING", "COMPLETED", "FAILED", "SKIPPED"]
TERMINAL_STATES: frozenset[str] = frozenset({"COMPLETED", "FAILED", "CANCELED"})
LogLevel = Literal["debug", "info", "warning", "error"]


class LogLine(BaseModel):
    nodeId: str | None
    message: str
    level: LogLevel
    timestamp: str


class NodeStateView(BaseModel):
    """A node's latest run (a node in a loop runs more than once: every run is in the events)."""

    state: NodeState
    startedAt: str | None
    completedAt: str | None
    error: str | None
    output: Any
    runs: int = Field(default=0, description="how many times the node ran (its other runs are in the events)")


class ExecutionSummary(BaseModel):
    """One row of an execution listing."""

    id: str
    workflowId: str
    workflowVersion: int
    state: ExecutionState
    startedAt: str
    completedAt: str | None
    startedBy: str
    startedByName: str = Field(description="who started it, by name (a schedule: schedule:<id>)")
    error: str | None
    pauseRequested: bool = Field(
        description="a pause was asked for and the run will pause before its next node (resume withdraws it)"
    )
    queuedAt: str | None = Field(
        default=None,
        description="since when it waits for a concurrency slot (PENDING: to start; PAUSED: to resume); null otherwise",
    )
    queuePosition: int | None = Field(
        default=None, description="1: the next to go when a slot of the limit it waits for frees; null when not queued"
    )
    queueLimit: Literal["workflow", "owner"] | None = Field(
        default=None, description="the limit it waits for: its workflow's concurrency, or its owner's"
    )


class WorkflowExecution(ExecutionSummary):
    """The seed contract's WorkflowExecution (plus ``workflowVersion``, the version it runs)."""

    variables: dict[str, Any] = Field(
        description='a value too large to show inline is {"$ref": "<URL path that returns it>", "bytes": N}'
    )
    logs: list[LogLine] = Field(description="the newest 1,000 lines; every line is in the events")
    output: Any
    nodeStates: dict[str, NodeStateView]
