"""The HTTP API as a user sees it: the seed contract, definitions, identity and every error status.

Every request is a real HTTP API 2.0 event through the API function's handler, against moto's DynamoDB,
Step Functions (running the real ASL) and Secrets Manager.
"""

from __future__ import annotations

import json
import re
from typing import Any

import boto3
import pytest

from tests.support.builders import simple_workflow, wait_for_state

TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
UNKNOWN_EXECUTION = "exe_01JD3Z6Q4W8XK2V5N7R9T1B3C5"
UNKNOWN_WORKFLOW = "wf_01JD3Z6Q4W8XK2V5N7R9T1B3C5"
UNKNOWN_AGENT = "ag_01JD3Z6Q4W8XK2V5N7R9T1B3C5"
UNKNOWN_SCHEDULE = "sch_01JD3Z6Q4W8XK2V5N7R9T1B3C5"
NO_TOKEN = {"success": False, "error": "No token: send the header 'Authorization: Bearer <token>'"}


def create_workflow(api: Any, definition: dict[str, Any] | None = None, user: str = "alice") -> str:
    answer = api.post("/api/workflows", json_body=definition or simple_workflow(), user=user)
    assert answer.status == 201, answer.body
    return str(answer.body["data"]["id"])


def start(api: Any, workflow_id: str, user: str = "alice", **kwargs: Any) -> str:
    answer = api.post(f"/api/workflows/execute/{workflow_id}", user=user, **kwargs)
    assert answer.status == 202, answer.body
    return str(answer.body["data"]["executionId"])


def start_that_fails(api: Any) -> dict[str, Any]:
    """Start a new workflow whose start Step Functions refuses: a 500 naming the execution, recorded FAILED."""
    answer = api.post(f"/api/workflows/execute/{create_workflow(api)}")
    assert answer.status == 500
    execution_id = re.search(r"exe_[0-9A-Z]{26}", answer.body["error"]).group(0)  # type: ignore[union-attr]
    execution: dict[str, Any] = api.get(f"/api/workflows/execute/{execution_id}").body["data"]
    assert execution["state"] == "FAILED"
    return execution


# --- the seed's three endpoints ------------------------------------------------------------------


def test_start_answers_202_with_the_seed_body(api: Any) -> None:
    # Given a workflow
    workflow_id = create_workflow(api)
    # When it is started
    answer = api.post(f"/api/workflows/execute/{workflow_id}", json_body={"variables": {"name": "Ada"}})
    # Then the answer is exactly the seed's
    assert answer.status == 202
    assert set(answer.body) == {"success", "data", "message"}
    assert answer.body["success"] is True
    assert answer.body["message"] == "Workflow execution initiated successfully"
    assert set(answer.body["data"]) == {"workflowId", "executionId"}
    assert answer.body["data"]["workflowId"] == workflow_id
    assert re.match(r"^exe_[0-9A-Z]{26}$", answer.body["data"]["executionId"])


def test_get_returns_the_seed_workflow_execution(api: Any) -> None:
    workflow_id = create_workflow(api)
    execution_id = start(api, workflow_id, json_body={"variables": {"name": "Ada"}})

    execution = wait_for_state(api, execution_id, {"COMPLETED"})

    assert set(execution) >= {
        "id",
        "workflowId",
        "state",
        "startedAt",
        "completedAt",
        "startedBy",
        "variables",
        "logs",
        "output",
        "error",
        "nodeStates",
    }
    assert execution["id"] == execution_id
    assert execution["workflowId"] == workflow_id
    assert execution["startedBy"] == "alice"
    assert TIMESTAMP.match(execution["startedAt"]) and TIMESTAMP.match(execution["completedAt"])
    assert execution["error"] is None
    assert execution["variables"] == {"name": "Ada", "greeting": "Hello Ada"}
    assert execution["output"] == {"greeting": "Hello Ada"}
    state = execution["nodeStates"]["greet"]
    assert set(state) == {"state", "startedAt", "completedAt", "error", "output", "runs", "reused"}
    assert state["runs"] == 1 and state["reused"] is False
    assert state["state"] == "COMPLETED" and state["error"] is None
    assert TIMESTAMP.match(state["startedAt"]) and TIMESTAMP.match(state["completedAt"])
    for line in execution["logs"]:
        assert set(line) == {"nodeId", "message", "level", "timestamp"}
        assert TIMESTAMP.match(line["timestamp"])
    assert any(line["nodeId"] == "greet" for line in execution["logs"])


