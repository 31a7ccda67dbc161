"""The local stand-in for EventBridge Scheduler's firing: moto stores schedules but never fires them.

At every tick, :class:`ScheduleClock` lists the group's ENABLED schedules in (moto's) Scheduler and, for
each, delivers every run that fell due since the previous tick: the target's Input with Scheduler's context
attributes filled in (``<aws.scheduler.scheduled-time>`` the run's own time), handed to ``invoke``, the
scheduler function's handler. When runs fall due is what ``stepwise.schedule_expressions`` computes:

- rate: at the schedule's creation (or StartDate) and every period after it;
- cron: at minute granularity, in the schedule's timezone;
- at(): once.

Runs that fell due while the clock was not running are never delivered, as AWS never backfills: the clock
counts from the moment it is made, and a gap of more than ``catch_up`` between two ticks (a laptop that
slept, a debugger that held the process) counts as not running, so waking up delivers at most the runs of
the last ``catch_up`` instead of every minute of the night. A delivery that raises is logged and not retried.

Wiring into the local stack is one line inside its ``ExitStack``::

    stack.enter_context(ScheduleClock.for_deployment(deployment).running())
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from stepwise import aws
from stepwise import schedules as scheduler
from stepwise.clock import now as wall_clock
from stepwise.errors import InvalidSchedule
from stepwise.local.repeating import repeating
from stepwise.schedule_expressions import check_timezone, parse_expression

if TYPE_CHECKING:
    from mypy_boto3_scheduler.type_defs import GetScheduleOutputTypeDef

    from stepwise.local.stack import Deployment

Invoke = Callable[[dict[str, Any]], Any]

log = logging.getLogger(__name__)

DEFAULT_CATCH_UP = timedelta(minutes=5)
_CONTEXT_ATTRIBUTES = (
    "<aws.scheduler.scheduled-time>",
    "<aws.scheduler.attempt-number>",
    "<aws.scheduler.execution-id>",
    "<aws.scheduler.schedule-arn>",
)


def scheduled_time(moment: datetime) -> str:
    """A run's time as Scheduler writes it into ``<aws.scheduler.scheduled-time>``: ``2022-03-22T18:59:43Z``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def delivery_for(schedule: GetScheduleOutputTypeDef, moment: datetime) -> dict[str, Any]:
    """The event Scheduler would hand the target for the run at ``moment`` (first attempt)."""
    text = schedule["Target"].get("Input", "{}")
    values = (scheduled_time(moment), "1", uuid.uuid4().hex[:16], schedule.get("Arn", ""))
    for attribute, value in zip(_CONTEXT_ATTRIBUTES, values, strict=True):
        text = text.replace(attribute, value)
    event: dict[str, Any] = json.loads(text)
    return event


def runs_between(schedule: GetScheduleOutputTypeDef, after: datetime, until: datetime) -> list[datetime]:
    """The schedule's runs in ``(after, until]``, never before its creation (or StartDate) nor after EndDate."""
    expression = parse_expression(schedule["ScheduleExpression"])
    zone = check_timezone(schedule.get("ScheduleExpressionTimezone") or "UTC")
    start = schedule.get("StartDate") or schedule["CreationDate"]
    end = schedule.get("EndDate")
    runs: list[datetime] = []
    moment = expression.next_after(after, zone, start)
    while moment is not None and moment <= until:
        if moment >= start and (end is None or moment <= end):
            runs.append(moment)
        moment = expression.next_after(moment, zone, start)
    return runs


class ScheduleClock:
    """Fires the schedule group's due schedules into ``invoke`` when ``tick`` is called (or on a thread)."""

    def __init__(
        self,
        group: str,
        invoke: Invoke,
        now: Callable[[], datetime] = wall_clock,
        *,
        catch_up: timedelta = DEFAULT_CATCH_UP,
    ) -> None:
        self.group = group
        self.invoke = invoke
        self.now = now
        self.catch_up = catch_up
        self._last = now()  # nothing before the clock exists is delivered
        self._lock = threading.Lock()

    @classmethod
    def for_deployment(cls, deployment: Deployment, **options: Any) -> ScheduleClock:
        """A clock for the local stack: its schedule group, delivering to its scheduler function's handler."""
        from stepwise.local.lambda_routing import LocalLambdaContext
        from stepwise.local.stack import ACCOUNT

        name = deployment.function_names["SchedulerFunction"]
        spec = deployment.specs["SchedulerFunction"]
        handler = deployment.handler_for(name)

        def invoke(event: dict[str, Any]) -> Any:
            context = LocalLambdaContext(
                function_name=name,
                invoked_function_arn=f"arn:aws:lambda:{deployment.region}:{ACCOUNT}:function:{name}",
                memory_limit_in_mb=spec.memory,
                timeout_seconds=spec.timeout,
            )
            return handler(event, context)

        return cls(deployment.environment["SCHEDULE_GROUP_NAME"], invoke, **options)

    def _enabled_schedules(self) -> list[GetScheduleOutputTypeDef]:
        found: list[GetScheduleOutputTypeDef] = []
        pages = aws.scheduler().get_paginator("list_schedules").paginate(GroupName=self.group, State="ENABLED")
        for page in pages:
            for summary in page.get("Schedules", []):
                schedule = scheduler.get(self.group, summary["Name"])  # None: deleted meanwhile
                if schedule is not None and schedule.get("State") == "ENABLED":
                    found.append(schedule)
        return found

    def tick(self, now: datetime) -> list[dict[str, Any]]:
        """Deliver every run due in (previous tick, ``now``], oldest first; returns the events delivered."""
        with self._lock:
            if now <= self._last:
                return []
            after = max(self._last, now - self.catch_up)
            if after > self._last:
                log.warning("schedule clock: %s without a tick; runs before %s are skipped", now - self._last, after)
            self._last = now
        due: list[tuple[datetime, str, dict[str, Any]]] = []
        for schedule in self._enabled_schedules():
            try:
                runs = runs_between(schedule, after, now)
                due.extend((moment, schedule["Name"], delivery_for(schedule, moment)) for moment in runs)
            except (InvalidSchedule, ValueError) as error:  # made outside the API, with something we cannot read
                log.warning("schedule clock: skipping %s: %s", schedule["Name"], error)
        delivered: list[dict[str, Any]] = []
        for moment, name, event in sorted(due, key=lambda run: (run[0], run[1])):
            try:
                self.invoke(event)
            except Exception:
                log.exception("schedule clock: delivering %s's run at %s failed", name, scheduled_time(moment))
                continue
            delivered.append(event)
        return delivered

    @contextlib.contextmanager
    def running(self, interval: float = 1.0) -> Iterator[ScheduleClock]:
        """Run it every ``interval`` seconds on a daemon thread while the context is open (stopped on exit)."""
        with repeating(lambda: self.tick(self.now()), interval, "schedule-clock"):
            yield self
