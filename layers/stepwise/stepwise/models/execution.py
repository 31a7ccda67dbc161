"""Executions as the API shows them: the seed's WorkflowExecution, field for field."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt

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
    reused: bool = Field(
        default=False,
        description="true: not run in this execution, a rerun; its output and times are those of the execution it "
        "reruns (it is false again once the node runs here)",
    )


class RerunOf(BaseModel):
    """The execution a rerun was made from, and the node it began at."""

    executionId: str
    fromNode: str


class RerunRequest(BaseModel):
    """The optional body of a rerun: where it begins, which version it runs, variables changed key by key."""

    model_config = ConfigDict(extra="forbid")

    fromNode: str | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        description="the node to begin at (default: the node that failed, or was running when the execution was "
        "canceled; else where the execution began)",
    )
    version: Literal["same", "latest"] | Annotated[StrictInt, Field(ge=1)] = Field(
        default="same",
        description="the workflow version to run: the source's ('same'), the current one ('latest'), or a number",
    )
    variables: dict[str, Any] = Field(
        default_factory=dict,
        description="set over the variables as they were just before fromNode ran in the source, key by key",
    )


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
    rerunOf: RerunOf | None = Field(
        default=None, description="the execution this one reruns and the node it began at (null: not a rerun)"
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