def test_a_new_execution_has_no_completed_at_and_pending_nodes(api: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given Step Functions accepts the start but has not run anything yet
    from stepwise import stepfunctions

    monkeypatch.setattr(stepfunctions, "start", lambda arn, execution_id: None)
    workflow_id = create_workflow(api)
    execution_id = start(api, workflow_id)

    execution = api.get(f"/api/workflows/execute/{execution_id}").body["data"]

    assert execution["state"] == "PENDING"
    assert execution["completedAt"] is None
    assert execution["nodeStates"]["greet"] == {
        "state": "PENDING",
        "startedAt": None,
        "completedAt": None,
        "error": None,
        "output": None,
        "runs": 0,
        "reused": False,
    }


def test_cancel_answers_the_seed_message_and_a_second_cancel_is_409(api: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from stepwise import stepfunctions

    monkeypatch.setattr(stepfunctions, "start", lambda arn, execution_id: None)
    execution_id = start(api, create_workflow(api))

    answer = api.delete(f"/api/workflows/execute/{execution_id}")

    assert answer.status == 200
    assert answer.body == {"success": True, "message": f"Execution {execution_id} canceled"}
    execution = api.get(f"/api/workflows/execute/{execution_id}").body["data"]
    assert execution["state"] == "CANCELED"
    assert TIMESTAMP.match(execution["completedAt"])
    assert execution["nodeStates"]["greet"]["state"] == "SKIPPED"
    again = api.delete(f"/api/workflows/execute/{execution_id}")
    assert again.status == 409
    assert again.body == {
        "success": False,
        "error": f"Execution {execution_id} already ended (CANCELED); it cannot be canceled",
    }


def test_cancel_of_a_completed_execution_is_409_and_keeps_it_completed(api: Any) -> None:
    execution_id = start(api, create_workflow(api))
    wait_for_state(api, execution_id, {"COMPLETED"})

    answer = api.delete(f"/api/workflows/execute/{execution_id}")

    assert answer.status == 409
    assert "COMPLETED" in answer.body["error"]
    assert api.get(f"/api/workflows/execute/{execution_id}").body["data"]["state"] == "COMPLETED"


def test_start_merges_variables_over_the_workflow_defaults(api: Any) -> None:
    definition = simple_workflow(variables={"name": "default", "lang": "en"})
    execution_id = start(api, create_workflow(api, definition), json_body={"variables": {"name": "Grace"}})

    execution = wait_for_state(api, execution_id, {"COMPLETED"})

    assert execution["variables"]["name"] == "Grace"
    assert execution["variables"]["lang"] == "en"


def test_a_start_that_step_functions_refuses_ends_failed(api: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given the state machine does not exist (a broken deployment)
    monkeypatch.setenv("STATE_MACHINE_ARN", "arn:aws:states:us-east-1:123456789012:stateMachine:missing")
    from stepwise import wiring

    wiring.reset()

    execution = start_that_fails(api)

    assert "could not be started" in execution["error"]


# --- idempotency ---------------------------------------------------------------------------------


def test_a_retried_start_with_the_same_idempotency_key_returns_the_first_execution(api: Any) -> None:
    workflow_id = create_workflow(api)
    headers = {"Idempotency-Key": "order-42"}

    first = api.post(f"/api/workflows/execute/{workflow_id}", headers=headers, json_body={"variables": {"n": 1}})
    second = api.post(f"/api/workflows/execute/{workflow_id}", headers=headers, json_body={"variables": {"n": 1}})
    other = api.post(f"/api/workflows/execute/{workflow_id}", headers={"Idempotency-Key": "order-43"})

    assert first.status == second.status == other.status == 202
    assert second.body["data"]["executionId"] == first.body["data"]["executionId"]
    assert other.body["data"]["executionId"] != first.body["data"]["executionId"]
    listing = api.get(f"/api/workflows/{workflow_id}/executions").body["data"]
    assert len(listing) == 2


def test_a_start_that_died_before_its_run_started_is_started_by_a_retry_with_the_same_key(
    api: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from stepwise import stepfunctions

    # Given a start that dies between the execution's record and StartExecution (the API function crashed)
    real_start = stepfunctions.start

    def crash(arn: str, name: str) -> None:
        monkeypatch.setattr(stepfunctions, "start", real_start)
        raise RuntimeError("the API function died here")

    monkeypatch.setattr(stepfunctions, "start", crash)
    workflow_id = create_workflow(api)
    headers = {"Idempotency-Key": "order-45"}
    first = api.post(f"/api/workflows/execute/{workflow_id}", headers=headers, json_body={"variables": {"n": 1}})
    assert first.status == 500
    (pending,) = api.get(f"/api/workflows/{workflow_id}/executions").body["data"]
    assert pending["state"] == "PENDING"

    # When the client retries with the same key
    again = api.post(f"/api/workflows/execute/{workflow_id}", headers=headers, json_body={"variables": {"n": 1}})

    # Then it gets that execution, whose run now starts and completes: no second execution
    assert again.status == 202, again.body
    assert again.body["data"]["executionId"] == pending["id"]
    assert wait_for_state(api, pending["id"], {"COMPLETED", "FAILED"})["state"] == "COMPLETED"
    assert len(api.get(f"/api/workflows/{workflow_id}/executions").body["data"]) == 1


def test_an_idempotency_key_reused_with_other_variables_is_409(api: Any) -> None:
    workflow_id = create_workflow(api)
    headers = {"Idempotency-Key": "order-44"}
    api.post(f"/api/workflows/execute/{workflow_id}", headers=headers, json_body={"variables": {"n": 1}})

    answer = api.post(f"/api/workflows/execute/{workflow_id}", headers=headers, json_body={"variables": {"n": 2}})

    assert answer.status == 409
    assert "Idempotency-Key" in answer.body["error"]


# --- workflow definitions ------------------------------------------------------------------------


def test_workflow_crud_and_versions(api: Any) -> None:
    created = api.post("/api/workflows", json_body=simple_workflow(name="v1"))
    assert created.status == 201
    workflow = created.body["data"]
    assert workflow["version"] == 1 and workflow["owner"] == "alice"

    read = api.get(f"/api/workflows/{workflow['id']}")
    assert read.status == 200 and read.body["data"] == workflow

    updated = api.put(f"/api/workflows/{workflow['id']}", json_body=simple_workflow(name="v2"))
    assert updated.status == 200
    assert updated.body["data"]["version"] == 2 and updated.body["data"]["name"] == "v2"
    assert updated.body["data"]["createdAt"] == workflow["createdAt"]

    deleted = api.delete(f"/api/workflows/{workflow['id']}")
    assert deleted.status == 200
    assert deleted.body == {"success": True, "message": f"Workflow {workflow['id']} deleted"}
    assert api.get(f"/api/workflows/{workflow['id']}").status == 404


def test_an_execution_runs_the_version_it_was_started_with(api: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    workflow_id = create_workflow(api, simple_workflow(greeting="Hello ${name}"))
    execution_id = start(api, workflow_id, json_body={"variables": {"name": "Ada"}})
    # When the workflow is edited while the run is in flight
    api.put(f"/api/workflows/{workflow_id}", json_body=simple_workflow(greeting="Bye ${name}"))

    execution = wait_for_state(api, execution_id, {"COMPLETED"})

    assert execution["workflowVersion"] == 1
    assert execution["variables"]["greeting"] == "Hello Ada"


def test_workflow_listing_is_paginated_newest_first(api: Any) -> None:
    ids = [create_workflow(api, simple_workflow(name=f"w{i}")) for i in range(5)]
    create_workflow(api, simple_workflow(name="bob's"), user="bob")

    first = api.get("/api/workflows?limit=2")
    assert first.status == 200
    assert [w["id"] for w in first.body["data"]] == ids[::-1][:2]
    assert first.body["nextCursor"]
    seen = [w["id"] for w in first.body["data"]]
    cursor = first.body["nextCursor"]
    while cursor:
        page = api.get(f"/api/workflows?limit=2&cursor={cursor}").body
        seen += [w["id"] for w in page["data"]]
        cursor = page["nextCursor"]
    assert seen == ids[::-1]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda d: d["nodes"].append(dict(d["nodes"][0])), "nodes[1] (id 'greet'): duplicate node id 'greet'"),
        (lambda d: d["nodes"][0].update(type="teleport"), "nodes[0] (id 'greet'): unknown node type 'teleport'"),
        (lambda d: d["nodes"][0].update(config={}), "nodes[0] (id 'greet'): config.values: Field required"),
        (lambda d: d["nodes"][0].update(next="nowhere"), "points to node 'nowhere', which does not exist"),
        (lambda d: d.update(nodes=[]), "nodes: List should have at least 1 item"),
        (lambda d: d.pop("name"), "name: Field required"),
        (
            lambda d: d["nodes"].append(
                {
                    "id": "check",
                    "type": "condition",
                    "config": {"left": 1, "op": "eq", "right": 1, "then": "greet", "else": "gone"},
                }
            ),
            "nodes[1] (id 'check'): config points to node 'gone', which does not exist",
        ),
        (
            lambda d: d["nodes"].append({"id": "wait", "type": "delay", "config": {"seconds": -1}}),
            "nodes[1] (id 'wait'): config.seconds: Input should be greater than or equal to 0",
        ),
        (
            lambda d: d["nodes"].append(
                {"id": "ask", "type": "agentTask", "config": {"agentId": UNKNOWN_AGENT, "prompt": "hi"}}
            ),
            f"nodes[1] (id 'ask'): config.agentId: agent {UNKNOWN_AGENT} does not exist",
        ),
    ],
)
def test_an_invalid_workflow_is_a_400_that_names_the_node_and_field(api: Any, change: Any, expected: str) -> None:
    definition = simple_workflow()
    change(definition)

    answer = api.post("/api/workflows", json_body=definition)

    assert answer.status == 400
    assert answer.body["success"] is False
    assert expected in answer.body["error"]
    assert api.get("/api/workflows").body["data"] == []


def test_malformed_json_is_a_400_and_stores_nothing(api: Any) -> None:
    answer = api.post("/api/workflows", raw_body='{"name": "broken", "nodes": [')

    assert answer.status == 400
    assert answer.body["success"] is False
    assert answer.body["error"].startswith("request body is not valid JSON")
    assert api.get("/api/workflows").body["data"] == []


def test_a_failed_update_keeps_the_stored_version(api: Any) -> None:
    workflow_id = create_workflow(api)

    answer = api.put(f"/api/workflows/{workflow_id}", json_body={"name": "no nodes", "nodes": []})

    assert answer.status == 400
    assert api.get(f"/api/workflows/{workflow_id}").body["data"]["version"] == 1


def test_bad_query_parameters_are_400(api: Any) -> None:
    workflow_id = create_workflow(api)
    assert api.get("/api/workflows?limit=0").status == 400
    assert api.get("/api/workflows?cursor=not-a-cursor").status == 400
    bad_state = api.get(f"/api/workflows/{workflow_id}/executions?state=SLEEPING")
    assert bad_state.status == 400
    assert "state" in bad_state.body["error"]


# --- agents --------------------------------------------------------------------------------------


def test_agent_credential_is_write_only_and_kept_in_secrets_manager(api: Any) -> None:
    created = api.post(
        "/api/agents",
        json_body={
            "name": "summarizer",
            "endpoint": "https://agents.example.com/run",
            "protocol": "json",
            "credential": "sk-very-secret",
            "headers": {"X-Team": "docs"},
        },
    )

    assert created.status == 201
    agent = created.body["data"]
    assert "credential" not in agent and "sk-very-secret" not in str(created.body)
    assert agent["hasCredential"] is True
    secrets = boto3.client("secretsmanager").list_secrets()["SecretList"]
    assert len(secrets) == 1
    value = boto3.client("secretsmanager").get_secret_value(SecretId=secrets[0]["ARN"])["SecretString"]
    assert value == "sk-very-secret"
    read = api.get(f"/api/agents/{agent['id']}")
    assert read.status == 200 and "sk-very-secret" not in str(read.body)
    assert [a["id"] for a in api.get("/api/agents").body["data"]] == [agent["id"]]

    # An update without a credential keeps the stored one
    updated = api.put(f"/api/agents/{agent['id']}", json_body={"name": "renamed", "endpoint": "https://a.example.com"})
    assert updated.status == 200 and updated.body["data"]["hasCredential"] is True

    assert api.delete(f"/api/agents/{agent['id']}").status == 200
    assert api.get(f"/api/agents/{agent['id']}").status == 404


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"name": "x", "endpoint": "ftp://example.com"}, "endpoint: URL scheme should be 'http' or 'https'"),
        ({"name": "x", "endpoint": "https://e.com", "protocol": "soap"}, "protocol: Input should be 'json' or"),
        ({"endpoint": "https://e.com"}, "name: Field required"),
        ({"name": "x", "endpoint": "https://e.com", "timeoutSeconds": 0}, "timeoutSeconds: Input should be greater"),
    ],
)
def test_an_invalid_agent_is_a_400_that_names_the_field(api: Any, body: dict[str, Any], expected: str) -> None:
    answer = api.post("/api/agents", json_body=body)
    assert answer.status == 400
    assert expected in answer.body["error"]


