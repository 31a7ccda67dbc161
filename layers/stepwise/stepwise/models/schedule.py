"""Schedules: what a user writes, what the API shows and stores, and what Scheduler delivers.

The expression grammar (rate, cron, at), its checks and when a schedule runs next are
:mod:`stepwise.schedule_expressions`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

SCHEDULE_ID_PATTERN = r"^sch_[0-9A-HJKMNP-TV-Z]{26}$"
WORKFLOW_ID_PATTERN = r"^wf_[0-9A-HJKMNP-TV-Z]{26}$"
DEFAULT_TIMEZONE = "UTC"

# --- API models ------------------------------------------------------------------------------------


class ScheduleInput(BaseModel):
    """A schedule as a user creates it."""

    model_config = ConfigDict(extra="forbid")

    expression: str = Field(
        min_length=1,
        max_length=256,
        description="rate(<n> minutes|hours|days), cron(<6 AWS fields>) or at(yyyy-mm-ddThh:mm:ss)",
        examples=["rate(15 minutes)", "cron(0 9 ? * MON-FRI *)", "at(2030-01-01T09:00:00)"],
    )
    timezone: str = Field(
        default=DEFAULT_TIMEZONE, min_length=1, max_length=64, description="IANA time zone the expression is read in"
    )
    variables: dict[str, Any] = Field(
        default_factory=dict, description="variables of every run it starts, over the workflow's defaults"
    )
    enabled: bool = True
    description: str | None = Field(default=None, max_length=512)


class SchedulePatch(BaseModel):
    """A change to a schedule: only the fields sent change (``description: null`` clears it); at least one."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"minProperties": 1})

    expression: str | None = Field(default=None, min_length=1, max_length=256)
    timezone: str | None = Field(default=None, min_length=1, max_length=64)
    variables: dict[str, Any] | None = None
    enabled: bool | None = None
    description: str | None = Field(default=None, max_length=512)


class ScheduleView(BaseModel):
    """A schedule as the API shows it (and as the table stores it)."""

    id: str
    workflowId: str
    expression: str
    timezone: str
    variables: dict[str, Any]
    enabled: bool
    description: str | None
    owner: str
    createdAt: str
    updatedAt: str


class ScheduleDelivery(BaseModel):
    """What Scheduler hands the scheduler function: the target's Input once context attributes are filled."""

    scheduleId: str = Field(pattern=SCHEDULE_ID_PATTERN)
    workflowId: str = Field(pattern=WORKFLOW_ID_PATTERN)
    scheduledTime: AwareDatetime = Field(description="the tick's own time, the same on every retry of it")
    attemptNumber: int | None = Field(default=None, ge=1)


class FireResult(BaseModel):
    """What one delivery did; the scheduler function returns it (Scheduler ignores it, logs and tests read it)."""

    outcome: Literal["started", "duplicate", "skipped", "disabled", "failed"]
    scheduleId: str
    executionId: str | None = None
    reason: str | None = None


__all__ = [
    "FireResult",
    "ScheduleDelivery",
    "ScheduleInput",
    "SchedulePatch",
    "ScheduleView",
]
