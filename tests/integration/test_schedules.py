"""Schedules through the HTTP API and the scheduler function, against moto's DynamoDB, Scheduler, Lambda
and Step Functions (running the real ASL).

A "real Scheduler delivery" here is what Scheduler invokes the target with: the schedule's Target.Input as
moto stores it, with ``<aws.scheduler.scheduled-time>`` (and the attempt number) substituted, sent through
moto's Lambda to the scheduler function's ARN.
"""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from tests.conftest import REGION
from tests.support.builders import simple_workflow, wait_until

UNKNOWN_WORKFLOW = "wf_01JD3Z6Q4W8XK2V5N7R9T1B3C5"
UNKNOWN_SCHEDULE = "sch_01JD3Z6Q4W8XK2V5N7R9T1B3C5"
VIEW_FIELDS = {
    "id",
    "workflowId",
    "expression",
    "timezone",
    "variables",
    "enabled",
    "description",
    "owner",
    "createdAt",
    "updatedAt",
}


def create_workflow(api: Any, user: str = "alice") -> str:
    answer = api.post("/api/workflows", json_body=simple_workflow(), user=user)
    assert answer.status == 201, answer.body
    return str(answer.body["data"]["id"])


def create_schedule(api: Any, workflow_id: str, user: str = "alice", **fields: Any) -> dict[str, Any]:
    body = {"expression": "rate(5 minutes)", **fields}
    answer = api.post(f"/api/workflows/{workflow_id}/schedules", json_body=body, user=user)
    assert answer.status == 201, answer.body
    return dict(answer.body["data"])


def scheduler_client() -> Any:
    return boto3.client("scheduler", region_name=REGION)


def moto_schedule(aws: Any, schedule_id: str) -> dict[str, Any]:
    answer = scheduler_client().get_schedule(GroupName=aws.environment["SCHEDULE_GROUP_NAME"], Name=schedule_id)
    return dict(answer)


def moto_schedule_names(aws: Any) -> set[str]:
    answer = scheduler_client().list_schedules(GroupName=aws.environment["SCHEDULE_GROUP_NAME"])
    return {schedule["Name"] for schedule in answer["Schedules"]}


def deliver(aws: Any, schedule_id: str, scheduled_time: str, attempt: int = 1) -> dict[str, Any]:
    """Invoke the target as Scheduler does: Target.Input with its context attributes filled in."""
    target = moto_schedule(aws, schedule_id)["Target"]
    payload = (
        target["Input"]
        .replace("<aws.scheduler.scheduled-time>", scheduled_time)
        .replace("<aws.scheduler.attempt-number>", str(attempt))
    )
    answer = boto3.client("lambda", region_name=REGION).invoke(FunctionName=target["Arn"], Payload=payload.encode())
    result = json.loads(answer["Payload"].read())
    assert "FunctionError" not in answer, result
    return dict(result)


def wait_for_end(api: Any, aws: Any, execution_id: str) -> dict[str, Any]:
    """The execution once its state machine run has ended.

    Polls Step Functions rather than the API: reading the table while the run's thread writes it can trip
    moto's in-process DynamoDB ("dictionary changed size during iteration").
    """
    from stepwise.stepfunctions import execution_arn

    sfn = boto3.client("stepfunctions", region_name=REGION)
    arn = execution_arn(aws.state_machine_arn, execution_id)
    wait_until(lambda: sfn.describe_execution(executionArn=arn)["status"] != "RUNNING", message=f"{execution_id} ends")
    answer = api.get(f"/api/workflows/execute/{execution_id}")
    assert answer.status == 200, answer.body
    return dict(answer.body["data"])


def patch(api: Any, workflow_id: str, schedule_id: str, body: Any, user: str = "alice") -> Any:
    return api.request("PATCH", f"/api/workflows/{workflow_id}/schedules/{schedule_id}", json_body=body, user=user)


# --- create, list, read, change, delete ---------------------------------------------------------------


