"""What the store keeps for an execution, beyond what the API shows."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from stepwise.models.execution import ExecutionState, ExecutionSummary, LogLine, NodeState


class ActiveNode(BaseModel):
    """The node an execution is running, or waiting in (a delay or an approval)."""

    nodeId: str
    run: int
    startedAt: str
    waitingFor: str | None = None
    seconds: int = 0
    approvedBy: str | None = None
    approvedAt: str | None = None


class ExecutionRecord(BaseModel):
    """The execution item: state, variables and where the run is."""

    id: str
    workflowId: str
    workflowVersion: int
    owner: str
    state: ExecutionState
    startedAt: str
    completedAt: str | None = None
    startedBy: str
    variables: dict[str, Any] = Field(default_factory=dict)
    error: str | None = None
    cursor: str | None = None
    nodeRuns: int = 0
    maxNodeRuns: int
    activeNode: ActiveNode | None = None
    pauseRequested: bool = False
    taskToken: str | None = None
    revision: int = 0

    def summary(self) -> ExecutionSummary:
        """The execution as a listing shows it; a pause request shows only while the run can still pause."""
        pending = self.pauseRequested and self.state in ("PENDING", "RUNNING")
        shown = self.model_dump(include=set(ExecutionSummary.model_fields))
        return ExecutionSummary.model_validate({**shown, "pauseRequested": pending})


class NodeRun(BaseModel):
    """One run of one node (a node in a loop runs more than once); its log lines travel with it."""

    run: int
    nodeId: str
    state: NodeState
    startedAt: str | None
    completedAt: str | None
    error: str | None = None
    output: Any = None
    logs: list[LogLine] = Field(default_factory=list)
