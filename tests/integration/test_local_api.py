"""The local API's front over real HTTP: requests side by side in warm instances, no kept-alive stalls.

The server, the gateway and the warm instances of ``stepwise dev`` serve a small project of their own here
(a template with two functions, written to a temporary directory), so each behaviour is checked without
moto: a request that waits does not hold up another, an answer leaves in one send, a failing or stuck
handler is API Gateway's 500 and leaves the next request served.
"""

from __future__ import annotations

import http.client
import json
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from stepwise.local.api_server import ApiServer, bind_api_server, listen
from stepwise.local.gateway import LocalGateway
from stepwise.local.routes import template_routes
from stepwise.local.template import function_specs, load_template
from stepwise.local.warm_instances import WarmInstances
from tests.support.streams import Writes

TEMPLATE = """
Resources:
  WorkFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: functions/work/
      Handler: app.lambda_handler
      Timeout: 29
      Events:
        Work:
          Type: HttpApi
          Properties: {Path: "/work/{proxy+}", Method: ANY}
  StuckFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: functions/stuck/
      Handler: app.lambda_handler
      Timeout: 1
      Events:
        Stuck:
          Type: HttpApi
          Properties: {Path: /stuck, Method: GET}
"""

WORK_HANDLER = """
import json, os, time
from pathlib import Path

def lambda_handler(event, context):
    action = event["pathParameters"]["proxy"]
    query = event.get("queryStringParameters") or {}
    if action == "wait":  # say it has started, then wait for the release file (10 s at most)
        Path(query["started"]).touch()
        deadline = time.monotonic() + 10
        while not Path(query["release"]).exists():
            if time.monotonic() > deadline:
                return {"statusCode": 200, "body": "gave up waiting"}
            time.sleep(0.01)
        return {"statusCode": 200, "body": "released"}
    if action == "release":
        Path(query["release"]).touch()
        return {"statusCode": 200, "body": "done"}
    if action == "boom":
        raise RuntimeError("the handler failed")
    body = {"instance": os.getpid(), "function": context.function_name, "remaining": context.get_remaining_time_in_millis()}
    return {"statusCode": 200, "headers": {"content-type": "application/json"}, "body": json.dumps(body)}
"""

STUCK_HANDLER = """
import time

def lambda_handler(event, context):
    time.sleep(30)
"""


class LocalApi:
    def __init__(self, server: ApiServer, functions: dict[str, WarmInstances]) -> None:
        self.server = server
        self.port = int(server.server_address[1])
        self.functions = functions

    def get(self, path: str, timeout: float = 20) -> tuple[int, bytes]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            connection.request("GET", path)
            answer = connection.getresponse()
            return answer.status, answer.read()
        finally:
            connection.close()


@pytest.fixture(scope="module")
def local_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalApi]:
    project = tmp_path_factory.mktemp("project")
    (project / "template.yaml").write_text(TEMPLATE)
    for name, code in (("work", WORK_HANDLER), ("stuck", STUCK_HANDLER)):
        (project / "functions" / name).mkdir(parents=True)
        (project / "functions" / name / "app.py").write_text(code)
    template = load_template(project)
    routes = template_routes(template)
    functions = {
        logical_id: WarmInstances(
            project, spec, function_name=f"local-{logical_id}", function_arn=f"arn:aws:lambda:::function:{logical_id}"
        )
        for logical_id, spec in function_specs(template).items()
    }
    server = bind_api_server(0)
    port = int(server.server_address[1])
    server.gateway = LocalGateway(routes, None, functions, port)
    server.out = open("/dev/null", "w")  # noqa: SIM115 - the access log is not under test here
    listen(server, port)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield LocalApi(server, functions)
    finally:
        server.shutdown()
        server.server_close()
        server.out.close()
        for instances in functions.values():
            instances.close()


def wait_for(path: Path, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while not path.exists():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_a_waiting_request_does_not_hold_up_another(local_api: LocalApi, tmp_path: Path) -> None:
    # Given a request that waits in its handler until a second request releases it
    started, release = tmp_path / "started", tmp_path / "release"
    answers: dict[str, Any] = {}
    waiting = threading.Thread(
        target=lambda: answers.update(wait=local_api.get(f"/work/wait?started={started}&release={release}"))
    )
    waiting.start()
    assert wait_for(started, 20), "the waiting request never reached its handler"

    # When the second request comes while the first still waits
    released = local_api.get(f"/work/release?release={release}")
    waiting.join(timeout=20)

    # Then it is served at once (one request at a time would make the first give up, then serve the second)
    assert released == (200, b"done")
    assert answers["wait"] == (200, b"released")


def test_requests_one_after_another_reuse_a_warm_instance(local_api: LocalApi) -> None:
    first = json.loads(local_api.get("/work/who")[1])
    second = json.loads(local_api.get("/work/who")[1])

    assert first["instance"] == second["instance"]
    assert first["function"] == "local-WorkFunction"
    assert 0 < first["remaining"] <= 29_000


def test_kept_alive_requests_do_not_wait_for_a_delayed_ack(local_api: LocalApi) -> None:
    # Headers and body in two small sends would make each answer wait ~40 ms for the client's delayed ACK.
    connection = http.client.HTTPConnection("127.0.0.1", local_api.port, timeout=10)
    try:
        connection.request("GET", "/work/who")
        connection.getresponse().read()  # a warm instance and an open connection from here on
        timings = []
        for _ in range(10):
            began = time.perf_counter()
            connection.request("GET", "/work/who")
            answer = connection.getresponse()
            answer.read()
            timings.append(time.perf_counter() - began)
            assert answer.status == 200
    finally:
        connection.close()

    assert sum(timings) / len(timings) < 0.025, [f"{t * 1000:.0f} ms" for t in timings]


def test_a_handler_that_raises_is_a_500_and_its_instance_stays_warm(local_api: LocalApi) -> None:
    before = json.loads(local_api.get("/work/who")[1])["instance"]

    status, body = local_api.get("/work/boom")

    assert (status, json.loads(body)) == (500, {"message": "Internal Server Error"})
    assert json.loads(local_api.get("/work/who")[1])["instance"] == before


def test_a_handler_past_its_timeout_is_ended_and_a_500(local_api: LocalApi) -> None:
    # StuckFunction's Timeout is 1 s and its handler sleeps 30 s: Lambda ends it ("Task timed out").
    began = time.monotonic()

    status, body = local_api.get("/stuck")

    assert (status, json.loads(body)) == (500, {"message": "Internal Server Error"})
    assert time.monotonic() - began < 10
    assert local_api.functions["StuckFunction"].count == 0


def test_each_request_line_is_written_whole(local_api: LocalApi) -> None:
    # The log is shared with other threads (requests beside this one, execution state lines): a line
    # written in two parts could get another's text between them.
    log, written = local_api.server.out, Writes()
    local_api.server.out = written
    try:
        local_api.get("/work/who")
        deadline = time.monotonic() + 5
        while not written.writes and time.monotonic() < deadline:  # the line follows the answer
            time.sleep(0.01)
        time.sleep(0.05)  # and any second part of it
    finally:
        local_api.server.out = log

    # Each write is one whole line (a request an earlier test left may finish in this window too).
    assert all(re.fullmatch(r"\d\d:\d\d:\d\d [A-Z]+ \S+ \d{3} \d+ ms\n", text) for text in written.writes), (
        written.writes
    )
    assert len([text for text in written.writes if " GET /work/who 200 " in text]) == 1