# --- execution listings --------------------------------------------------------------------------


def test_executions_of_a_workflow_are_listed_newest_first_with_a_state_filter(
    api: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from stepwise import stepfunctions

    monkeypatch.setattr(stepfunctions, "start", lambda arn, execution_id: None)
    workflow_id = create_workflow(api)
    ids = [start(api, workflow_id) for _ in range(3)]
    api.delete(f"/api/workflows/execute/{ids[1]}")

    everything = api.get(f"/api/workflows/{workflow_id}/executions?limit=2")
    assert [e["id"] for e in everything.body["data"]] == [ids[2], ids[1]]
    rest = api.get(f"/api/workflows/{workflow_id}/executions?limit=2&cursor={everything.body['nextCursor']}")
    assert [e["id"] for e in rest.body["data"]] == [ids[0]]
    canceled = api.get(f"/api/workflows/{workflow_id}/executions?state=CANCELED")
    assert [e["id"] for e in canceled.body["data"]] == [ids[1]]
    assert canceled.body["nextCursor"] is None


# --- identity and errors -------------------------------------------------------------------------


ROUTES = [
    ("POST", "/api/workflows/execute/{workflow}"),
    ("GET", "/api/workflows/execute/{execution}"),
    ("DELETE", "/api/workflows/execute/{execution}"),
    ("POST", "/api/workflows/execute/{execution}/pause"),
    ("POST", "/api/workflows/execute/{execution}/resume"),
    ("POST", "/api/workflows/execute/{execution}/rerun"),
    ("GET", "/api/workflows/{workflow}"),
    ("PUT", "/api/workflows/{workflow}"),
    ("DELETE", "/api/workflows/{workflow}"),
    ("GET", "/api/workflows/{workflow}/executions"),
    ("GET", "/api/agents/{agent}"),
    ("PUT", "/api/agents/{agent}"),
    ("DELETE", "/api/agents/{agent}"),
]
COLLECTION_ROUTES = [
    ("GET", "/api/executions"),
    ("GET", "/api/workflows"),
    ("POST", "/api/workflows"),
    ("GET", "/api/agents"),
    ("POST", "/api/agents"),
]


@pytest.fixture
def alices_things(api: Any, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    from stepwise import stepfunctions

    monkeypatch.setattr(stepfunctions, "start", lambda arn, execution_id: None)
    workflow_id = create_workflow(api)
    agent = api.post("/api/agents", json_body={"name": "a", "endpoint": "https://agent.example.com"}).body["data"]
    return {"workflow": workflow_id, "execution": start(api, workflow_id), "agent": agent["id"]}


def _body_for(path: str) -> dict[str, Any] | None:
    if "/agents" in path:
        return {"name": "a", "endpoint": "https://agent.example.com"}
    if "/execute/" in path:
        return {"variables": {}} if path.count("/") == 4 else None
    return simple_workflow()


def documented_operations(api: Any) -> list[tuple[str, str]]:
    """Every (method, path template) the OpenAPI document describes behind the token (not the viewer's pages)."""
    paths = api.get("/api/openapi.json", user=None).body["paths"]
    return [
        (method.upper(), path)
        for path, operations in paths.items()
        for method, operation in operations.items()
        if operation.get("security") != []
    ]


def test_no_token_is_a_401_in_the_envelope_on_every_documented_route(api: Any, alices_things: dict[str, str]) -> None:
    ids = {
        "workflowId": alices_things["workflow"],
        "executionId": alices_things["execution"],
        "agentId": alices_things["agent"],
        "scheduleId": UNKNOWN_SCHEDULE,
        "name": "greeting",
    }
    operations = documented_operations(api)
    assert len(operations) == 25
    for method, template in operations:
        path = template.format(**ids)
        answer = api.request(method, path, user=None, json_body=_body_for(path))
        assert (answer.status, answer.body) == (401, NO_TOKEN), f"{method} {path}"
        assert answer.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(("method", "template"), ROUTES)
def test_someone_elses_resource_is_403_on_every_route(
    api: Any, alices_things: dict[str, str], method: str, template: str
) -> None:
    path = template.format(**alices_things)
    answer = api.request(method, path, user="mallory", json_body=_body_for(path))
    assert answer.status == 403, answer.body
    assert answer.body["success"] is False and "do not have access" in answer.body["error"]
    # and nothing changed for the owner
    assert api.get(f"/api/workflows/execute/{alices_things['execution']}").body["data"]["state"] == "PENDING"
    assert api.get(f"/api/workflows/{alices_things['workflow']}").body["data"]["version"] == 1


def test_an_admin_may_read_but_not_change_someone_elses_execution(api: Any, alices_things: dict[str, str]) -> None:
    execution = alices_things["execution"]
    assert api.get(f"/api/workflows/execute/{execution}", user="root", groups=["admin"]).status == 200
    assert api.get(f"/api/workflows/{alices_things['workflow']}", user="root", groups=["admin"]).status == 200
    assert api.delete(f"/api/workflows/execute/{execution}", user="root", groups=["admin"]).status == 403


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", f"/api/workflows/execute/{UNKNOWN_EXECUTION}"),
        ("DELETE", f"/api/workflows/execute/{UNKNOWN_EXECUTION}"),
        ("POST", f"/api/workflows/execute/{UNKNOWN_EXECUTION}/pause"),
        ("POST", f"/api/workflows/execute/{UNKNOWN_EXECUTION}/rerun"),
        ("POST", f"/api/workflows/execute/{UNKNOWN_WORKFLOW}"),
        ("GET", f"/api/workflows/{UNKNOWN_WORKFLOW}"),
        ("GET", f"/api/workflows/{UNKNOWN_WORKFLOW}/executions"),
        ("GET", f"/api/agents/{UNKNOWN_AGENT}"),
        ("GET", "/api/workflows/execute/not-an-id"),
        ("GET", "/api/nothing-here"),
    ],
)
def test_unknown_ids_are_404(api: Any, method: str, path: str) -> None:
    answer = api.request(method, path)
    assert answer.status == 404
    assert answer.body["success"] is False and answer.body["error"]


