"""``stepwise dev`` as a user meets it: a subprocess on free ports, driven over real HTTP with real tokens.

One stack serves the whole module (the ``stack`` fixture, :mod:`tests.support.local_stack`); the last test
stops it with Ctrl-C. Tokens come from the stack's ``POST /local/token`` (moto's Cognito); the API function
checks them against the keys moto's server serves for the pool. The expired token is signed with the key
moto signs with (it ships inside moto), so only its ``exp`` is wrong: that tests the expiry check itself.
The forged token carries the right claims and ``kid`` but is signed with a key of our own.
"""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import time
from typing import Any

import jwt
import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.support.local_stack import (
    PROJECT_DIR,
    RUN_DEADLINE_SECONDS,
    STEPWISE,
    Stack,
    cli_environment,
    free_port_pair,
    listening,
    moto_signing_key,
    resigned,
)

pytestmark = pytest.mark.slow

DEMO_WORKFLOW = "wf_0000000000000000000000DEM0"
DEMO_AGENTS = ("ag_0000000000000000000000DEM1", "ag_0000000000000000000000DEM2")


@pytest.fixture(scope="module")
def demo_token(stack: Stack) -> str:
    return stack.token("demo")


def workflow(stack: Stack, token: str, definition: dict[str, Any]) -> str:
    answer = stack.call("POST", "/api/workflows", token, json=definition)
    assert answer.status_code == 201, answer.text
    return str(answer.json()["data"]["id"])


def slow_workflow(stack: Stack, token: str) -> str:
    """Waits 30 s in a Wait state: long enough to cancel it."""
    return workflow(
        stack,
        token,
        {
            "name": "slow",
            "nodes": [
                {"id": "wait", "type": "delay", "config": {"seconds": 30}},
                {"id": "after", "type": "setVariables", "config": {"values": {"done": True}}},
            ],
        },
    )


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# --------------------------------------------------------------------------------------- the basics


def test_banner_says_where_everything_is(stack: Stack) -> None:
    out = stack.stdout.read_text()
    assert f"API         {stack.url}" in out
    assert f"--endpoint-url http://127.0.0.1:{stack.aws_port}" in out
    assert "token --user demo" in out
    assert f"{stack.url}/api/workflows/execute/{DEMO_WORKFLOW}" in out
    assert f"agents {DEMO_AGENTS[0]} (json), {DEMO_AGENTS[1]} (openai-chat)" in out
    assert f"open {DEMO_WORKFLOW}" in out  # the viewer


def test_the_demo_agents_the_banner_names_are_the_demo_users(stack: Stack, demo_token: str) -> None:
    for agent_id in DEMO_AGENTS:
        assert stack.call("GET", f"/api/agents/{agent_id}", demo_token).status_code == 200


def test_openapi_document_needs_no_token(stack: Stack) -> None:
    answer = stack.call("GET", "/api/openapi.json")

    assert answer.status_code == 200
    assert answer.json()["openapi"].startswith("3.")


def test_unknown_route_is_api_gateways_not_found(stack: Stack) -> None:
    answer = stack.call("GET", "/nothing-here")

    assert (answer.status_code, answer.json()) == (404, {"message": "Not Found"})


def test_aws_endpoint_holds_what_events_env_json_names(stack: Stack) -> None:
    import boto3

    names = json.loads((PROJECT_DIR / "events" / "env.json").read_text())["Parameters"]
    session = boto3.session.Session(aws_access_key_id="any", aws_secret_access_key="any", region_name="us-east-1")
    endpoint = f"http://127.0.0.1:{stack.aws_port}"

    tables = session.client("dynamodb", endpoint_url=endpoint).list_tables()["TableNames"]
    machines = session.client("stepfunctions", endpoint_url=endpoint).list_state_machines()["stateMachines"]

    buckets = session.client("s3", endpoint_url=endpoint).list_buckets()["Buckets"]

    assert {names["TABLE_NAME"], names["IDEMPOTENCY_TABLE_NAME"]} <= set(tables)
    assert names["STATE_MACHINE_ARN"] in {machine["stateMachineArn"] for machine in machines}
    assert names["VALUES_BUCKET_NAME"] in {bucket["Name"] for bucket in buckets}


# ---------------------------------------------------------------------------- the seed's endpoints


