"""``Deployment.reset()`` (stepwise.local.stack): what one test leaves in the shared deployment, the next never
sees, and the deployment still runs workflows. Every test that asks for ``aws`` starts from it (tests/conftest.py).
"""

from __future__ import annotations

from typing import Any

import boto3

from tests.conftest import REGION
from tests.support.builders import simple_workflow, wait_for_state

APPROVAL = {"name": "approve", "nodes": [{"id": "review", "type": "approval", "config": {"message": "ship it?"}}]}
DELAY = {"name": "wait", "nodes": [{"id": "pause", "type": "delay", "config": {"seconds": 30}}]}


def start(api: Any, definition: dict[str, Any]) -> str:
    workflow = api.post("/api/workflows", json_body=definition)
    assert workflow.status == 201, workflow.body
    started = api.post(f"/api/workflows/execute/{workflow.body['data']['id']}")
    assert started.status == 202, started.body
    return str(started.body["data"]["executionId"])


def test_reset_empties_what_a_test_left_and_the_deployment_still_runs_workflows(aws: Any, api: Any) -> None:
    client = boto3.session.Session(region_name=REGION).client
    group = aws.environment["SCHEDULE_GROUP_NAME"]
    # Given a completed execution, one parked on an approval, one waiting in a Wait state, an agent with a
    # credential (a secret), a schedule and a message in the schedules' dead-letter queue
    wait_for_state(api, start(api, simple_workflow()), {"COMPLETED"})
    wait_for_state(api, start(api, APPROVAL), {"PAUSED"})
    start(api, DELAY)
    agent = api.post("/api/agents", json_body={"name": "a", "endpoint": "https://agent.example.com", "credential": "k"})
    assert agent.status == 201, agent.body
    workflow_id = api.get("/api/workflows").body["data"][0]["id"]
    schedule = api.post(f"/api/workflows/{workflow_id}/schedules", json_body={"expression": "rate(5 minutes)"})
    assert schedule.status == 201, schedule.body
    client("sqs").send_message(QueueUrl=aws.schedule_dlq_url, MessageBody="{}")
    sfn = client("stepfunctions")
    assert sfn.list_executions(stateMachineArn=aws.state_machine_arn, statusFilter="RUNNING")["executions"]

    # When the deployment is reset
    aws.reset()

    # Then its tables are there and empty, and no execution, schedule, secret or queued message is left
    for table_name in aws.table_names.values():
        assert client("dynamodb").scan(TableName=table_name)["Items"] == [], table_name
    assert sfn.list_executions(stateMachineArn=aws.state_machine_arn)["executions"] == []
    assert client("scheduler").list_schedules(GroupName=group)["Schedules"] == []
    assert client("secretsmanager").list_secrets()["SecretList"] == []
    assert client("sqs").receive_message(QueueUrl=aws.schedule_dlq_url).get("Messages", []) == []
    assert api.get("/api/workflows").body["data"] == []
    # And a workflow created now runs to the end
    execution = wait_for_state(api, start(api, simple_workflow()), {"COMPLETED", "FAILED"})
    assert execution["state"] == "COMPLETED", execution["error"]
