"""Schedules of a workflow: create, list, read, change, delete, and fire (EventBridge Scheduler's tick).

The table is the source of truth (``WORKFLOW#<wf>`` / ``SCHEDULE#<id>``, the view as JSON); Scheduler holds
a copy that fires. Writes go to the table first (conditionally), then to Scheduler, and the table is put
back if Scheduler refuses, so a schedule never fires from a record that does not exist: a tick that finds
no record (or no workflow) disables its Scheduler schedule and says why in the log.

A tick starts the workflow's current version with the schedule's variables, owned by the workflow's owner,
``startedBy`` = ``schedule:<id>``. Its execution id is derived from (schedule id, scheduled time), so a tick
Scheduler delivers twice (its retries) starts one execution.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from stepwise import ids
from stepwise import schedules as scheduler
from stepwise.clock import now, now_iso
from stepwise.errors import (
    BadRequest,
    Conflict,
    ExecutionExists,
    InvalidSchedule,
    ScheduleNotFound,
    StartFailed,
    TooManyRuns,
)
from stepwise.identity import Caller
from stepwise.models.schedule import FireResult, ScheduleDelivery, ScheduleInput, SchedulePatch, ScheduleView
from stepwise.models.workflow import WorkflowView
from stepwise.observability import logger
from stepwise.schedule_expressions import check
from stepwise.service import executions, workflows
from stepwise.store import ConditionFailed, Store

MAX_SCHEDULES_PER_WORKFLOW = 50
STARTED_BY_PREFIX = "schedule:"


@dataclass(frozen=True)
class Scheduling:
    """What managing schedules takes beside the table: Scheduler's group and target, and the variables' limit."""

    target: scheduler.Target
    max_variables_bytes: int


def _pk(workflow_id: str) -> str:
    return f"WORKFLOW#{workflow_id}"


def _sk(schedule_id: str) -> str:
    return f"SCHEDULE#{schedule_id}"


def _spec(view: ScheduleView) -> scheduler.ScheduleSpec:
    return scheduler.ScheduleSpec(
        schedule_id=view.id,
        workflow_id=view.workflowId,
        expression=view.expression,
        timezone=view.timezone,
        enabled=view.enabled,
        description=view.description,
    )


@contextmanager
def _in_scheduler() -> Iterator[None]:
    """Scheduler's refusals, as the caller's errors: an invalid schedule is a 400, a taken name a 409."""
    try:
        yield
    except scheduler.ScheduleRefused as error:
        raise InvalidSchedule(f"EventBridge Scheduler refused the schedule: {error}") from error
    except scheduler.ScheduleExists as error:
        raise Conflict(str(error)) from error


def _body(view: ScheduleView) -> dict[str, Any]:
    return view.model_dump(mode="json")


def _check_variables(scheduling: Scheduling, variables: dict[str, Any]) -> None:
    size = len(json.dumps(variables, separators=(",", ":")).encode())
    if size > scheduling.max_variables_bytes:
        raise InvalidSchedule(f"variables are {size} bytes; the limit is {scheduling.max_variables_bytes}")


def _load(store: Store, caller: Caller, workflow_id: str, schedule_id: str, *, change: bool) -> dict[str, Any]:
    """The stored schedule (as read, for a compare-and-swap), once the caller may read or change it."""
    workflow = workflows.get(store, caller, workflow_id)
    if change:
        caller.ensure_owns(workflow.owner, f"workflow {workflow_id}")
    body = store.get_body(_pk(workflow_id), _sk(schedule_id)) if ids.is_id(schedule_id, "sch") else None
    if body is None:
        raise ScheduleNotFound(schedule_id)
    return body


def create(
    store: Store, scheduling: Scheduling, caller: Caller, workflow_id: str, request: ScheduleInput
) -> ScheduleView:
    """Create a schedule of the caller's workflow, in the table and in Scheduler."""
    workflow = workflows.get_owned(store, caller, workflow_id)
    expression = request.expression.strip()
    check(expression, request.timezone, now())
    _check_variables(scheduling, request.variables)
    if len(store.query_bodies(_pk(workflow_id), "SCHEDULE#")) >= MAX_SCHEDULES_PER_WORKFLOW:
        raise Conflict(f"Workflow {workflow_id} has {MAX_SCHEDULES_PER_WORKFLOW} schedules, the most it may have")
    timestamp = now_iso()
    view = ScheduleView(
        id=ids.new_id("sch"),
        workflowId=workflow.id,
        expression=expression,
        timezone=request.timezone,
        variables=request.variables,
        enabled=request.enabled,
        description=request.description,
        owner=workflow.owner,
        createdAt=timestamp,
        updatedAt=timestamp,
    )
    try:
        store.put_body(_pk(workflow_id), _sk(view.id), _body(view), condition="attribute_not_exists(PK)")
    except ConditionFailed as error:
        raise Conflict(f"Schedule {view.id} exists already") from error
    try:
        with _in_scheduler():
            scheduler.create(scheduling.target, _spec(view))
    except Exception:
        store.delete_item(_pk(workflow_id), _sk(view.id))
        raise
    return view


