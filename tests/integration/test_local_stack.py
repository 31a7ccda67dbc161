"""``stepwise dev`` as a user meets it: a subprocess on free ports, driven over real HTTP with real tokens.

One stack serves the whole module (it takes a few seconds to start); the last test stops it with Ctrl-C.
Tokens come from the stack's ``POST /local/token`` (moto's Cognito). The expired token is signed with the
key moto signs with (it ships inside moto), so only its ``exp`` is wrong: that tests the expiry check
itself. The forged token carries the right claims and ``kid`` but is signed with a key of our own.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import jwt
import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import rsa

pytestmark = pytest.mark.slow

PROJECT_DIR = Path(__file__).resolve().parents[2]
STEPWISE = Path(sys.executable).parent / "stepwise"
DEMO_WORKFLOW = "wf_0000000000000000000000DEM0"
DEMO_AGENTS = ("ag_0000000000000000000000DEM1", "ag_0000000000000000000000DEM2")
START_DEADLINE_SECONDS = 40.0
RUN_DEADLINE_SECONDS = 20.0
TERMINAL = ("COMPLETED", "FAILED", "CANCELED")


def free_port_pair() -> int:
    """A port p such that p and p + 1 are both free on 127.0.0.1."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        if port < 65535 and port_is_free(port) and port_is_free(port + 1):
            return port
    raise RuntimeError("no two adjacent free ports")


def port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def cli_environment(**extra: str) -> dict[str, str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "STEPWISE_"))}
    environment.update(PYTHONUNBUFFERED="1", **extra)
    return environment


@dataclass
class Stack:
    url: str
    port: int
    aws_port: int
    process: subprocess.Popen[bytes]
    stdout: Path
    stderr: Path

    def output(self) -> str:
        return self.stdout.read_text(errors="replace") + self.stderr.read_text(errors="replace")

    def token(self, user: str, *, admin: bool = False) -> str:
        answer = requests.post(f"{self.url}/local/token", json={"user": user, "admin": admin}, timeout=10)
        assert answer.status_code == 200, answer.text
        return str(answer.json()["token"])

    def call(self, method: str, path: str, token: str | None = None, **kwargs: Any) -> requests.Response:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        return requests.request(method, self.url + path, headers=headers, timeout=15, **kwargs)

    def wait_for_end(self, execution_id: str, token: str) -> dict[str, Any]:
        deadline = time.monotonic() + RUN_DEADLINE_SECONDS
        execution: dict[str, Any] = {}
        while time.monotonic() < deadline:
            execution = self.call("GET", f"/api/workflows/execute/{execution_id}", token).json()["data"]
            if execution["state"] in TERMINAL:
                return execution
            time.sleep(0.1)
        raise AssertionError(f"execution did not end in time: {execution}")

    def cli(self, *args: str, token: str | None = None, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        environment = cli_environment(STEPWISE_URL=self.url, **({"STEPWISE_TOKEN": token} if token else {}))
        return subprocess.run(
            [str(STEPWISE), *args], env=environment, capture_output=True, text=True, timeout=timeout, check=False
        )


def wait_until_serving(process: subprocess.Popen[bytes], url: str, log: Any) -> None:
    deadline = time.monotonic() + START_DEADLINE_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"stepwise dev exited with {process.returncode}:\n{log()}")
        try:
            if requests.get(f"{url}/api/openapi.json", timeout=1).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"stepwise dev did not answer within {START_DEADLINE_SECONDS} s:\n{log()}")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    port = free_port_pair()
    directory = tmp_path_factory.mktemp("dev")
    stdout, stderr = directory / "stdout.txt", directory / "stderr.txt"
    with stdout.open("wb") as out, stderr.open("wb") as err:
        process = subprocess.Popen(
            [str(STEPWISE), "dev", "--port", str(port)],
            cwd=PROJECT_DIR,
            env=cli_environment(),
            stdout=out,
            stderr=err,
        )
    running = Stack(f"http://127.0.0.1:{port}", port, port + 1, process, stdout, stderr)
    try:
        wait_until_serving(process, running.url, running.output)
        yield running
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


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

    assert {names["TABLE_NAME"], names["IDEMPOTENCY_TABLE_NAME"]} <= set(tables)
    assert names["STATE_MACHINE_ARN"] in {machine["stateMachineArn"] for machine in machines}


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


# ---------------------------------------------------------------------------------------- the door


def moto_signing_key() -> Any:
    # moto signs every Cognito token with this key; it ships inside moto (a local stand-in only).
    raw = (resources.files("moto") / "cognitoidp/resources/jwks-private.json.gz").read_bytes()
    return jwt.algorithms.RSAAlgorithm.from_jwk(gzip.decompress(raw).decode())


def resigned(token: str, key: Any, **changes: Any) -> str:
    claims = {**jwt.decode(token, options={"verify_signature": False}), **changes}
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": "dummy"})


def test_a_token_re_signed_with_moto_key_unchanged_is_accepted(stack: Stack, demo_token: str) -> None:
    # The control for the cases below: the key is right, so only the changed claim can refuse them.
    token = resigned(demo_token, moto_signing_key())

    assert stack.call("GET", "/api/workflows", token).status_code == 200


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("missing", None),
        ("malformed", "the token is malformed"),
        ("expired", "the token has expired"),
        ("forged", "the token's signature is invalid"),
        ("other audience", "the token does not have a valid audience"),
        ("other issuer", "the token does not have a valid issuer"),
    ],
)
def test_requests_without_a_valid_token_are_refused_before_the_handler(
    stack: Stack, demo_token: str, case: str, reason: str | None
) -> None:
    now = int(time.time())
    tokens = {
        "missing": None,
        "malformed": "not-a-jwt",
        "expired": resigned(demo_token, moto_signing_key(), iat=now - 7200, auth_time=now - 7200, exp=now - 3600),
        "forged": resigned(demo_token, rsa.generate_private_key(public_exponent=65537, key_size=2048)),
        "other audience": resigned(demo_token, moto_signing_key(), aud="some-other-client"),
        "other issuer": resigned(demo_token, moto_signing_key(), iss="https://issuer.example.com/pool"),
    }

    answer = stack.call("GET", f"/api/workflows/execute/{'exe_' + '0' * 26}", tokens[case])

    assert answer.status_code == 401
    assert answer.json() == {"message": "Unauthorized"}
    challenge = answer.headers.get("www-authenticate")
    assert (challenge is None) if reason is None else (f'error_description="{reason}"' in str(challenge))


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


def test_sample_events_carry_the_demo_users_real_claims(stack: Stack, demo_token: str) -> None:
    # So `sam local invoke -e events/api-start-execution.json` starts the demo as its owner.
    event = json.loads((PROJECT_DIR / "events" / "api-start-execution.json").read_text())
    claims = event["requestContext"]["authorizer"]["jwt"]["claims"]
    real = jwt.decode(demo_token, options={"verify_signature": False})

    assert {k: claims[k] for k in ("sub", "iss", "aud")} == {k: real[k] for k in ("sub", "iss", "aud")}


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


def test_cli_without_a_token_is_a_usage_error(stack: Stack) -> None:
    result = stack.cli("workflow", "list")

    assert result.returncode == 2
    assert "no token" in result.stderr


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