def test_an_unexpected_failure_is_a_generic_500(api: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from stepwise.store import Store

    def explode(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("table on fire: internal detail")

    monkeypatch.setattr(Store, "list_workflows", explode)

    answer = api.get("/api/workflows")

    assert answer.status == 500
    assert answer.body == {"success": False, "error": "Internal server error"}


def test_the_openapi_document_needs_no_token(api: Any) -> None:
    answer = api.get("/api/openapi.json", user=None)
    assert answer.status == 200
    assert answer.body["openapi"].startswith("3.")
    assert "/api/workflows/execute/{workflowId}" in answer.body["paths"]
    assert "/api/workflows/execute/{executionId}" in answer.body["paths"]


def test_a_json_body_sent_without_its_content_type_is_read_as_json(api: Any) -> None:
    # `curl -d '{...}'` says application/x-www-form-urlencoded
    answer = api.post(
        "/api/workflows",
        raw_body=json.dumps(simple_workflow()),
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert answer.status == 201, answer.body


def test_a_definition_too_large_for_one_item_is_a_400(api: Any) -> None:
    answer = api.post("/api/workflows", json_body=simple_workflow(greeting="x" * 400_000))

    assert answer.status == 400
    assert "the limit is 300000" in answer.body["error"]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"variables": {"x": NaN}}', "NaN is not valid JSON"),
        (b'{"variables": {"x": Infinity}}', "Infinity is not valid JSON"),
        (b'{"variables": {"a": "\xff\xfe"}}', "not valid UTF-8"),
        (b'{"variables": {"d": ' + b'{"a": ' * 500 + b"1" + b"}" * 500 + b"}}", "nested too deeply"),
        (b"[" * 100_000, "nested too deeply"),
    ],
)
def test_bodies_that_are_not_strict_json_are_400(api: Any, body: bytes, expected: str) -> None:
    workflow_id = create_workflow(api)

    answer = api.post(f"/api/workflows/execute/{workflow_id}", raw_body=body)

    assert answer.status == 400
    assert expected in answer.body["error"]
    assert api.get(f"/api/workflows/{workflow_id}/executions").body["data"] == []