def test_demo_workflow_runs_to_completed_through_the_seed_endpoints(stack: Stack, demo_token: str) -> None:
    # Given the seeded demo; When its owner starts it
    started = stack.call("POST", f"/api/workflows/execute/{DEMO_WORKFLOW}", demo_token)

    # Then the seed contract's answer, and the execution runs to COMPLETED
    assert started.status_code == 202, started.text
    body = started.json()
    assert body["success"] is True
    assert body["message"] == "Workflow execution initiated successfully"
    execution_id = body["data"]["executionId"]
    assert body["data"]["workflowId"] == DEMO_WORKFLOW
    execution = stack.wait_for_end(execution_id, demo_token)
    assert execution["state"] == "COMPLETED", execution
    assert execution["output"]["analysis"]["sentiment"] == "positive"
    assert execution["output"]["reply"].startswith("Demo reply")
    assert execution["nodeStates"]["thank"]["state"] == "COMPLETED"
    assert execution["nodeStates"]["apologize"]["state"] == "SKIPPED"


def test_variables_take_the_other_branch(stack: Stack, demo_token: str) -> None:
    started = stack.call(
        "POST",
        f"/api/workflows/execute/{DEMO_WORKFLOW}",
        demo_token,
        json={"variables": {"review": "slow, broken and useless"}},
    )
    execution = stack.wait_for_end(started.json()["data"]["executionId"], demo_token)

    assert execution["output"]["analysis"]["sentiment"] == "negative"
    assert execution["nodeStates"]["apologize"]["state"] == "COMPLETED"


def test_cancel_stops_a_running_execution(stack: Stack) -> None:
    token = stack.token("canceler")
    started = stack.call("POST", f"/api/workflows/execute/{slow_workflow(stack, token)}", token)
    execution_id = started.json()["data"]["executionId"]

    canceled = stack.call("DELETE", f"/api/workflows/execute/{execution_id}", token)

    assert canceled.status_code == 200, canceled.text
    assert canceled.json() == {"success": True, "message": f"Execution {execution_id} canceled"}
    execution = stack.call("GET", f"/api/workflows/execute/{execution_id}", token).json()["data"]
    assert execution["state"] == "CANCELED"


def test_a_definition_a_run_would_fail_on_is_refused_when_written(stack: Stack) -> None:
    token = stack.token("hasty")
    nodes = [
        {"id": "set", "type": "setVariables", "config": {"values": {"topic": "tea"}}},
        {
            "id": "check",
            "type": "condition",
            "config": {"left": "${topic}", "op": "exists", "then": "ask", "else": "ask"},
        },
        {"id": "ask", "type": "agentTask", "config": {"agentId": "ag_" + "0" * 26, "prompt": "About ${topic"}},
    ]

    typo = stack.call("POST", "/api/workflows", token, json={"name": "typo", "nodes": nodes})
    nodes[1]["next"] = "ask"
    nodes[2]["config"]["prompt"] = "About ${topic}"
    ignored_next = stack.call("POST", "/api/workflows", token, json={"name": "next", "nodes": nodes})

    assert (typo.status_code, typo.json()) == (
        400,
        {"success": False, "error": "nodes[2] (id 'ask'): config.prompt: unclosed placeholder '${topic' at position 6"},
    )
    assert ignored_next.status_code == 400
    assert ignored_next.json()["error"].startswith(
        "nodes[1] (id 'check'): next: a condition node continues at config.then or config.else"
    )


# ---------------------------------------------------------------------------------------- the door


def test_a_token_re_signed_with_moto_key_unchanged_is_accepted(stack: Stack, demo_token: str) -> None:
    # The control for the cases below: the key is right, so only the changed claim can refuse them.
    token = resigned(demo_token, moto_signing_key())

    assert stack.call("GET", "/api/workflows", token).status_code == 200


