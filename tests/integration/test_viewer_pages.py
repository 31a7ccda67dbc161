"""The viewer's pages and files as the API function serves them: no token, their headers, their document.

What the page does in a browser is in ``test_viewer_browser.py``; here, what any HTTP client gets.
"""

from __future__ import annotations

import base64
import gzip
import json
from dataclasses import dataclass
from typing import Any

import pytest

from stepwise import viewer
from stepwise.api import pages
from stepwise.local.events import http_api_event
from stepwise.local.lambda_routing import LocalLambdaContext

EXECUTION = "exe_01J00000000000000000000000"
WORKFLOW = "wf_01J00000000000000000000000"
PAGES = [f"/ui/executions/{EXECUTION}", f"/ui/workflows/{WORKFLOW}"]


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    text: str

    def json(self) -> Any:
        return json.loads(self.text)


@pytest.fixture
def call(aws: Any) -> Any:
    """Send one request, as API Gateway would, to the API function; no token unless the headers carry one."""
    handler = aws.handler_for(aws.function_names["ApiFunction"])
    context = LocalLambdaContext(
        function_name="stepwise-local-ApiFunction",
        invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:stepwise-local-ApiFunction",
        memory_limit_in_mb=512,
        timeout_seconds=29,
    )

    def send(method: str, path: str, headers: dict[str, str] | None = None, stage: str = "$default") -> Answer:
        raw_path = path if stage == "$default" else f"/{stage}{path}"
        result = handler(http_api_event(method, raw_path, headers=headers or {}, stage=stage), context)
        body = result.get("body") or ""
        if result.get("isBase64Encoded"):
            body = gzip.decompress(base64.b64decode(body)).decode()
        return Answer(result["statusCode"], {k.lower(): v for k, v in (result.get("headers") or {}).items()}, body)

    return send


@pytest.mark.parametrize("path", PAGES)
def test_a_page_needs_no_token_and_names_its_files_by_their_content(call: Any, path: str) -> None:
    answer = call("GET", path)

    assert answer.status == 200
    assert answer.headers["content-type"] == "text/html; charset=utf-8"
    assert answer.headers["cache-control"] == "no-cache"
    assert answer.headers["content-security-policy"] == pages.CONTENT_SECURITY_POLICY
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["referrer-policy"] == "no-referrer"
    for name in viewer.ASSETS:
        assert f'"../{name}?v={viewer.asset(name).version}"' in answer.text
    assert "{{" not in answer.text


def test_the_policy_lets_the_page_run_only_its_own_files_and_talk_only_to_this_api() -> None:
    policy = dict(part.split(" ", 1) for part in pages.CONTENT_SECURITY_POLICY.split("; "))

    assert policy["default-src"] == "'none'"
    assert policy["script-src"] == policy["style-src"] == policy["connect-src"] == "'self'"
    assert policy["frame-ancestors"] == "'none'"
    assert policy["require-trusted-types-for"] == "'script'"


def test_the_page_works_behind_a_stage(call: Any) -> None:
    # Behind API Gateway the address starts with the stage; the page's links are relative to it.
    answer = call("GET", PAGES[0], stage="prod")

    assert answer.status == 200
    assert 'src="../viewer.js?v=' in answer.text


@pytest.mark.parametrize("name", sorted(viewer.ASSETS))
def test_a_file_is_kept_a_year_only_under_the_address_of_its_content(call: Any, name: str) -> None:
    current = viewer.asset(name)

    kept = call("GET", f"/ui/{name}?v={current.version}")
    other = call("GET", f"/ui/{name}?v=older")

    assert kept.status == other.status == 200
    assert kept.headers["content-type"] == viewer.ASSETS[name]
    assert kept.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert other.headers["cache-control"] == "no-cache"
    assert kept.headers["etag"] == f'"{current.version}"'
    assert kept.text == current.text


def test_a_file_is_sent_compressed_to_a_browser_that_takes_it(call: Any) -> None:
    answer = call("GET", "/ui/viewer.js", headers={"accept-encoding": "gzip, deflate, br"})

    assert answer.headers["content-encoding"] == "gzip"
    assert answer.text == viewer.asset("viewer.js").text


@pytest.mark.parametrize(
    ("path", "error"),
    [
        (f"/ui/executions/{WORKFLOW}", f"{WORKFLOW} is a workflow id, not an execution id"),
        (f"/ui/workflows/{EXECUTION}", f"{EXECUTION} is an execution id, not a workflow id"),
        ("/ui/workflows/nothing", "nothing is not a workflow id"),
        ("/ui/somewhere", "No route GET /ui/somewhere"),
    ],
)
def test_a_page_that_is_not_there_is_a_404_in_the_envelope_without_a_token(call: Any, path: str, error: str) -> None:
    answer = call("GET", path)

    assert (answer.status, answer.json()) == (404, {"success": False, "error": error})


@pytest.mark.parametrize("path", [*PAGES, "/ui/viewer.js"])
def test_a_page_takes_get_only_and_says_so_to_anyone(call: Any, path: str) -> None:
    answer = call("POST", path)

    assert answer.status == 405
    assert answer.headers["allow"] == "GET"


def test_the_document_shows_the_pages_as_public_html_and_every_other_operation_behind_the_token(call: Any) -> None:
    document = call("GET", "/api/openapi.json").json()

    public = {}
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            if "security" in operation:
                public[f"{method.upper()} {path}"] = operation
    assert set(public) == {"GET /ui/executions/{executionId}", "GET /ui/workflows/{workflowId}"}
    for operation in public.values():
        assert operation["security"] == []
        assert set(operation["responses"]["200"]["content"]) == {"text/html"}
    assert document["security"] == [{"CognitoJwt": []}]
    assert not [path for path in document["paths"] if path.endswith((".js", ".css"))]