def list_for_workflow(store: Store, caller: Caller, workflow_id: str) -> list[ScheduleView]:
    """The workflow's schedules, newest first."""
    workflows.get(store, caller, workflow_id)
    views = [ScheduleView.model_validate(body) for body in store.query_bodies(_pk(workflow_id), "SCHEDULE#")]
    return sorted(views, key=lambda view: view.id, reverse=True)


def get(store: Store, caller: Caller, workflow_id: str, schedule_id: str) -> ScheduleView:
    """One schedule of a workflow the caller may read."""
    return ScheduleView.model_validate(_load(store, caller, workflow_id, schedule_id, change=False))


def patch(
    store: Store, scheduling: Scheduling, caller: Caller, workflow_id: str, schedule_id: str, change: SchedulePatch
) -> ScheduleView:
    """Enable, disable or change a schedule; only the fields sent change."""
    sent = change.model_fields_set
    if not sent:
        raise InvalidSchedule(
            "nothing to change: send one or more of expression, timezone, variables, enabled, description"
        )
    previous = _load(store, caller, workflow_id, schedule_id, change=True)
    current = ScheduleView.model_validate(previous)
    updates: dict[str, Any] = {
        name: getattr(change, name)
        for name in ("expression", "timezone", "variables", "enabled")
        if name in sent and getattr(change, name) is not None
    }
    if "description" in sent:
        updates["description"] = change.description
    if "expression" in updates:
        updates["expression"] = str(updates["expression"]).strip()
    if "expression" in updates or "timezone" in updates:
        check(updates.get("expression", current.expression), updates.get("timezone", current.timezone), now())
    if "variables" in updates:
        _check_variables(scheduling, updates["variables"])
    updated = current.model_copy(update=updates)
    if updated == current:
        return current
    updated = updated.model_copy(update={"updatedAt": now_iso()})
    if not store.replace_body(_pk(workflow_id), _sk(schedule_id), _body(updated), previous=previous):
        raise Conflict(f"Schedule {schedule_id} was changed or deleted meanwhile; read it and retry")
    try:
        with _in_scheduler():
            scheduler.update(scheduling.target, _spec(updated))
    except Exception:
        # Put the record back, so the table keeps saying what Scheduler does.
        store.replace_body(_pk(workflow_id), _sk(schedule_id), previous, previous=_body(updated))
        raise
    return updated


def delete(store: Store, scheduling: Scheduling, caller: Caller, workflow_id: str, schedule_id: str) -> None:
    """Delete a schedule: from Scheduler first (so it fires no more), then from the table."""
    _load(store, caller, workflow_id, schedule_id, change=True)
    scheduler.delete(scheduling.target.group, schedule_id)
    store.delete_item(_pk(workflow_id), _sk(schedule_id))


def delete_all_of_workflow(store: Store, group: str, workflow_id: str) -> None:
    """Delete every schedule of a workflow, from Scheduler's ``group`` and from the table."""
    for body in store.query_bodies(_pk(workflow_id), "SCHEDULE#"):
        scheduler.delete(group, str(body["id"]))
        store.delete_item(_pk(workflow_id), _sk(str(body["id"])))


