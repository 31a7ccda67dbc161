"""Every sample event under events/ (for ``sam local invoke``) is accepted by its function's handler.

The handlers run in-process on moto with the template's resources (the ``aws`` fixture). Events that
name something that must exist are checked both ways where both say something:

* the API events carry a bearer token of the local demo user and name the demo workflow, so the start
  event is run as it stands against the seeded demo (and followed to COMPLETED); the get and cancel events
  name a placeholder execution, so they are sent as they stand (a well-formed 404, not a crash) and again
  with the id of a real execution (200). Their token is signed for the local stack's user pool (with the key
  that ships inside moto; tests/integration/test_local_stack.py sends it to a running stack): here its
  claims are signed again by the tests' issuer, which the in-process API function trusts;
* the node runner events name a placeholder execution; a missing execution is a Lambda error by
  contract, so they are sent with the id of a real execution in the state each action expects;
* the scheduler event names the demo workflow and a placeholder schedule: as it stands the tick
  disables the unknown schedule (its contract), and with a real schedule's id it starts a run.

``events/env.json`` is checked against what the local stack really creates (its token settings, which
name the local stack's user pool, by tests/integration/test_local_stack.py).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest

from stepwise.local.lambda_routing import LocalLambdaContext
from stepwise.store import Store
from tests.support.builders import recorded_execution, wait_until

PROJECT_DIR = Path(__file__).resolve().parents[2]
EVENTS_DIR = PROJECT_DIR / "events"
PLACEHOLDER_EXECUTION = "exe_01JD3Z6Q4W8XK2V5N7R9T1B3C5"
PLACEHOLDER_SCHEDULE = "sch_01JD3Z6Q4W8XK2V5N7R9T1B3C6"
TESTED = {
    "api-start-execution.json",
    "api-get-execution.json",
    "api-cancel-execution.json",
    "api-create-workflow.json",
    "node-runner-start.json",
    "node-runner-step.json",
    "node-runner-pause.json",
    "scheduler-tick.json",
}


def load_event(name: str, **replace: str) -> dict[str, Any]:
    """The event file, with every occurrence of each key's text replaced by its value."""
    text = (EVENTS_DIR / name).read_text(encoding="utf-8")
    for old, new in replace.items():
        text = text.replace(old, new)
    event: dict[str, Any] = json.loads(text)
    return event


def token_claims(event: dict[str, Any]) -> dict[str, Any]:
    """The claims of an API event's bearer token (not verified: only the API function does that)."""
    token = event["headers"]["authorization"].removeprefix("Bearer ")
    claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return claims


Invoke = Callable[[str, dict[str, Any]], Any]


@pytest.fixture
def invoke(aws: Any, token_issuer: Any) -> Invoke:
    """Call a template function's handler (by logical id) with an event and a Lambda context."""

    def call(logical_id: str, event: dict[str, Any]) -> Any:
        if "authorization" in event.get("headers", {}):
            event["headers"]["authorization"] = f"Bearer {token_issuer.token(token_claims(event)['sub'])}"
        name = aws.function_names[logical_id]
        spec = aws.specs[logical_id]
        context = LocalLambdaContext(
            function_name=name,
            invoked_function_arn=f"arn:aws:lambda:us-east-1:123456789012:function:{name}",
            memory_limit_in_mb=spec.memory,
            timeout_seconds=spec.timeout,
        )
        return aws.handler_for(name)(event, context)

    return call


@pytest.fixture
def store(aws: Any) -> Store:
    return Store(aws.environment["TABLE_NAME"])


@pytest.fixture
def owner() -> str:
    """The sub of the token the API events carry (the local stack's demo user)."""
    return str(token_claims(load_event("api-start-execution.json"))["sub"])


@pytest.fixture
def demo(store: Store, owner: str) -> Iterator[str]:
    """The local stack's demo (agents on a free port, workflow owned by the events' user)."""
    from stepwise.local.demo import DemoAgentServer, seed

    with DemoAgentServer() as agents:
        yield seed(store, owner, agents.url).workflow_id


def body_of(answer: dict[str, Any]) -> Any:
    return json.loads(answer["body"]) if answer.get("body") else None


def create_workflow(invoke: Invoke) -> str:
    answer = invoke("ApiFunction", load_event("api-create-workflow.json"))
    assert answer["statusCode"] == 201, answer
    return str(body_of(answer)["data"]["id"])


def put_execution(store: Store, workflow_id: str, owner: str, state: str, cursor: str = "greet") -> str:
    """An execution record as the API writes it, without a state machine run driving it."""
    return recorded_execution(
        store,
        workflow_id=workflow_id,
        owner=owner,
        state=state,
        variables={"user": {"name": "Ada"}, "score": 7},
        cursor=cursor,
    )


def test_every_sample_event_is_tested_here() -> None:
    names = {path.name for path in EVENTS_DIR.glob("*.json")} - {"env.json"}
    assert names == TESTED


def test_env_file_points_every_function_at_the_local_stack(aws: Any) -> None:
    variables = json.loads((EVENTS_DIR / "env.json").read_text())["Parameters"]
    assert variables.pop("AWS_ENDPOINT_URL") == "http://host.docker.internal:3001"
    token_settings = {name: variables.pop(name) for name in ("JWT_ISSUER", "JWT_AUDIENCE", "JWKS_URL")}
    assert token_settings["JWKS_URL"].startswith("http://host.docker.internal:3001/")
    skipped = ("AWS_REGION", "AWS_DEFAULT_REGION", *token_settings)
    expected = {k: v for k, v in aws.environment.items() if k not in skipped}
    assert variables == expected


