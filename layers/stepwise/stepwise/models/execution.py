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
    state: NodeState
    startedAt: str | None
    completedAt: str | None
    error: str | None
    output: Any


class ExecutionSummary(BaseModel):
    """One row of an execution listing."""

    id: str
    workflowId: str
    workflowVersion: int
    state: ExecutionState
    startedAt: str
    completedAt: str | None
    startedBy: str
    error: str | None
    pauseRequested: bool = Field(
        description="a pause was asked for and the run will pause before its next node (resume withdraws it)"
    )


class WorkflowExecution(ExecutionSummary):
    """The seed contract's WorkflowExecution (plus ``workflowVersion``, the version it runs)."""

    variables: dict[str, Any]
    logs: list[LogLine]
    output: Any
    nodeStates: dict[str, NodeStateView]
