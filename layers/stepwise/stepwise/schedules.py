"""The EventBridge Scheduler adapter: one Scheduler schedule per stepwise schedule, in the stack's group.

A schedule is named by its id (``sch_...``, within Scheduler's 64 characters) in the group the template
creates. Its target is the scheduler function, invoked by the Scheduler role, with an Input that carries
the schedule and workflow ids and ``<aws.scheduler.scheduled-time>``, which Scheduler replaces with the
tick's own time, the same on every retry of that tick (the function derives the execution id from it).

- FlexibleTimeWindow OFF: a tick runs in its minute.
- RetryPolicy: up to ``MAX_RETRY_ATTEMPTS`` retries while the tick is younger than ``MAX_EVENT_AGE_SECONDS``;
  a run an hour late is no longer the run the user scheduled.
- DeadLetterConfig: the stack's queue, where a tick that could not be delivered is kept for 14 days.

Every call here is one Scheduler API call (two for ``disable``); ``ResourceNotFoundException`` is an
answer (``None`` / ``False``), a ``ValidationException`` is ``ScheduleRefused``, a ``ConflictException`` is
``ScheduleExists``, and any other failure a ``SchedulerError``: botocore's errors end here.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from botocore.exceptions import BotoCoreError, ClientError

from stepwise import aws

if TYPE_CHECKING:
    from mypy_boto3_scheduler.type_defs import (
        GetScheduleOutputTypeDef,
        TargetTypeDef,
        UpdateScheduleInputTypeDef,
    )

SCHEDULED_TIME = "<aws.scheduler.scheduled-time>"
ATTEMPT_NUMBER = "<aws.scheduler.attempt-number>"
MAX_RETRY_ATTEMPTS = 10
MAX_EVENT_AGE_SECONDS = 3600
# GetSchedule's fields that UpdateSchedule takes back (UpdateSchedule replaces the whole schedule).
_UPDATABLE = (
    "Name",
    "GroupName",
    "ScheduleExpression",
    "ScheduleExpressionTimezone",
    "StartDate",
    "EndDate",
    "Description",
    "State",
    "KmsKeyArn",
    "Target",
    "FlexibleTimeWindow",
    "ActionAfterCompletion",
)


@dataclass(frozen=True)
class Target:
    """Where the stack's schedules live and what they invoke (from the settings)."""

    group: str
    function_arn: str
    role_arn: str
    dead_letter_arn: str


@dataclass(frozen=True)
class ScheduleSpec:
    """What Scheduler needs of one stepwise schedule."""

    schedule_id: str
    workflow_id: str
    expression: str
    timezone: str
    enabled: bool
    description: str | None


def target_input(schedule_id: str, workflow_id: str) -> str:
    """The target's Input: a ``ScheduleDelivery`` once Scheduler fills in its context attributes."""
    return json.dumps(
        {
            "scheduleId": schedule_id,
            "workflowId": workflow_id,
            "scheduledTime": SCHEDULED_TIME,
            "attemptNumber": ATTEMPT_NUMBER,
        },
        separators=(",", ":"),
    )


class SchedulerError(Exception):
    """An EventBridge Scheduler call failed; the message says why."""


class ScheduleRefused(SchedulerError):
    """Scheduler refused the schedule as invalid; the message is Scheduler's own reason."""


class ScheduleExists(SchedulerError):
    """A schedule of that name exists already in the group."""


class _Missing(SchedulerError):
    """The schedule (or its group) is not in Scheduler: an answer where a caller expects it, else an error."""


@contextmanager
def _scheduler_call(schedule_id: str) -> Iterator[None]:
    try:
        yield
    except ClientError as error:
        code = aws.error_code(error)
        if code == "ResourceNotFoundException":
            message = f"Schedule {schedule_id} is not in EventBridge Scheduler: {aws.error_message(error)}"
            raise _Missing(message) from error
        if code == "ValidationException":
            raise ScheduleRefused(aws.error_message(error)) from error
        if code == "ConflictException":
            raise ScheduleExists(f"Schedule {schedule_id} exists already in EventBridge Scheduler") from error
        raise SchedulerError(f"EventBridge Scheduler: {code}: {aws.error_message(error)}") from error
    except BotoCoreError as error:
        raise SchedulerError(f"EventBridge Scheduler could not be reached: {error}") from error


def _request(target: Target, spec: ScheduleSpec) -> dict[str, Any]:
    scheduler_target: TargetTypeDef = {
        "Arn": target.function_arn,
        "RoleArn": target.role_arn,
        "Input": target_input(spec.schedule_id, spec.workflow_id),
        "RetryPolicy": {
            "MaximumRetryAttempts": MAX_RETRY_ATTEMPTS,
            "MaximumEventAgeInSeconds": MAX_EVENT_AGE_SECONDS,
        },
        "DeadLetterConfig": {"Arn": target.dead_letter_arn},
    }
    request: dict[str, Any] = {
        "Name": spec.schedule_id,
        "GroupName": target.group,
        "ScheduleExpression": spec.expression,
        "ScheduleExpressionTimezone": spec.timezone,
        "State": "ENABLED" if spec.enabled else "DISABLED",
        "FlexibleTimeWindow": {"Mode": "OFF"},
        "Target": scheduler_target,
    }
    if spec.description:
        request["Description"] = spec.description
    return request


def create(target: Target, spec: ScheduleSpec) -> None:
    """Create the schedule; ``ScheduleExists`` if one of that name exists already."""
    with _scheduler_call(spec.schedule_id):
        aws.scheduler().create_schedule(**_request(target, spec), ActionAfterCompletion="NONE")


def update(target: Target, spec: ScheduleSpec) -> None:
    """Replace the schedule with ``spec``; a schedule missing from Scheduler is created again."""
    try:
        with _scheduler_call(spec.schedule_id):
            aws.scheduler().update_schedule(**_request(target, spec))
    except _Missing:
        create(target, spec)


def get(group: str, schedule_id: str) -> GetScheduleOutputTypeDef | None:
    """The schedule as Scheduler holds it, or None."""
    try:
        with _scheduler_call(schedule_id):
            return aws.scheduler().get_schedule(GroupName=group, Name=schedule_id)
    except _Missing:
        return None


def delete(group: str, schedule_id: str) -> bool:
    """Delete the schedule; False when it was not there."""
    try:
        with _scheduler_call(schedule_id):
            aws.scheduler().delete_schedule(GroupName=group, Name=schedule_id)
    except _Missing:
        return False
    return True


def disable(group: str, schedule_id: str) -> Literal["disabled", "already disabled", "missing"]:
    """Set the schedule DISABLED and keep every other field as it is (GetSchedule, then UpdateSchedule).

    Needs no target settings, so the scheduler function (which cannot know its own ARN from the template)
    can call it.
    """
    current = get(group, schedule_id)
    if current is None:
        return "missing"
    if current.get("State") == "DISABLED":
        return "already disabled"
    request: dict[str, Any] = {key: current[key] for key in _UPDATABLE if current.get(key) is not None}  # type: ignore[literal-required]
    request["State"] = "DISABLED"
    typed: UpdateScheduleInputTypeDef = request  # type: ignore[assignment]
    try:
        with _scheduler_call(schedule_id):
            aws.scheduler().update_schedule(**typed)
    except _Missing:
        return "missing"
    return "disabled"