def _disable(group: str, delivery: ScheduleDelivery, reason: str) -> FireResult:
    state = scheduler.disable(group, delivery.scheduleId)
    logger.warning(
        f"Schedule {delivery.scheduleId} disabled: {reason}",
        extra={"schedule_id": delivery.scheduleId, "workflow_id": delivery.workflowId, "scheduler_state": state},
    )
    return FireResult(outcome="disabled", scheduleId=delivery.scheduleId, reason=reason)


def execution_id_for(delivery: ScheduleDelivery) -> str:
    """The execution a tick starts: the same for every delivery of the tick (schedule id, scheduled time)."""
    milliseconds = int(delivery.scheduledTime.timestamp() * 1000)
    return ids.derived_id("exe", milliseconds, f"{delivery.scheduleId}@{milliseconds}")


def fire(store: Store, runs: executions.Runs, group: str, delivery: ScheduleDelivery) -> FireResult:
    """Start the run a Scheduler tick asks for; never raises for a schedule that can no longer run.

    ``group`` is the stack's Scheduler group, where a schedule that can no longer run is disabled.

    A missing workflow or schedule record disables the Scheduler schedule (retrying would not help);
    a disabled record skips the tick; a repeated tick answers ``duplicate`` (having started the execution's run
    if the delivery that recorded it died before it did). Only AWS faults raise, so
    Scheduler retries them and, past its retry policy, sends the tick to the dead-letter queue.
    """
    schedule_id = delivery.scheduleId
    body = store.get_body(_pk(delivery.workflowId), _sk(schedule_id))
    workflow: WorkflowView | None = store.get_workflow(delivery.workflowId)
    if workflow is None:
        return _disable(group, delivery, f"workflow {delivery.workflowId} no longer exists")
    if body is None:
        return _disable(group, delivery, f"no schedule {schedule_id} is recorded for workflow {workflow.id}")
    schedule = ScheduleView.model_validate(body)
    if not schedule.enabled:
        # A tick racing a disable: the record decides.
        logger.info(f"Schedule {schedule_id} is disabled; tick skipped", extra={"schedule_id": schedule_id})
        return FireResult(outcome="skipped", scheduleId=schedule_id, reason="the schedule is disabled")
    execution_id = execution_id_for(delivery)
    # A tick delivered again still goes through launch: it starts the run of an execution that a delivery which
    # died between the record and StartExecution left PENDING.
    repeated = store.get_execution(execution_id) is not None
    try:
        executions.launch(
            store,
            runs,
            workflow,
            schedule.variables,
            owner=workflow.owner,
            started_by=f"{STARTED_BY_PREFIX}{schedule_id}",
            execution_id=execution_id,
        )
    except StartFailed as error:
        # Recorded FAILED with the reason; a retry would find that record and start nothing.
        logger.error(f"Schedule {schedule_id}: {error}", extra={"schedule_id": schedule_id})
        return FireResult(outcome="failed", scheduleId=schedule_id, executionId=execution_id, reason=str(error))
    except BadRequest as error:
        # The workflow's defaults and the schedule's variables together are too big: no retry can fix it.
        logger.error(f"Schedule {schedule_id} could not start a run: {error}", extra={"schedule_id": schedule_id})
        return FireResult(outcome="failed", scheduleId=schedule_id, reason=str(error))
    except ExecutionExists:
        # Two deliveries of one tick at once: the other one created the execution record first.
        return FireResult(outcome="duplicate", scheduleId=schedule_id, executionId=execution_id)
    except TooManyRuns as error:
        # The workflow rejects runs over its concurrency limit: this tick is skipped, the next one may start.
        logger.warning(f"Schedule {schedule_id}: tick skipped: {error}", extra={"schedule_id": schedule_id})
        return FireResult(outcome="skipped", scheduleId=schedule_id, reason=str(error))
    if repeated:
        logger.info(f"Tick already started {execution_id}", extra={"schedule_id": schedule_id})
        return FireResult(outcome="duplicate", scheduleId=schedule_id, executionId=execution_id)
    logger.info(f"Schedule {schedule_id} started {execution_id}", extra={"schedule_id": schedule_id})
    return FireResult(outcome="started", scheduleId=schedule_id, executionId=execution_id)