def test_get_and_put_round_trip_a_workflow(api: Any) -> None:
    workflow = api.post("/api/workflows", json_body=simple_workflow()).body["data"]

    answer = api.put(f"/api/workflows/{workflow['id']}", json_body={**workflow, "name": "renamed"})

    assert answer.status == 200, answer.body
    assert answer.body["data"]["version"] == 2
    assert answer.body["data"]["name"] == "renamed"


def test_a_cursor_from_another_listing_is_a_400(api: Any) -> None:
    for i in range(3):
        api.post("/api/agents", json_body={"name": f"a{i}", "endpoint": "https://agent.example.com"})
        create_workflow(api)
    cursor = api.get("/api/agents?limit=1").body["nextCursor"]

    answer = api.get(f"/api/workflows?cursor={cursor}")

    assert answer.status == 400
    assert "cursor" in answer.body["error"]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"name": "x", "endpoint": "http://169.254.169.254/latest"}, "link-local or cloud metadata"),
        ({"name": "x", "endpoint": "http://[fd00:ec2::254]/"}, "link-local or cloud metadata"),
        ({"name": "x", "endpoint": "https://e.com", "headers": {"X-A": "a\r\nX-Injected: 1"}}, "line break"),
    ],
)
def test_agents_that_could_only_fail_at_run_time_are_refused_on_write(
    api: Any, body: dict[str, Any], expected: str
) -> None:
    answer = api.post("/api/agents", json_body=body)
    assert answer.status == 400
    assert expected in answer.body["error"]