EXPIRED_AT = 1_700_003_600  # fixed, so every test worker collects the same test ids


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing", "No token: send the header 'Authorization: Bearer <token>'"),
        ("malformed", "The token is not a JWT: expected three base64url parts joined by dots"),
        ("expired", "The token expired at 2023-11-14T23:13:20.000Z; get a new one"),
        ("forged", "The token's signature is invalid: it was not signed by this API's user pool"),
        ("other audience", "The token is for client 'some-other-client', not for this API's app client"),
        ("other issuer", "The token was issued by 'https://issuer.example.com/pool', not by this API's user pool"),
    ],
)
def test_a_request_without_a_valid_token_is_a_401_that_says_why(
    stack: Stack, demo_token: str, case: str, message: str
) -> None:
    tokens = {
        "missing": None,
        "malformed": "not-a-jwt",
        "expired": resigned(
            demo_token, moto_signing_key(), iat=EXPIRED_AT - 3600, auth_time=EXPIRED_AT - 3600, exp=EXPIRED_AT
        ),
        "forged": resigned(demo_token, rsa.generate_private_key(public_exponent=65537, key_size=2048)),
        "other audience": resigned(demo_token, moto_signing_key(), aud="some-other-client"),
        "other issuer": resigned(demo_token, moto_signing_key(), iss="https://issuer.example.com/pool"),
    }

    answer = stack.call("GET", f"/api/workflows/execute/{'exe_' + '0' * 26}", tokens[case])

    assert (answer.status_code, answer.json()) == (401, {"success": False, "error": message})
    challenge = answer.headers["www-authenticate"]
    assert challenge == "Bearer" if case == "missing" else challenge.startswith('Bearer error="invalid_token"')


def test_another_users_execution_is_forbidden_but_an_admin_may_read_it(stack: Stack) -> None:
    alice, bob, auditor = stack.token("alice"), stack.token("bob"), stack.token("auditor", admin=True)
    started = stack.call("POST", f"/api/workflows/execute/{slow_workflow(stack, alice)}", alice)
    execution_id = started.json()["data"]["executionId"]
    try:
        as_bob = stack.call("GET", f"/api/workflows/execute/{execution_id}", bob)
        assert as_bob.status_code == 403
        assert as_bob.json()["success"] is False
        assert stack.call("DELETE", f"/api/workflows/execute/{execution_id}", bob).status_code == 403
        assert stack.call("GET", f"/api/workflows/execute/{execution_id}", auditor).status_code == 200
    finally:
        stack.call("DELETE", f"/api/workflows/execute/{execution_id}", alice)


REBOUND_REFUSAL = {"message": "Forbidden: the local stack answers only to localhost"}


@pytest.mark.parametrize("host", ["evil.example:{port}", "evil.example", "127.0.0.1:{other}", "127.0.0.1"])
def test_a_token_is_not_given_to_a_request_for_another_host(stack: Stack, host: str) -> None:
    # DNS rebinding: a web page points a name of its own at 127.0.0.1, and the browser sends that name.
    headers = {"host": host.format(port=stack.port, other=stack.port + 7)}

    answer = requests.post(f"{stack.url}/local/token", json={"user": "rebound"}, headers=headers, timeout=10)

    assert (answer.status_code, answer.json()) == (403, REBOUND_REFUSAL)
    assert "token" not in answer.text
    texted = requests.post(
        f"{stack.url}/local/token", data='{"user":"rebound"}', headers={**headers, "accept": "text/plain"}, timeout=10
    )
    assert (texted.status_code, texted.json()) == (403, REBOUND_REFUSAL)


def test_an_api_request_for_another_host_is_refused_before_the_handler(stack: Stack) -> None:
    token = stack.token("rebinding")
    evil = {"authorization": f"Bearer {token}", "host": f"evil.example:{stack.port}"}

    created = requests.post(
        f"{stack.url}/api/workflows", json={"name": "rebound", "nodes": []}, headers=evil, timeout=10
    )
    opened = requests.get(f"{stack.url}/api/openapi.json", headers=evil, timeout=10)

    assert (created.status_code, created.json()) == (403, REBOUND_REFUSAL)
    assert (opened.status_code, opened.json()) == (403, REBOUND_REFUSAL)
    assert stack.call("GET", "/api/workflows", token).json()["data"] == []


@pytest.mark.parametrize("name", ["localhost", "LOCALHOST", "[::1]", "127.0.0.1"])
def test_every_loopback_name_with_the_port_is_served(stack: Stack, name: str) -> None:
    answer = requests.post(
        f"{stack.url}/local/token", json={"user": "looped"}, headers={"host": f"{name}:{stack.port}"}, timeout=10
    )

    assert answer.status_code == 200, answer.text
    assert stack.call("GET", "/api/workflows", answer.json()["token"]).status_code == 200


def test_the_readmes_curl_for_a_token_works(stack: Stack) -> None:
    # curl -s -X POST $API/local/token -H 'accept: text/plain' -d '{"user":"demo"}' (a form content type)
    answer = requests.post(
        f"{stack.url}/local/token",
        data='{"user":"demo"}',
        headers={"accept": "text/plain", "content-type": "application/x-www-form-urlencoded"},
        timeout=10,
    )

    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "text/plain"
    assert stack.call("GET", "/api/workflows", answer.text).status_code == 200