def test_create_answers_201_and_makes_the_scheduler_schedule(api: Any, aws: Any) -> None:
    # Given a workflow
    workflow_id = create_workflow(api)

    # When alice schedules it
    answer = api.post(
        f"/api/workflows/{workflow_id}/schedules",
        json_body={
            "expression": "cron(0 9 ? * MON-FRI *)",
            "timezone": "Europe/Paris",
            "variables": {"name": "Ada"},
            "description": "weekday mornings",
        },
    )

    # Then the answer is the view
    assert answer.status == 201, answer.body
    assert answer.body["success"] is True
    view = answer.body["data"]
    assert set(view) == VIEW_FIELDS
    assert view["id"].startswith("sch_")
    assert view["workflowId"] == workflow_id
    assert view["expression"] == "cron(0 9 ? * MON-FRI *)"
    assert view["timezone"] == "Europe/Paris"
    assert view["variables"] == {"name": "Ada"}
    assert view["enabled"] is True
    assert view["description"] == "weekday mornings"
    assert view["owner"] == "alice"
    # And Scheduler holds a schedule that invokes the scheduler function with the tick's time
    schedule = moto_schedule(aws, view["id"])
    assert schedule["State"] == "ENABLED"
    assert schedule["ScheduleExpression"] == "cron(0 9 ? * MON-FRI *)"
    assert schedule["ScheduleExpressionTimezone"] == "Europe/Paris"
    assert schedule["FlexibleTimeWindow"] == {"Mode": "OFF"}
    target = schedule["Target"]
    assert target["Arn"] == aws.environment["SCHEDULER_TARGET_ARN"]
    assert target["RoleArn"] == aws.environment["SCHEDULER_ROLE_ARN"]
    assert target["DeadLetterConfig"] == {"Arn": aws.environment["SCHEDULER_DLQ_ARN"]}
    assert target["RetryPolicy"]["MaximumRetryAttempts"] >= 1
    assert json.loads(target["Input"]) == {
        "scheduleId": view["id"],
        "workflowId": workflow_id,
        "scheduledTime": "<aws.scheduler.scheduled-time>",
        "attemptNumber": "<aws.scheduler.attempt-number>",
    }


def test_list_answers_the_workflows_schedules_newest_first(api: Any) -> None:
    workflow_id = create_workflow(api)
    first = create_schedule(api, workflow_id)
    second = create_schedule(api, workflow_id, expression="cron(0 9 * * ? *)")
    create_schedule(api, create_workflow(api))  # another workflow's

    answer = api.get(f"/api/workflows/{workflow_id}/schedules")

    assert answer.status == 200
    assert answer.body["success"] is True
    assert answer.body["nextCursor"] is None
    assert [row["id"] for row in answer.body["data"]] == [second["id"], first["id"]]


def test_get_answers_one_schedule_with_the_defaults_filled_in(api: Any) -> None:
    workflow_id = create_workflow(api)
    created = create_schedule(api, workflow_id)

    answer = api.get(f"/api/workflows/{workflow_id}/schedules/{created['id']}")

    assert answer.status == 200
    assert answer.body == {"success": True, "data": created}
    assert created["timezone"] == "UTC"
    assert created["enabled"] is True
    assert created["variables"] == {}
    assert created["description"] is None


def test_patch_disables_and_enables_in_the_table_and_in_scheduler(api: Any, aws: Any) -> None:
    workflow_id = create_workflow(api)
    schedule_id = create_schedule(api, workflow_id)["id"]

    disabled = patch(api, workflow_id, schedule_id, {"enabled": False})

    assert disabled.status == 200, disabled.body
    assert disabled.body["data"]["enabled"] is False
    assert moto_schedule(aws, schedule_id)["State"] == "DISABLED"
    assert api.get(f"/api/workflows/{workflow_id}/schedules/{schedule_id}").body["data"]["enabled"] is False

    enabled = patch(api, workflow_id, schedule_id, {"enabled": True})

    assert enabled.status == 200
    assert enabled.body["data"]["enabled"] is True
    assert moto_schedule(aws, schedule_id)["State"] == "ENABLED"