def test_api_create_workflow_event_creates_it(invoke: Invoke, api: Any, owner: str) -> None:
    # Given the sample event; When the API handler takes it
    answer = invoke("ApiFunction", load_event("api-create-workflow.json"))

    # Then the workflow exists, owned by the event's user
    assert answer["statusCode"] == 201, answer
    created = body_of(answer)["data"]
    assert created["owner"] == owner
    assert api.get(f"/api/workflows/{created['id']}", user=owner).status == 200


def test_api_start_execution_event_starts_the_demo_workflow(invoke: Invoke, api: Any, demo: str, owner: str) -> None:
    answer = invoke("ApiFunction", load_event("api-start-execution.json"))

    assert answer["statusCode"] == 202, answer
    started = body_of(answer)["data"]
    assert started["workflowId"] == demo

    def finished() -> Any:
        execution = api.get(f"/api/workflows/execute/{started['executionId']}", user=owner).body["data"]
        return execution if execution["state"] in ("COMPLETED", "FAILED", "CANCELED") else None

    execution = wait_until(finished)
    assert execution["state"] == "COMPLETED", execution
    assert execution["output"]["analysis"]["sentiment"] == "positive"


@pytest.mark.parametrize(
    ("name", "state", "status", "check"),
    [
        ("api-get-execution.json", "RUNNING", 200, lambda body, exe: body["data"]["id"] == exe),
        ("api-cancel-execution.json", "RUNNING", 200, lambda body, exe: body["message"] == f"Execution {exe} canceled"),
    ],
)
def test_api_execution_events(
    invoke: Invoke, store: Store, owner: str, name: str, state: str, status: int, check: Any
) -> None:
    # As it stands, the event names no execution: a well-formed 404
    missing = invoke("ApiFunction", load_event(name))
    assert missing["statusCode"] == 404
    assert body_of(missing) == {"success": False, "error": f"Execution {PLACEHOLDER_EXECUTION} not found"}

    # With a real execution's id, the handler serves it
    execution_id = put_execution(store, create_workflow(invoke), owner, state)
    answer = invoke("ApiFunction", load_event(name, **{PLACEHOLDER_EXECUTION: execution_id}))
    assert answer["statusCode"] == status, answer
    assert check(body_of(answer), execution_id)


def test_node_runner_start_event_marks_the_execution_running(invoke: Invoke, store: Store, owner: str) -> None:
    execution_id = put_execution(store, create_workflow(invoke), owner, "PENDING")

    answer = invoke("NodeRunnerFunction", load_event("node-runner-start.json", **{PLACEHOLDER_EXECUTION: execution_id}))

    assert answer == {"status": "continue", "seconds": 0, "timeoutSeconds": 0}
    assert store.execution_state(execution_id) == "RUNNING"


def test_node_runner_step_event_runs_the_next_nodes(invoke: Invoke, store: Store, api: Any, owner: str) -> None:
    execution_id = put_execution(store, create_workflow(invoke), owner, "RUNNING")

    answer = invoke("NodeRunnerFunction", load_event("node-runner-step.json", **{PLACEHOLDER_EXECUTION: execution_id}))

    # Every node of the sample workflow is instant: one step runs them all
    assert answer["status"] == "done"
    execution = api.get(f"/api/workflows/execute/{execution_id}", user=owner).body["data"]
    assert execution["state"] == "COMPLETED"
    assert execution["nodeStates"]["greet"]["state"] == "COMPLETED"
    assert execution["variables"]["greeting"] == "Hello Ada"


def test_node_runner_pause_event_parks_the_execution(invoke: Invoke, store: Store, api: Any, owner: str) -> None:
    execution_id = put_execution(store, create_workflow(invoke), owner, "RUNNING")
    api.post(f"/api/workflows/execute/{execution_id}/pause", user=owner)
    event = load_event("node-runner-pause.json", **{PLACEHOLDER_EXECUTION: execution_id})

    answer = invoke("NodeRunnerFunction", event)

    assert answer is None
    record = store.get_execution(execution_id)
    assert record is not None
    assert record.state == "PAUSED"
    assert record.taskToken == event["taskToken"]


def test_scheduler_tick_event_starts_a_run_of_its_schedule(invoke: Invoke, api: Any, demo: str, owner: str) -> None:
    # As it stands, the event names a schedule nobody created: the tick disables it instead of failing
    event = load_event("scheduler-tick.json")
    assert event["workflowId"] == demo
    assert invoke("SchedulerFunction", event)["outcome"] == "disabled"

    # For a real schedule of the demo workflow, the tick starts a run that completes
    created = api.post(f"/api/workflows/{demo}/schedules", user=owner, json_body={"expression": "rate(1 hour)"})
    assert created.status == 201, created.body
    result = invoke(
        "SchedulerFunction", load_event("scheduler-tick.json", **{PLACEHOLDER_SCHEDULE: created.body["data"]["id"]})
    )
    assert result["outcome"] == "started", result

    def finished() -> Any:
        execution = api.get(f"/api/workflows/execute/{result['executionId']}", user=owner).body["data"]
        return execution if execution["state"] in ("COMPLETED", "FAILED", "CANCELED") else None

    assert wait_until(finished)["state"] == "COMPLETED"