def test_a_token_is_not_given_to_a_page_of_another_origin(stack: Stack) -> None:
    def ask(origin: str) -> requests.Response:
        headers = {"origin": origin, "accept": "text/plain"}
        return requests.post(f"{stack.url}/local/token", data='{"user":"demo"}', headers=headers, timeout=10)

    refused = ask("https://evil.example")

    assert refused.status_code == 403
    assert refused.json() == {"success": False, "error": "tokens are not given to other web pages"}
    assert ask("null").status_code == 403
    assert ask(f"http://localhost:{stack.port}").status_code == 200


@pytest.mark.parametrize("name", sorted(path.name for path in (PROJECT_DIR / "events").glob("api-*.json")))
def test_sample_events_carry_a_token_of_the_demo_user_that_the_stack_accepts(
    stack: Stack, demo_token: str, name: str
) -> None:
    # So `sam local invoke -e events/api-start-execution.json --env-vars events/env.json` acts as the demo's owner.
    event = json.loads((PROJECT_DIR / "events" / name).read_text())
    token = event["headers"]["authorization"].removeprefix("Bearer ")
    claims = jwt.decode(token, options={"verify_signature": False})
    real = jwt.decode(demo_token, options={"verify_signature": False})

    assert {k: claims[k] for k in ("sub", "iss", "aud")} == {k: real[k] for k in ("sub", "iss", "aud")}
    assert stack.call("GET", "/api/workflows", token).status_code == 200


def test_env_json_names_the_local_stacks_user_pool(stack: Stack, demo_token: str) -> None:
    settings = json.loads((PROJECT_DIR / "events" / "env.json").read_text())["Parameters"]
    real = jwt.decode(demo_token, options={"verify_signature": False})
    pool = real["iss"].rsplit("/", 1)[1]

    assert (settings["JWT_ISSUER"], settings["JWT_AUDIENCE"]) == (real["iss"], real["aud"])
    assert settings["JWKS_URL"] == f"http://host.docker.internal:3001/{pool}/.well-known/jwks.json"
    keys = requests.get(f"http://127.0.0.1:{stack.aws_port}/{pool}/.well-known/jwks.json", timeout=10)
    assert [key["kid"] for key in keys.json()["keys"]] == ["dummy"]


# ------------------------------------------------------------------------------------------ the CLI


def test_cli_token_prints_just_a_working_token(stack: Stack) -> None:
    result = stack.cli("token", "--user", "carol")

    assert result.returncode == 0, result.stderr
    token = result.stdout.strip()
    assert "\n" not in token
    assert stack.call("GET", "/api/workflows", token).status_code == 200


def test_cli_run_watch_exits_0_with_the_output_when_completed(stack: Stack, demo_token: str) -> None:
    result = stack.cli("run", DEMO_WORKFLOW, "--var", "customer=Grace", "--watch", token=demo_token)

    assert result.returncode == 0, result.stderr
    output = json.loads(result.stdout)
    assert output["analysis"]["sentiment"] == "positive"
    assert "Grace" in output["outcome"]
    assert "node classify [agentTask] COMPLETED" in result.stderr


def test_cli_run_watch_exits_1_with_the_error_when_failed(stack: Stack) -> None:
    token = stack.token("failing")
    url = f"http://127.0.0.1:{closed_port()}/nothing"
    broken = workflow(
        stack,
        token,
        {
            "name": "calls a closed port",
            "nodes": [{"id": "call", "type": "httpRequest", "config": {"url": url}, "retry": {"maxAttempts": 1}}],
        },
    )

    result = stack.cli("run", broken, "--watch", token=token)

    assert result.returncode == 1, result.stdout + result.stderr
    assert "failed" in result.stderr
    assert result.stdout == ""