def test_a_timeout_and_retries_that_cannot_fit_the_runner_are_refused(api: Any) -> None:
    definition = {
        "name": "slow",
        "nodes": [
            {
                "id": "call",
                "type": "httpRequest",
                "config": {"url": "https://e.com"},
                "timeoutSeconds": 200,
                "retry": {"maxAttempts": 3, "backoffSeconds": 1},
            }
        ],
    }
    answer = api.post("/api/workflows", json_body=definition)
    assert answer.status == 400
    assert "nodes[0] (id 'call'): timeoutSeconds times retry.maxAttempts is 600 s" in answer.body["error"]


def test_the_openapi_document_states_the_real_codes_and_the_token(api: Any) -> None:
    document = api.get("/api/openapi.json", user=None).body

    start = document["paths"]["/api/workflows/execute/{workflowId}"]["post"]["responses"]
    assert "202" in start and "200" not in start and "422" not in start
    assert {"400", "401", "403", "404", "409", "500"} <= set(start)
    assert "201" in document["paths"]["/api/workflows"]["post"]["responses"]
    assert document["components"]["securitySchemes"]["CognitoJwt"]["scheme"] == "bearer"
    assert document["security"] == [{"CognitoJwt": []}]
    from openapi_spec_validator import validate

    validate(document)


