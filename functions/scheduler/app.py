"""The scheduler function: EventBridge Scheduler delivers a schedule's tick here; it starts one execution.

The event is the schedule target's Input with Scheduler's context attributes filled in
(``stepwise.schedules.target_input``). Every rule lives in ``stepwise.service.schedules.fire``.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from stepwise import wiring
from stepwise.models.schedule import ScheduleDelivery
from stepwise.observability import logger, metrics, trace_handler
from stepwise.service import schedules

# Cold start: a variable the scheduler function needs that is not set fails here, by name.
wiring.scheduler_settings()


@logger.inject_lambda_context(correlation_id_path="scheduleId")
@trace_handler
@metrics.log_metrics(capture_cold_start_metric=True)
@event_parser(model=ScheduleDelivery)
def lambda_handler(event: ScheduleDelivery, context: LambdaContext) -> dict[str, Any]:
    wired = wiring.scheduler()
    logger.append_keys(schedule_id=event.scheduleId, scheduled_time=event.scheduledTime.isoformat())
    result = schedules.fire(wired.store, wired.runs, wired.schedule_group, event)
    metrics.add_metric(name=f"ScheduledTicks{result.outcome.capitalize()}", unit=MetricUnit.Count, value=1)
    return result.model_dump()