def test_patch_changes_only_what_is_sent(api: Any, aws: Any) -> None:
    workflow_id = create_workflow(api)
    created = create_schedule(api, workflow_id, variables={"name": "Ada"}, description="hourly")

    answer = patch(
        api,
        workflow_id,
        created["id"],
        {"expression": "cron(30 7 * * ? *)", "timezone": "America/New_York", "description": None},
    )

    assert answer.status == 200, answer.body
    view = answer.body["data"]
    assert view["expression"] == "cron(30 7 * * ? *)"
    assert view["timezone"] == "America/New_York"
    assert view["description"] is None
    assert view["variables"] == {"name": "Ada"}
    assert view["enabled"] is True
    assert view["createdAt"] == created["createdAt"]
    assert view["updatedAt"] >= created["updatedAt"]
    schedule = moto_schedule(aws, created["id"])
    assert schedule["ScheduleExpression"] == "cron(30 7 * * ? *)"
    assert schedule["ScheduleExpressionTimezone"] == "America/New_York"
    assert schedule["State"] == "ENABLED"
    assert schedule["Target"]["DeadLetterConfig"] == {"Arn": aws.environment["SCHEDULER_DLQ_ARN"]}


BAD_PATCHES = [
    ({}, "nothing to change"),
    ({"expression": "rate(0 minutes)"}, "positive whole number"),
    ({"timezone": "Mars/Olympus"}, "timezone 'Mars/Olympus' is not an IANA time zone"),
    ({"enabled": "sometimes"}, "enabled"),
    ({"colour": "red"}, "colour"),
]


def test_a_bad_patch_is_400_and_changes_nothing(api: Any, aws: Any, subtests: Any) -> None:
    workflow_id = create_workflow(api)
    created = create_schedule(api, workflow_id)

    for body, expected in BAD_PATCHES:
        with subtests.test(msg=json.dumps(body)):
            answer = patch(api, workflow_id, created["id"], body)

            assert answer.status == 400, answer.body
            assert answer.body["success"] is False
            assert expected in answer.body["error"]
            assert api.get(f"/api/workflows/{workflow_id}/schedules/{created['id']}").body["data"] == created
            assert moto_schedule(aws, created["id"])["ScheduleExpression"] == "rate(5 minutes)"


def test_delete_removes_it_from_the_table_and_from_scheduler(api: Any, aws: Any) -> None:
    workflow_id = create_workflow(api)
    schedule_id = create_schedule(api, workflow_id)["id"]
    kept = create_schedule(api, workflow_id)["id"]

    answer = api.delete(f"/api/workflows/{workflow_id}/schedules/{schedule_id}")

    assert answer.status == 200
    assert answer.body == {"success": True, "message": f"Schedule {schedule_id} deleted"}
    assert api.get(f"/api/workflows/{workflow_id}/schedules/{schedule_id}").status == 404
    assert [row["id"] for row in api.get(f"/api/workflows/{workflow_id}/schedules").body["data"]] == [kept]
    assert moto_schedule_names(aws) == {kept}
    with pytest.raises(ClientError) as missing:
        moto_schedule(aws, schedule_id)
    assert missing.value.response["Error"]["Code"] == "ResourceNotFoundException"


def test_deleting_the_workflow_deletes_its_schedules(api: Any, aws: Any) -> None:
    from stepwise import wiring

    workflow_id = create_workflow(api)
    doomed = {create_schedule(api, workflow_id)["id"], create_schedule(api, workflow_id)["id"]}
    other = create_schedule(api, create_workflow(api))["id"]

    assert api.delete(f"/api/workflows/{workflow_id}").status == 200

    assert moto_schedule_names(aws) == {other}
    assert wiring.api().store.query_bodies(f"WORKFLOW#{workflow_id}", "SCHEDULE#") == []
    assert doomed.isdisjoint(moto_schedule_names(aws))


# --- who may do what, and what does not exist ---------------------------------------------------------

ROUTES = [
    ("POST", "/api/workflows/{wf}/schedules"),
    ("GET", "/api/workflows/{wf}/schedules"),
    ("GET", "/api/workflows/{wf}/schedules/{sch}"),
    ("PATCH", "/api/workflows/{wf}/schedules/{sch}"),
    ("DELETE", "/api/workflows/{wf}/schedules/{sch}"),
]
BODIES = {"POST": {"expression": "rate(1 hour)"}, "PATCH": {"enabled": False}}


@pytest.fixture
def alices_schedule(api: Any) -> dict[str, str]:
    workflow_id = create_workflow(api)
    return {"wf": workflow_id, "sch": create_schedule(api, workflow_id)["id"]}