def test_a_start_lost_to_a_network_error_stays_pending_and_says_why(api: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from botocore.exceptions import EndpointConnectionError

    from stepwise import aws as aws_clients

    def unreachable(**kwargs: Any) -> None:
        raise EndpointConnectionError(endpoint_url="https://states.us-east-1.amazonaws.com")

    monkeypatch.setattr(aws_clients.stepfunctions(), "start_execution", unreachable)

    # A StartExecution that may not have got through is not a failure of the run: the execution is kept,
    # PENDING, for the reconciler to start (tests/integration/test_reconciler.py), and its log says so
    answer = api.post(f"/api/workflows/execute/{create_workflow(api)}")

    assert answer.status == 202, answer.body
    execution = api.get(f"/api/workflows/execute/{answer.body['data']['executionId']}").body["data"]
    assert execution["state"] == "PENDING"
    assert "the execution stays PENDING until the reconciler starts it" in execution["logs"][-1]["message"]


def test_every_documented_answer_is_declared_and_an_error_is_the_envelope(api: Any) -> None:
    document = api.get("/api/openapi.json", user=None).body
    success = {"post /api/workflows/execute/{workflowId}": "202", "post /api/workflows": "201"}
    success |= {"post /api/workflows/execute/{executionId}/rerun": "202"}
    success |= {"post /api/agents": "201", "post /api/workflows/{workflowId}/schedules": "201"}

    # A start or a resume over a workflow's concurrency limit that rejects is a 429 that says when to try again.
    limited = {"post /api/workflows/execute/{workflowId}", "post /api/workflows/execute/{executionId}/resume"}

    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            if operation.get("security") == []:
                continue  # the viewer's pages (HTML, no token): tests/integration/test_viewer_pages.py
            codes = set(operation["responses"])
            expected = success.get(f"{method} {path}", "200")
            extra = {"429"} if f"{method} {path}" in limited else set()
            assert codes == {expected, "400", "401", "403", "404", "409", "500", "503", *extra}, f"{method} {path}"
            if "429" in codes:
                assert set(operation["responses"]["429"]["headers"]) == {"Retry-After"}
            assert "$ref" in operation["responses"][expected]["content"]["application/json"]["schema"]
            for code in codes - {expected}:
                schema = operation["responses"][code]["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/ErrorEnvelope"}, f"{method} {path} {code}"
    assert "HTTPValidationError" not in document["components"]["schemas"]


# --- 401: what is wrong with the token ------------------------------------------------------------


def test_each_bad_token_is_a_401_that_says_what_is_wrong(api: Any, token_issuer: Any) -> None:
    from stepwise.local.auth import LocalTokenIssuer

    stranger = LocalTokenIssuer(issuer=token_issuer.issuer, audience=token_issuer.audience)
    stranger_same_kid = stranger.token("alice")
    stranger.key_id = "another-key"
    cases = {
        "not-a-jwt": "The token is not a JWT: expected three base64url parts joined by dots",
        stranger_same_kid: "The token's signature is invalid: it was not signed by this API's user pool",
        stranger.token("alice"): (
            "The token's signature is invalid: it was not signed by a key of this API's user pool"
        ),
        token_issuer.token("alice", iat=1_700_000_000, exp=1_700_003_600): (
            "The token expired at 2023-11-14T23:13:20.000Z; get a new one"
        ),
        token_issuer.token("alice", iss="https://issuer.example.com/pool"): (
            "The token was issued by 'https://issuer.example.com/pool', not by this API's user pool"
        ),
        token_issuer.token("alice", aud="some-other-client"): (
            "The token is for client 'some-other-client', not for this API's app client"
        ),
        token_issuer.token(""): "The token names no user: it has no 'sub' claim",
    }

    for token, message in cases.items():
        answer = api.get("/api/workflows", user=None, headers={"Authorization": f"Bearer {token}"})

        assert (answer.status, answer.body) == (401, {"success": False, "error": message})
        assert answer.headers["www-authenticate"].startswith('Bearer error="invalid_token"')


@pytest.mark.parametrize(
    ("method", "path", "kwargs"),
    [
        ("POST", "/api/workflows", {"raw_body": '{"name": '}),
        ("POST", "/api/workflows", {}),
        ("GET", "/api/workflows?limit=0", {}),
        ("GET", "/api/workflows?version=1", {}),
        ("GET", f"/api/workflows/execute/{UNKNOWN_WORKFLOW}", {}),
        ("GET", "/api/nothing-here", {}),
    ],
)
def test_a_request_without_a_token_is_a_401_whatever_else_is_wrong(
    api: Any, method: str, path: str, kwargs: dict[str, Any]
) -> None:
    answer = api.request(method, path, user=None, **kwargs)

    assert (answer.status, answer.body) == (401, NO_TOKEN)


# --- requests that say what to fix ----------------------------------------------------------------


def test_an_unknown_query_parameter_is_a_400_that_names_it(api: Any) -> None:
    workflow_id = create_workflow(api)
    api.put(f"/api/workflows/{workflow_id}", json_body=simple_workflow(name="v2"))

    answer = api.get(f"/api/workflows/{workflow_id}?version=1")

    assert (answer.status, answer.body["error"]) == (
        400,
        "unknown query parameter 'version' for GET /api/workflows/{workflowId}; it takes none",
    )
    listing = api.get("/api/workflows?limit=5&sort=name&page=2")
    assert listing.status == 400
    assert listing.body["error"] == (
        "unknown query parameters 'page', 'sort' for GET /api/workflows; it takes limit, cursor"
    )
    assert api.get(f"/api/workflows/{workflow_id}/executions?state=RUNNING&limit=5").status == 200


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/api/workflows"),
        ("PUT", "/api/workflows/{workflow}"),
        ("POST", "/api/agents"),
        ("PUT", "/api/agents/{agent}"),
        ("POST", "/api/workflows/{workflow}/schedules"),
    ],
)
def test_a_missing_body_is_a_400_that_asks_for_json(
    api: Any, alices_things: dict[str, str], method: str, path: str
) -> None:
    answer = api.request(method, path.format(**alices_things))

    assert (answer.status, answer.body) == (400, {"success": False, "error": "a JSON body is required"})


def test_a_start_needs_no_body(api: Any, alices_things: dict[str, str]) -> None:
    assert api.post(f"/api/workflows/execute/{alices_things['workflow']}").status == 202