def test_cli_run_watch_exits_3_when_canceled(stack: Stack) -> None:
    token = stack.token("watcher")
    slow = slow_workflow(stack, token)
    environment = cli_environment(STEPWISE_URL=stack.url, STEPWISE_TOKEN=token)
    watching = subprocess.Popen(
        [str(STEPWISE), "run", slow, "--watch"],
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + RUN_DEADLINE_SECONDS
        running: list[dict[str, Any]] = []
        while not running and time.monotonic() < deadline:
            running = stack.call("GET", f"/api/workflows/{slow}/executions", token).json()["data"]
            time.sleep(0.1)
        assert running, "the CLI never started the execution"
        assert stack.call("DELETE", f"/api/workflows/execute/{running[0]['id']}", token).status_code == 200
        _, stderr = watching.communicate(timeout=RUN_DEADLINE_SECONDS)
    finally:
        if watching.poll() is None:
            watching.kill()
    assert watching.returncode == 3, stderr
    assert "canceled" in stderr


def test_cli_exits_4_with_the_apis_words_when_refused(stack: Stack, demo_token: str) -> None:
    result = stack.cli("run", "wf_" + "0" * 26, token=demo_token)

    assert result.returncode == 4
    assert f"Workflow wf_{'0' * 26} not found (HTTP 404)" in result.stderr


def test_cli_exits_4_when_the_api_cannot_be_reached(stack: Stack) -> None:
    result = stack.cli("workflow", "list", "--url", f"http://127.0.0.1:{closed_port()}", token="x")

    assert result.returncode == 4
    assert "cannot reach http://127.0.0.1:" in result.stderr
    assert "is `make dev` running?" in result.stderr
    assert "--url" in result.stderr
    assert "STEPWISE_URL" in result.stderr


def test_cli_execution_watch_follows_a_run_it_did_not_start(stack: Stack) -> None:
    # Given a run started over plain HTTP (as curl or a schedule would), with a 1 s delay in it
    token = stack.token("onlooker")
    waits = workflow(
        stack,
        token,
        {
            "name": "waits a second",
            "nodes": [
                {"id": "pause", "type": "delay", "config": {"seconds": 1}},
                {"id": "after", "type": "setVariables", "config": {"values": {"done": True}}},
            ],
        },
    )
    execution_id = stack.call("POST", f"/api/workflows/execute/{waits}", token).json()["data"]["executionId"]

    # When someone watches it by its id
    result = stack.cli("execution", "watch", execution_id, token=token)

    # Then the run's view to its end: the output on stdout, each node with its real duration, exit 0
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"done": True}
    assert re.search(r"node pause \[delay\] COMPLETED \(1\.\d s\): Node completed in 1\d{3} ms", result.stderr)
    assert f"execution {execution_id} COMPLETED" in result.stderr


def test_cli_quiet_create_prints_only_the_id(stack: Stack) -> None:
    token = stack.token("scripter")
    definition = {"name": "q", "nodes": [{"id": "a", "type": "setVariables", "config": {"values": {"x": 1}}}]}
    path = stack.stderr.parent / "quiet.json"
    path.write_text(json.dumps(definition))

    result = stack.cli("workflow", "create", "-q", str(path), token=token)

    assert result.returncode == 0, result.stderr
    assert re.fullmatch(r"wf_[0-9A-Z]{26}\n", result.stdout)
    assert stack.call("GET", f"/api/workflows/{result.stdout.strip()}", token).status_code == 200


def test_cli_var_keeps_what_was_typed(stack: Stack) -> None:
    token = stack.token("typist")
    echo = workflow(
        stack,
        token,
        {"name": "echo", "nodes": [{"id": "a", "type": "setVariables", "config": {"values": {"seen": True}}}]},
    )

    started = stack.cli(
        "run", echo, "--var", "id=1e3", "--var", "n=5", "--var", "v=1.0", "--var", "zip=007", token=token
    )

    assert started.returncode == 0, started.stderr
    variables = stack.wait_for_end(started.stdout.strip(), token)["variables"]
    assert variables == {"id": "1e3", "n": 5, "v": "1.0", "zip": "007", "seen": True}


# -------------------------------------------------------------------------------------- the examples
# The stack runs on a port of its own (not make dev's default), so these show the examples need none.


def example(name: str) -> str:
    return str(PROJECT_DIR / "examples" / name)


def test_the_fetch_and_branch_example_takes_either_branch(stack: Stack) -> None:
    token = stack.token("brancher")
    created = stack.cli(
        "workflow",
        "create",
        "-q",
        example("fetch-and-branch.yaml"),
        "--set",
        f"variables.base={stack.url}",
        token=token,
    )
    assert created.returncode == 0, created.stderr
    workflow_id = created.stdout.strip()

    found = stack.cli("run", workflow_id, "--watch", token=token)
    missing = stack.cli("run", workflow_id, "--var", f"base={stack.url}/nothing", "--watch", token=token)

    assert found.returncode == 0, found.stderr
    assert json.loads(found.stdout) == {"result": "read stepwise API", "status": 200}
    assert missing.returncode == 0, missing.stderr
    assert json.loads(missing.stdout) == {"result": "gave up: HTTP 404", "status": 404}


