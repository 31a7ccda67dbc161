"""A workflow's schedules: create, list, read, change, delete.

Included under ``/api/workflows/{workflowId}/schedules``.
"""

from __future__ import annotations

from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter

from stepwise import ids
from stepwise.api.routing import CurrentCaller, Cursor, Limit, answers, store
from stepwise.errors import BadRequest
from stepwise.models.envelopes import DataEnvelope, ListEnvelope, MessageEnvelope
from stepwise.models.schedule import ScheduleInput, SchedulePatch, ScheduleView
from stepwise.service import schedules
from stepwise.service.schedules import MAX_SCHEDULES_PER_WORKFLOW
from stepwise.settings import get_settings

PREFIX = "/api/workflows/<workflowId>/schedules"
router = APIGatewayHttpRouter()


@router.post("/", tags=["schedules"], status_code=201, responses=answers(201, "Created: the schedule"))
def create_schedule(workflowId: str, body: ScheduleInput, caller: CurrentCaller) -> DataEnvelope[ScheduleView]:
    return DataEnvelope(data=schedules.create(store(), get_settings(), caller, workflowId, body))


@router.get("/", tags=["schedules"], responses=answers(200, "A page of the workflow's schedules, newest first"))
def list_schedules(
    workflowId: str, caller: CurrentCaller, limit: Limit = MAX_SCHEDULES_PER_WORKFLOW, cursor: Cursor = None
) -> ListEnvelope[ScheduleView]:
    # A workflow has a few dozen schedules at most: they are read at once and paged here, by id (newest first).
    if cursor is not None and not ids.is_id(cursor, "sch"):
        raise BadRequest("cursor: not the nextCursor of a schedule listing")
    listed = schedules.list_for_workflow(store(), caller, workflowId)
    rows = [row for row in listed if cursor is None or row.id < cursor]
    page = rows[:limit]
    return ListEnvelope(data=page, nextCursor=page[-1].id if len(rows) > limit else None)


@router.get("/<scheduleId>", tags=["schedules"], responses=answers(200, "The schedule"))
def get_schedule(workflowId: str, scheduleId: str, caller: CurrentCaller) -> DataEnvelope[ScheduleView]:
    return DataEnvelope(data=schedules.get(store(), caller, workflowId, scheduleId))


@router.patch("/<scheduleId>", tags=["schedules"], responses=answers(200, "The schedule as changed"))
def update_schedule(
    workflowId: str, scheduleId: str, body: SchedulePatch, caller: CurrentCaller
) -> DataEnvelope[ScheduleView]:
    return DataEnvelope(data=schedules.patch(store(), get_settings(), caller, workflowId, scheduleId, body))


@router.delete("/<scheduleId>", tags=["schedules"], responses=answers(200, "Deleted"))
def delete_schedule(workflowId: str, scheduleId: str, caller: CurrentCaller) -> MessageEnvelope:
    schedules.delete(store(), get_settings(), caller, workflowId, scheduleId)
    return MessageEnvelope(message=f"Schedule {scheduleId} deleted")