@pytest.mark.parametrize(
    ("method", "path", "message"),
    [
        (
            "GET",
            f"/api/workflows/execute/{UNKNOWN_WORKFLOW}",
            f"{UNKNOWN_WORKFLOW} is a workflow id, not an execution id",
        ),
        ("DELETE", f"/api/workflows/execute/{UNKNOWN_AGENT}", f"{UNKNOWN_AGENT} is an agent id, not an execution id"),
        (
            "POST",
            f"/api/workflows/execute/{UNKNOWN_EXECUTION}",
            f"{UNKNOWN_EXECUTION} is an execution id, not a workflow id",
        ),
        ("GET", f"/api/workflows/{UNKNOWN_EXECUTION}", f"{UNKNOWN_EXECUTION} is an execution id, not a workflow id"),
        ("GET", f"/api/agents/{UNKNOWN_WORKFLOW}", f"{UNKNOWN_WORKFLOW} is a workflow id, not an agent id"),
        (
            "GET",
            f"/api/workflows/{UNKNOWN_WORKFLOW}/schedules/{UNKNOWN_EXECUTION}",
            f"{UNKNOWN_EXECUTION} is an execution id, not a schedule id",
        ),
    ],
)
def test_an_id_of_the_wrong_kind_is_a_404_that_says_what_it_is(api: Any, method: str, path: str, message: str) -> None:
    answer = api.request(method, path)

    assert (answer.status, answer.body) == (404, {"success": False, "error": message})


def test_a_real_workflow_id_where_an_execution_id_belongs_is_still_a_404(api: Any) -> None:
    workflow_id = create_workflow(api)

    answer = api.get(f"/api/workflows/execute/{workflow_id}")

    assert (answer.status, answer.body["error"]) == (404, f"{workflow_id} is a workflow id, not an execution id")


@pytest.mark.parametrize("field", ["timeoutSeconds", "retry"])
def test_a_node_field_inside_config_gets_a_hint(api: Any, field: str) -> None:
    value = 5 if field == "timeoutSeconds" else {"maxAttempts": 2}
    node = {"id": "call", "type": "httpRequest", "config": {"url": "https://e.com", field: value}}

    answer = api.post("/api/workflows", json_body={"name": "misplaced", "nodes": [node]})

    assert answer.status == 400
    assert answer.body["error"] == f"nodes[0] (id 'call'): config.{field}: belongs on the node, not in config"


def test_a_config_field_beside_the_node_gets_a_hint(api: Any) -> None:
    node = {"id": "wait", "type": "delay", "seconds": 3}

    answer = api.post("/api/workflows", json_body={"name": "misplaced", "nodes": [node]})

    assert (answer.status, answer.body["error"]) == (400, "nodes.0: 'seconds' belongs in config, not on the node")


@pytest.mark.parametrize(
    ("node", "expected"),
    [
        (
            {"id": "a b", "type": "delay", "config": {"seconds": 1}},
            "nodes.0.id: should be 1 to 64 letters, digits, '_' or '-', not 'a b'",
        ),
        (
            {"id": "call", "type": "httpRequest", "config": {"url": "https://e.com", "outputVariable": "1st"}},
            "nodes[0] (id 'call'): config.outputVariable: should be a letter or '_' followed by letters, "
            "digits, '_' or '-', not '1st'",
        ),
        (
            {
                "id": "ask",
                "type": "agentTask",
                "config": {"agentId": UNKNOWN_AGENT, "prompt": "hi", "outputVariable": "a.b"},
            },
            "config.outputVariable: should be a letter or '_' followed by letters, digits, '_' or '-', not 'a.b'",
        ),
    ],
)
def test_a_pattern_is_explained_in_words(api: Any, node: dict[str, Any], expected: str) -> None:
    answer = api.post("/api/workflows", json_body={"name": "patterns", "nodes": [node]})

    assert answer.status == 400
    assert expected in answer.body["error"]
    assert "^" not in answer.body["error"] and "[A-Za-z" not in answer.body["error"]


def test_a_workflows_schedules_are_paged_like_every_listing(api: Any) -> None:
    workflow_id = create_workflow(api)
    made = [
        api.post(f"/api/workflows/{workflow_id}/schedules", json_body={"expression": f"rate({n} hours)"})
        for n in (2, 3, 4)
    ]
    newest_first = [answer.body["data"]["id"] for answer in reversed(made)]

    first = api.get(f"/api/workflows/{workflow_id}/schedules?limit=2").body
    rest = api.get(f"/api/workflows/{workflow_id}/schedules?limit=2&cursor={first['nextCursor']}").body

    assert [s["id"] for s in first["data"]] == newest_first[:2]
    assert ([s["id"] for s in rest["data"]], rest["nextCursor"]) == (newest_first[2:], None)
    assert api.get(f"/api/workflows/{workflow_id}/schedules").body["nextCursor"] is None
    wrong = api.get(f"/api/workflows/{workflow_id}/schedules?cursor={workflow_id}")
    assert (wrong.status, wrong.body["error"]) == (400, "cursor: not the nextCursor of a schedule listing")