def test_the_agent_and_approval_examples_run(stack: Stack, demo_token: str) -> None:
    # The agent example, given the demo agents' URL the banner prints, answers a node
    agents_url = re.search(r"\(openai-chat\) at (http://127\.0\.0\.1:\d+)", stack.stdout.read_text())
    assert agents_url, stack.output()
    agent = stack.cli(
        "agent", "create", "-q", example("agent.yaml"), "--set", f"endpoint={agents_url[1]}/json", token=demo_token
    )
    assert agent.returncode == 0, agent.stderr
    asks = workflow(
        stack,
        demo_token,
        {
            "name": "asks",
            "nodes": [
                {"id": "ask", "type": "agentTask", "config": {"agentId": agent.stdout.strip(), "prompt": "great"}}
            ],
        },
    )
    asked = stack.cli("run", asks, "--watch", token=demo_token)
    assert asked.returncode == 0, asked.stderr
    assert json.loads(asked.stdout)["ask"]["sentiment"] == "positive"

    # The approval example waits for a resume, then publishes
    approval = stack.cli("workflow", "create", "-q", example("approval.json"), token=demo_token)
    assert approval.returncode == 0, approval.stderr
    execution_id = stack.cli("run", approval.stdout.strip(), token=demo_token).stdout.strip()
    deadline = time.monotonic() + RUN_DEADLINE_SECONDS
    while stack.call("GET", f"/api/workflows/execute/{execution_id}", demo_token).json()["data"]["state"] != "PAUSED":
        assert time.monotonic() < deadline, "the approval example never paused"
        time.sleep(0.1)
    assert stack.cli("execution", "resume", execution_id, token=demo_token).returncode == 0
    assert stack.wait_for_end(execution_id, demo_token)["output"]["published"].startswith("Demo reply")


def test_cli_without_a_token_is_a_usage_error(stack: Stack) -> None:
    result = stack.cli("workflow", "list")

    assert result.returncode == 2
    assert "no token" in result.stderr


# ------------------------------------------------------------ finding runs, agents in use, pause and resume


def wait_for_state(stack: Stack, execution_id: str, token: str, state: str) -> dict[str, Any]:
    deadline = time.monotonic() + RUN_DEADLINE_SECONDS
    while (execution := stack.call("GET", f"/api/workflows/execute/{execution_id}", token).json()["data"])[
        "state"
    ] != state:
        assert time.monotonic() < deadline, f"never {state}: {execution}"
        time.sleep(0.1)
    return dict(execution)


def test_any_run_is_found_across_workflows_by_filter_and_start_time(stack: Stack) -> None:
    token, admin = stack.token("finder"), stack.token("finder-auditor", admin=True)
    quick = {"name": "quick", "nodes": [{"id": "a", "type": "setVariables", "config": {"values": {"x": 1}}}]}
    first, second, slow = workflow(stack, token, quick), workflow(stack, token, quick), slow_workflow(stack, token)
    done = [
        stack.call("POST", f"/api/workflows/execute/{wf}", token).json()["data"]["executionId"]
        for wf in (first, second)
    ]
    waiting = stack.call("POST", f"/api/workflows/execute/{slow}", token).json()["data"]["executionId"]
    for execution_id in done:
        stack.wait_for_end(execution_id, token)

    def listed(query: str, as_token: str = token) -> list[str]:
        answer = stack.call("GET", f"/api/executions?{query}", as_token)
        assert answer.status_code == 200, answer.text
        return [row["id"] for row in answer.json()["data"]]

    try:
        assert listed("") == [waiting, done[1], done[0]]
        assert listed(f"workflowId={first}") == [done[0]]
        assert listed("state=COMPLETED&from=2020-01-01T00:00:00Z") == [done[1], done[0]]
        assert listed("from=2999-01-01") == [] and listed("to=2020-01-01") == []
        finder = jwt.decode(token, options={"verify_signature": False})["sub"]
        assert listed(f"owner={finder}", admin) == [waiting, done[1], done[0]]
        page = stack.call("GET", "/api/executions?limit=1", token).json()
        other_filter = stack.call("GET", f"/api/executions?state=RUNNING&cursor={page['nextCursor']}", token)
        assert (other_filter.status_code, other_filter.json()["success"]) == (400, False)
        assert "not valid for this listing" in other_filter.json()["error"]
        bad_time = stack.call("GET", "/api/executions?from=yesterday", token)
        assert bad_time.status_code == 400
        assert (
            "from: 'yesterday' is not an ISO-8601 time; write it like 2024-05-01T09:30:00Z" in bad_time.json()["error"]
        )
        assert stack.call("GET", "/api/executions?owner=demo", token).status_code == 403

        cli = stack.cli("execution", "list", "--since", "1h", "--state", "COMPLETED", "--json", token=token)
        assert cli.returncode == 0, cli.stderr
        assert [row["id"] for row in json.loads(cli.stdout)] == [done[1], done[0]]
        table = stack.cli("execution", "list", "--workflow", slow, token=token).stdout.splitlines()
        assert table[0].split()[:3] == ["id", "workflowId", "state"]
        assert table[1].split()[:3] == [waiting, slow, "RUNNING"]
    finally:
        stack.call("DELETE", f"/api/workflows/execute/{waiting}", token)


