"""The local firing loop: schedules made through the API (so they live in moto's Scheduler), a clock the test
moves by hand, and the deliveries it makes captured (or, at the end, handed to the real scheduler function).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from stepwise.local.schedule_clock import ScheduleClock
from stepwise.models.schedule import ScheduleDelivery
from tests.conftest import REGION
from tests.support.builders import simple_workflow, wait_until

T0 = datetime(2031, 1, 10, 7, 30, tzinfo=UTC)  # a Friday, in winter


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


class Deliveries(list[dict[str, Any]]):
    """What the clock handed the scheduler function."""

    def times(self, schedule_id: str) -> list[str]:
        return [event["scheduledTime"] for event in self if event["scheduleId"] == schedule_id]


@pytest.fixture
def workflow_id(api: Any) -> str:
    answer = api.post("/api/workflows", json_body=simple_workflow())
    assert answer.status == 201, answer.body
    return str(answer.body["data"]["id"])


@pytest.fixture
def schedule(api: Any, workflow_id: str) -> Callable[..., str]:
    def create(expression: str, **fields: Any) -> str:
        answer = api.post(f"/api/workflows/{workflow_id}/schedules", json_body={"expression": expression, **fields})
        assert answer.status == 201, answer.body
        return str(answer.body["data"]["id"])

    return create


@pytest.fixture
def deliveries() -> Deliveries:
    return Deliveries()


def clock_at(aws: Any, deliveries: Deliveries, start: datetime, **options: Any) -> ScheduleClock:
    return ScheduleClock(aws.environment["SCHEDULE_GROUP_NAME"], deliveries.append, now=lambda: start, **options)


def created_at(aws: Any, schedule_id: str) -> datetime:
    client = boto3.client("scheduler", region_name=REGION)
    answer = client.get_schedule(GroupName=aws.environment["SCHEDULE_GROUP_NAME"], Name=schedule_id)
    created: datetime = answer["CreationDate"]
    return created.astimezone(UTC)


def second(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_a_rate_fires_at_creation_and_every_period(
    aws: Any, schedule: Callable[..., str], deliveries: Deliveries, workflow_id: str
) -> None:
    schedule_id = schedule("rate(5 minutes)")
    created = created_at(aws, schedule_id)
    clock = clock_at(aws, deliveries, created - timedelta(seconds=1))

    assert [e["scheduledTime"] for e in clock.tick(created + timedelta(seconds=1))] == [second(created)]
    assert clock.tick(created + timedelta(minutes=4, seconds=59)) == []
    assert len(clock.tick(created + timedelta(minutes=5))) == 1
    assert len(clock.tick(created + timedelta(minutes=12))) == 1

    assert deliveries.times(schedule_id) == [
        second(created),
        second(created + timedelta(minutes=5)),
        second(created + timedelta(minutes=10)),
    ]
    # Each delivery is what Scheduler would send: the target's Input with its context attributes filled in
    assert deliveries[0] == {
        "scheduleId": schedule_id,
        "workflowId": workflow_id,
        "scheduledTime": second(created),
        "attemptNumber": "1",
    }
    assert ScheduleDelivery.model_validate(deliveries[0]).attemptNumber == 1


def test_a_cron_fires_on_its_minutes(aws: Any, schedule: Callable[..., str], deliveries: Deliveries) -> None:
    schedule_id = schedule("cron(0/15 * * * ? *)")
    clock = clock_at(aws, deliveries, utc("2031-01-10T07:35:00"), catch_up=timedelta(hours=1))

    for moment in ("07:40:00", "07:44:59", "07:45:00", "07:45:30", "08:01:00", "08:30:00"):
        clock.tick(utc(f"2031-01-10T{moment}"))  # the last tick delivers two runs, oldest first

    assert deliveries.times(schedule_id) == [
        "2031-01-10T07:45:00Z",
        "2031-01-10T08:00:00Z",
        "2031-01-10T08:15:00Z",
        "2031-01-10T08:30:00Z",
    ]


@pytest.mark.parametrize(
    ("start", "paris", "new_york"),
    [
        ("2031-01-10T07:30:00", "2031-01-10T08:00:00Z", "2031-01-10T14:00:00Z"),  # winter: UTC+1, UTC-5
        ("2031-07-10T06:30:00", "2031-07-10T07:00:00Z", "2031-07-10T13:00:00Z"),  # summer: UTC+2, UTC-4
    ],
)
def test_a_cron_fires_at_its_wall_time_in_its_own_timezone(
    aws: Any, schedule: Callable[..., str], deliveries: Deliveries, start: str, paris: str, new_york: str
) -> None:
    in_paris = schedule("cron(0 9 * * ? *)", timezone="Europe/Paris")
    in_new_york = schedule("cron(0 9 * * ? *)", timezone="America/New_York")
    clock = clock_at(aws, deliveries, utc(start))

    moment = utc(start)
    while moment < utc(start) + timedelta(hours=8):
        moment += timedelta(minutes=10)
        clock.tick(moment)

    assert deliveries.times(in_paris) == [paris]
    assert deliveries.times(in_new_york) == [new_york]


def test_an_at_fires_once(aws: Any, schedule: Callable[..., str], deliveries: Deliveries) -> None:
    schedule_id = schedule("at(2031-01-01T00:20:00)", timezone="Europe/Paris")  # 23:20 UTC the day before
    clock = clock_at(aws, deliveries, utc("2030-12-31T23:00:00"))

    for minute in range(1, 60):
        clock.tick(utc("2030-12-31T23:00:00") + timedelta(minutes=minute, seconds=30))

    assert deliveries.times(schedule_id) == ["2030-12-31T23:20:00Z"]


def test_disabled_and_deleted_schedules_never_fire(
    api: Any, aws: Any, schedule: Callable[..., str], deliveries: Deliveries, workflow_id: str
) -> None:
    control = schedule("cron(* * * * ? *)")
    created_disabled = schedule("cron(* * * * ? *)", enabled=False)
    disabled_later = schedule("cron(* * * * ? *)")
    deleted = schedule("cron(* * * * ? *)")
    base = f"/api/workflows/{workflow_id}/schedules"
    assert api.request("PATCH", f"{base}/{disabled_later}", json_body={"enabled": False}).status == 200
    assert api.delete(f"{base}/{deleted}").status == 200
    clock = clock_at(aws, deliveries, T0)

    for minute in (1, 2, 3):
        clock.tick(T0 + timedelta(minutes=minute))

    assert {event["scheduleId"] for event in deliveries} == {control}
    assert len(deliveries.times(control)) == 3
    assert created_disabled not in json.dumps(deliveries)


def test_runs_missed_while_the_clock_was_not_running_are_not_delivered(
    aws: Any, schedule: Callable[..., str], deliveries: Deliveries
) -> None:
    schedule_id = schedule("cron(* * * * ? *)")

    # A clock made at T0 (the local stack starting) delivers nothing from before T0
    clock = clock_at(aws, deliveries, T0 + timedelta(seconds=30))
    clock.tick(T0 + timedelta(minutes=1, seconds=30))
    assert deliveries.times(schedule_id) == [second(T0 + timedelta(minutes=1))]

    # A tick an hour later (the laptop slept) delivers only the last catch_up's runs, not 60 of them
    clock.tick(T0 + timedelta(hours=1, seconds=30))
    assert deliveries.times(schedule_id)[1:] == [
        second(T0 + timedelta(minutes=minute)) for minute in (56, 57, 58, 59, 60)
    ]

    # A clock started again later delivers nothing of the time it was stopped
    deliveries.clear()
    restarted = clock_at(aws, deliveries, T0 + timedelta(hours=5, seconds=30))
    restarted.tick(T0 + timedelta(hours=5, minutes=1, seconds=30))
    assert deliveries.times(schedule_id) == [second(T0 + timedelta(hours=5, minutes=1))]


def test_the_local_stack_clock_starts_scheduled_executions(
    api: Any, aws: Any, schedule: Callable[..., str], workflow_id: str
) -> None:
    # Given the clock the local stack runs, delivering to the real scheduler function
    schedule_id = schedule("cron(0 9 ? * MON-FRI *)", variables={"name": "Ada"})
    clock = ScheduleClock.for_deployment(aws, now=lambda: utc("2031-01-10T08:59:00"))

    # When 09:00 passes
    clock.tick(utc("2031-01-10T09:00:30"))

    # Then a scheduled execution runs to the end (waited for in Step Functions: polling the table while the
    # run's thread writes it can trip moto's in-process DynamoDB)
    sfn = boto3.client("stepfunctions", region_name=REGION)
    runs = sfn.list_executions(stateMachineArn=aws.state_machine_arn)["executions"]
    assert len(runs) == 1
    wait_until(
        lambda: sfn.describe_execution(executionArn=runs[0]["executionArn"])["status"] != "RUNNING",
        message="the run ends",
    )
    # And the user sees it, started by the schedule
    listed = api.get(f"/api/workflows/{workflow_id}/executions").body["data"]
    assert [(row["id"], row["startedBy"]) for row in listed] == [(runs[0]["name"], f"schedule:{schedule_id}")]
    execution = api.get(f"/api/workflows/execute/{runs[0]['name']}").body["data"]
    assert execution["state"] == "COMPLETED", execution
    assert execution["variables"]["greeting"] == "Hello Ada"


def test_the_clock_thread_fires_in_real_time(aws: Any, schedule: Callable[..., str], deliveries: Deliveries) -> None:
    clock = ScheduleClock(aws.environment["SCHEDULE_GROUP_NAME"], deliveries.append)

    with clock.running(interval=0.05):
        schedule_id = schedule("rate(1 hour)")  # a rate runs when it is created
        wait_until(lambda: deliveries.times(schedule_id), timeout=5, message="the first run")

    assert deliveries.times(schedule_id) == [second(created_at(aws, schedule_id))]