def test_someone_elses_schedules_are_403_on_every_route(
    api: Any, aws: Any, alices_schedule: dict[str, str], subtests: Any
) -> None:
    for method, template in ROUTES:
        with subtests.test(msg=f"{method} {template}"):
            answer = api.request(method, template.format(**alices_schedule), user="bob", json_body=BODIES.get(method))

            assert answer.status == 403, answer.body
            assert answer.body["success"] is False
            assert moto_schedule_names(aws) == {alices_schedule["sch"]}
            assert moto_schedule(aws, alices_schedule["sch"])["State"] == "ENABLED"


def test_no_claims_is_401_on_every_route(api: Any, alices_schedule: dict[str, str], subtests: Any) -> None:
    for method, template in ROUTES:
        with subtests.test(msg=f"{method} {template}"):
            answer = api.request(method, template.format(**alices_schedule), user=None, json_body=BODIES.get(method))

            assert answer.status == 401
            assert answer.body["success"] is False


def test_an_unknown_workflow_is_404_on_every_route(api: Any, subtests: Any) -> None:
    for method, template in ROUTES:
        with subtests.test(msg=f"{method} {template}"):
            answer = api.request(
                method, template.format(wf=UNKNOWN_WORKFLOW, sch=UNKNOWN_SCHEDULE), json_body=BODIES.get(method)
            )

            assert answer.status == 404
            assert answer.body == {"success": False, "error": f"Workflow {UNKNOWN_WORKFLOW} not found"}


def test_an_unknown_schedule_is_404(api: Any, alices_schedule: dict[str, str], subtests: Any) -> None:
    workflow_id = create_workflow(api)
    for method in ("GET", "PATCH", "DELETE"):
        for schedule_id in (UNKNOWN_SCHEDULE, "not-an-id", alices_schedule["sch"]):
            with subtests.test(msg=f"{method} {schedule_id}"):
                path = f"/api/workflows/{workflow_id}/schedules/{schedule_id}"

                answer = api.request(method, path, json_body=BODIES.get(method))

                # alice's schedule of another workflow is not a schedule of this one
                assert answer.status == 404
                assert answer.body == {"success": False, "error": f"Schedule {schedule_id} not found"}


# --- expressions and timezones are checked before AWS sees them -------------------------------------


BAD_SCHEDULES = [
    ({"expression": "every day at 9"}, "must be rate(...), cron(...) or at(...)"),
    ({"expression": "rate(0 minutes)"}, "the rate value must be a positive whole number, got '0'"),
    ({"expression": "rate(1 minutes)"}, "a value of 1 takes the singular unit: rate(1 minute)"),
    ({"expression": "rate(5 minute)"}, "a value above 1 takes the plural unit: rate(5 minutes)"),
    ({"expression": "rate(2 weeks)"}, "the rate unit must be minute(s), hour(s) or day(s), got 'weeks'"),
    ({"expression": "cron(0 9 * * *)"}, "has 5 fields; cron takes 6"),
    ({"expression": "cron(0 9 * * 1 *)"}, "exactly one of day-of-month and day-of-week must be '?'"),
    ({"expression": "cron(0 9 ? * ? *)"}, "exactly one of day-of-month and day-of-week must be '?'"),
    ({"expression": "cron(60 9 * * ? *)"}, "minutes field: 60 is out of range 0-59"),
    ({"expression": "cron(0 25 * * ? *)"}, "hours field: 25 is out of range 0-23"),
    ({"expression": "cron(0 9 0 * ? *)"}, "day-of-month field: 0 is out of range 1-31"),
    ({"expression": "cron(0 9 ? * 0 *)"}, "day-of-week field: 0 is out of range 1-7"),
    ({"expression": "cron(0 9 ? * SUNDAY *)"}, "day-of-week field: 'SUNDAY' is not a number"),
    ({"expression": "cron(0 9 1 JANUARY ? *)"}, "month field: 'JANUARY' is not a number"),
    ({"expression": "cron(0 9 * * ? 2201)"}, "year field: 2201 is out of range 1970-2199"),
    ({"expression": "cron(0 9 * * ? 2001)"}, "never runs again"),
    ({"expression": "at(2001-01-01T09:00:00)"}, "is in the past"),
    ({"expression": "at(2031-02-30T09:00:00)"}, "is not a real date and time"),
    ({"expression": "at(2031-01-01 09:00)"}, "is not at(yyyy-mm-ddThh:mm:ss)"),
    (
        {"expression": "at(2031-03-09T02:30:00)", "timezone": "America/New_York"},
        "does not exist in America/New_York",
    ),
    ({"expression": "rate(1 hour)", "timezone": "Mars/Olympus"}, "timezone 'Mars/Olympus' is not an IANA"),
    ({"expression": "rate(1 hour)", "timezone": "localtime"}, "timezone 'localtime' is not an IANA"),
    ({"expression": ""}, "expression"),
    ({"timezone": "UTC"}, "expression"),
    ({"expression": "rate(1 hour)", "owner": "bob"}, "owner"),
]