def test_an_agent_a_workflow_calls_is_deleted_only_with_force(stack: Stack) -> None:
    token = stack.token("agent-keeper")
    agent = stack.call("POST", "/api/agents", token, json={"name": "kept", "endpoint": "https://agent.example.com"})
    agent_id = agent.json()["data"]["id"]
    calls = {
        "name": "calls it",
        "nodes": [{"id": "ask", "type": "agentTask", "config": {"agentId": agent_id, "prompt": "x"}}],
    }
    workflow_id = workflow(stack, token, calls)

    refused = stack.call("DELETE", f"/api/agents/{agent_id}", token)
    assert refused.status_code == 409
    assert refused.json() == {
        "success": False,
        "error": f"Agent {agent_id} is used by workflow {workflow_id} (calls it): change them first, or delete it "
        "anyway with force=true (their runs will fail at that node)",
    }
    cli = stack.cli("agent", "delete", agent_id, token=token)
    assert cli.returncode == 4 and "force=true" in cli.stderr
    forced = stack.cli("agent", "delete", agent_id, "--force", token=token)
    assert forced.returncode == 0, forced.stderr
    assert stack.call("GET", f"/api/agents/{agent_id}", token).status_code == 404


def test_a_pause_is_shown_refused_twice_and_withdrawn_by_resume(stack: Stack) -> None:
    token = stack.token("pauser")
    execution_id = stack.call("POST", f"/api/workflows/execute/{slow_workflow(stack, token)}", token).json()["data"][
        "executionId"
    ]
    control = f"/api/workflows/execute/{execution_id}"
    try:
        assert wait_for_state(stack, execution_id, token, "RUNNING")["pauseRequested"] is False
        # Once the delay waits (a pause asked before the first node would be taken at once)
        deadline = time.monotonic() + RUN_DEADLINE_SECONDS
        while stack.call("GET", control, token).json()["data"]["nodeStates"]["wait"]["state"] != "RUNNING":
            assert time.monotonic() < deadline, "the delay never started"
            time.sleep(0.1)
        assert stack.call("POST", f"{control}/pause", token).status_code == 200
        assert stack.call("GET", control, token).json()["data"]["pauseRequested"] is True

        again = stack.call("POST", f"{control}/pause", token)
        assert (again.status_code, again.json()["error"]) == (
            409,
            f"Execution {execution_id}: a pause is already requested; it pauses before its next node",
        )
        withdrawn = stack.call("POST", f"{control}/resume", token)
        assert (withdrawn.status_code, withdrawn.json()["message"]) == (
            200,
            f"Execution {execution_id}: pause withdrawn; it goes on running",
        )
        assert stack.call("GET", control, token).json()["data"]["pauseRequested"] is False
        bare = stack.call("POST", f"{control}/resume", token)
        assert (bare.status_code, bare.json()["error"]) == (
            409,
            f"Execution {execution_id} is not paused (RUNNING) and no pause is requested",
        )
    finally:
        stack.call("DELETE", control, token)


# ------------------------------------------------------------------------------------------ the log

REQUEST_LINE = re.compile(r"^\d\d:\d\d:\d\d (GET|POST|PUT|PATCH|DELETE|HEAD|OPTIONS) /\S* \d{3} \d+ ms$")
STATE_LINE = re.compile(
    r"^\d\d:\d\d:\d\d execution (exe_\w+) (PENDING|RUNNING|PAUSED|COMPLETED|FAILED|CANCELED)(: .+)?$"
)