def test_a_bad_schedule_is_a_400_that_says_what_is_wrong(api: Any, aws: Any, subtests: Any) -> None:
    workflow_id = create_workflow(api)

    for body, expected in BAD_SCHEDULES:
        with subtests.test(msg=json.dumps(body)):
            answer = api.post(f"/api/workflows/{workflow_id}/schedules", json_body=body)

            assert answer.status == 400, answer.body
            assert answer.body["success"] is False
            assert expected in answer.body["error"], answer.body["error"]
            assert moto_schedule_names(aws) == set()
            assert api.get(f"/api/workflows/{workflow_id}/schedules").body["data"] == []


# --- the scheduler function ---------------------------------------------------------------------------


def test_a_scheduler_delivery_starts_an_execution_that_completes(api: Any, aws: Any) -> None:
    # Given a schedule with variables of its own
    workflow_id = create_workflow(api)
    schedule_id = create_schedule(api, workflow_id, variables={"name": "Ada"})["id"]

    # When Scheduler delivers a tick
    result = deliver(aws, schedule_id, "2031-01-06T09:00:00Z")

    # Then one execution of the workflow runs to the end, as alice's, started by the schedule
    assert result["outcome"] == "started"
    execution = wait_for_end(api, aws, result["executionId"])
    assert execution["state"] == "COMPLETED", execution
    assert execution["workflowId"] == workflow_id
    assert execution["startedBy"] == f"schedule:{schedule_id}"
    assert execution["variables"] == {"name": "Ada", "greeting": "Hello Ada"}
    listed = api.get(f"/api/workflows/{workflow_id}/executions").body["data"]
    assert [row["id"] for row in listed] == [result["executionId"]]


def test_a_delivery_runs_the_workflows_current_version(api: Any, aws: Any) -> None:
    workflow_id = create_workflow(api)
    schedule_id = create_schedule(api, workflow_id)["id"]
    updated = api.put(f"/api/workflows/{workflow_id}", json_body=simple_workflow(greeting="Hi ${name}"))
    assert updated.status == 200

    result = deliver(aws, schedule_id, "2031-01-06T09:00:00Z")

    execution = wait_for_end(api, aws, result["executionId"])
    assert execution["state"] == "COMPLETED", execution
    assert execution["workflowVersion"] == 2
    assert execution["output"] == {"greeting": "Hi world"}