def test_the_log_is_one_line_per_request_and_per_execution_state_change(stack: Stack, demo_token: str) -> None:
    # Given the executions the tests above ran (completed, failed on a closed port, canceled) and a new one
    started = stack.call("POST", f"/api/workflows/execute/{DEMO_WORKFLOW}", demo_token)
    execution_id = started.json()["data"]["executionId"]
    stack.wait_for_end(execution_id, demo_token)

    # Then the log after the banner holds request lines and state lines only: no moto dump, no metrics
    # JSON, nothing on stderr
    lines = stack.stdout.read_text().splitlines()
    after_banner = lines[lines.index(next(line for line in lines if line.startswith("  run it"))) + 2 :]
    strays = [line for line in after_banner if not (REQUEST_LINE.match(line) or STATE_LINE.match(line))]
    assert strays == []
    assert stack.stderr.read_text() == ""
    states = [m.group(2) for line in after_banner if (m := STATE_LINE.match(line)) and m.group(1) == execution_id]
    assert states == ["PENDING", "RUNNING", "COMPLETED"]
    assert any(STATE_LINE.match(line) and " FAILED: " in line for line in after_banner)  # with its error
    assert f"POST /api/workflows/execute/{DEMO_WORKFLOW} 202 " in "\n".join(after_banner)


# --------------------------------------------------------------------------------------- lifecycle


def test_cli_schedules_a_workflow_and_the_local_clock_fires_it(stack: Stack) -> None:
    # Given a user with a workflow
    token = stack.token("planner")
    definition = {
        "name": "nightly",
        "nodes": [{"id": "a", "type": "setVariables", "config": {"values": {"x": "${x}"}}}],
    }
    workflow_id = workflow(stack, token, definition)

    # When they schedule it every minute (a rate schedule first runs when it is created, as in AWS)
    created = stack.cli("schedule", "create", workflow_id, "rate(1 minute)", "--var", "x=7", token=token)
    assert created.returncode == 0, created.stderr
    schedule_id = json.loads(created.stdout)["id"]

    # Then the local clock starts an execution on the schedule's behalf, with the schedule's variables
    deadline = time.monotonic() + 20
    runs: list[dict[str, Any]] = []
    while time.monotonic() < deadline and not runs:
        runs = stack.call("GET", f"/api/workflows/{workflow_id}/executions", token).json()["data"]
        time.sleep(0.2)
    assert runs, "the schedule never fired"
    assert runs[0]["startedBy"] == f"schedule:{schedule_id}"
    assert stack.wait_for_end(runs[0]["id"], token)["variables"] == {"x": 7}

    listed = stack.cli("schedule", "list", workflow_id, "--json", token=token)
    assert [s["id"] for s in json.loads(listed.stdout)] == [schedule_id]
    assert stack.cli("schedule", "delete", workflow_id, schedule_id, token=token).returncode == 0
    assert json.loads(stack.cli("schedule", "list", workflow_id, "--json", token=token).stdout) == []
    bad = stack.cli("schedule", "create", workflow_id, "rate(0 minutes)", token=token)
    assert bad.returncode == 4
    assert "rate" in bad.stderr


@pytest.mark.parametrize(("flag", "hint"), [("--port", "PORT"), ("--aws-port", "--aws-port")])
def test_a_taken_port_is_one_line_and_exit_1(stack: Stack, flag: str, hint: str) -> None:
    taken = stack.port if flag == "--port" else stack.aws_port
    args = ["dev", "--port", str(stack.port)] if flag == "--port" else ["dev", "--port", str(free_port_pair())]
    if flag == "--aws-port":
        args += ["--aws-port", str(taken)]

    result = stack.cli(*args, timeout=20)

    assert result.returncode == 1
    assert result.stderr == f"stepwise dev: port {taken} is already in use (set {hint}=... to use another)\n"


def test_ctrl_c_stops_everything_cleanly(stack: Stack, demo_token: str) -> None:
    # Last in the module: it stops the shared stack. An execution is waiting when the signal lands.
    token = stack.token("interrupted")
    stack.call("POST", f"/api/workflows/execute/{slow_workflow(stack, token)}", token)
    before = len(stack.output())

    stack.process.send_signal(signal.SIGINT)

    assert stack.process.wait(timeout=10) == 0
    assert "stepwise dev: stopped" in stack.stdout.read_text()
    assert "Traceback" not in stack.output()[before:]
    assert not listening(stack.port)
    assert not listening(stack.aws_port)