def test_a_repeated_delivery_starts_one_execution(api: Any, aws: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given Step Functions records the runs it is asked to start (and runs none, so nothing is in flight)
    from stepwise import stepfunctions

    started: list[str] = []
    monkeypatch.setattr(stepfunctions, "start", lambda arn, execution_id: started.append(execution_id))
    workflow_id = create_workflow(api)
    schedule_id = create_schedule(api, workflow_id)["id"]

    # When Scheduler delivers a tick, retries it, and delivers the next tick
    first = deliver(aws, schedule_id, "2031-01-06T09:00:00Z")
    again = deliver(aws, schedule_id, "2031-01-06T09:00:00Z", attempt=2)
    next_tick = deliver(aws, schedule_id, "2031-01-06T09:05:00Z")

    # Then the retry recorded nothing: one execution per tick (the retry of a tick whose execution is still PENDING
    # asks again for that execution's run, by its name: Step Functions starts one run per name)
    assert first["outcome"] == "started"
    assert again == {**first, "outcome": "duplicate"}
    assert next_tick["outcome"] == "started"
    assert set(started) == {first["executionId"], next_tick["executionId"]}
    listed = api.get(f"/api/workflows/{workflow_id}/executions").body["data"]
    assert sorted(row["id"] for row in listed) == sorted(set(started))
    assert {row["startedBy"] for row in listed} == {f"schedule:{schedule_id}"}


def test_a_tick_whose_delivery_died_before_its_run_started_is_started_by_the_retry(
    api: Any, aws: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from stepwise import stepfunctions

    # Given a delivery that dies between the execution's record and StartExecution (a Lambda that crashed)
    real_start = stepfunctions.start

    def crash(arn: str, name: str) -> None:
        monkeypatch.setattr(stepfunctions, "start", real_start)
        raise RuntimeError("the scheduler function died here")

    monkeypatch.setattr(stepfunctions, "start", crash)
    workflow_id = create_workflow(api)
    schedule_id = create_schedule(api, workflow_id)["id"]
    with pytest.raises(AssertionError, match="the scheduler function died here"):
        deliver(aws, schedule_id, "2031-01-06T09:00:00Z")
    (pending,) = api.get(f"/api/workflows/{workflow_id}/executions").body["data"]
    assert pending["state"] == "PENDING"

    # When Scheduler retries the tick
    again = deliver(aws, schedule_id, "2031-01-06T09:00:00Z", attempt=2)

    # Then the retry starts that execution's run (no new execution), and it completes
    assert again == {"outcome": "duplicate", "scheduleId": schedule_id, "executionId": pending["id"], "reason": None}
    assert wait_for_end(api, aws, pending["id"])["state"] == "COMPLETED"
    assert len(api.get(f"/api/workflows/{workflow_id}/executions").body["data"]) == 1


def test_a_deleted_workflows_schedule_disables_itself(api: Any, aws: Any) -> None:
    from stepwise import wiring

    # Given a schedule whose workflow is gone while the schedule is still in Scheduler (a delete that raced)
    workflow_id = create_workflow(api)
    schedule_id = create_schedule(api, workflow_id)["id"]
    before = moto_schedule(aws, schedule_id)
    wiring.api().store.delete_workflow(workflow_id)

    # When Scheduler delivers a tick (twice: nothing may fail)
    result = deliver(aws, schedule_id, "2031-01-06T09:00:00Z")
    again = deliver(aws, schedule_id, "2031-01-06T09:05:00Z")

    # Then no execution started, and the schedule is DISABLED with every other field kept
    assert result["outcome"] == "disabled"
    assert "no longer exists" in result["reason"]
    assert result["executionId"] is None
    assert again["outcome"] == "disabled"
    after = moto_schedule(aws, schedule_id)
    assert after["State"] == "DISABLED"
    for field in ("ScheduleExpression", "ScheduleExpressionTimezone", "Target", "FlexibleTimeWindow", "GroupName"):
        assert after[field] == before[field], field
    assert api.get(f"/api/workflows/{workflow_id}/executions").status == 404


def test_a_tick_for_a_schedule_missing_from_the_table_disables_it(api: Any, aws: Any) -> None:
    from stepwise import wiring

    workflow_id = create_workflow(api)
    schedule_id = create_schedule(api, workflow_id)["id"]
    wiring.api().store.delete_item(f"WORKFLOW#{workflow_id}", f"SCHEDULE#{schedule_id}")

    result = deliver(aws, schedule_id, "2031-01-06T09:00:00Z")

    assert result["outcome"] == "disabled"
    assert moto_schedule(aws, schedule_id)["State"] == "DISABLED"
    assert api.get(f"/api/workflows/{workflow_id}/executions").body["data"] == []


def test_a_tick_of_a_disabled_schedule_starts_nothing(api: Any, aws: Any) -> None:
    workflow_id = create_workflow(api)
    schedule_id = create_schedule(api, workflow_id, enabled=False)["id"]

    result = deliver(aws, schedule_id, "2031-01-06T09:00:00Z")

    assert result["outcome"] == "skipped"
    assert api.get(f"/api/workflows/{workflow_id}/executions").body["data"] == []


def test_a_delivery_that_is_not_a_schedule_tick_fails_the_invoke(aws: Any) -> None:
    answer = boto3.client("lambda", region_name=REGION).invoke(
        FunctionName=aws.environment["SCHEDULER_TARGET_ARN"],
        Payload=json.dumps({"scheduleId": UNKNOWN_SCHEDULE, "scheduledTime": "<aws.scheduler.scheduled-time>"}),
    )

    assert answer.get("FunctionError")
    assert "ValidationError" in answer["Payload"].read().decode()
