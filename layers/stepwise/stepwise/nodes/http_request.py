"""``httpRequest``: call any HTTP endpoint; method, URL, headers and body are interpolated."""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import Field

from stepwise.interpolation import as_text, interpolate
from stepwise.models.headers import HEADER_NAME_PATTERN, HEADER_VALUE_PATTERN, header_name_problem, header_value_problem
from stepwise.nodes.base import NodeConfig, NodeContext, NodeFailed, Outcome, VariableName
from stepwise.nodes.calls import policy_for, send, with_idempotency_key

Method = Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"]


class HttpRequestConfig(NodeConfig):
    method: Method = Field(default="GET", description="GET when absent")
    url: str = Field(min_length=1, description="http or https URL; may contain ${placeholders}")
    headers: dict[str, str] = Field(
        default_factory=dict,
        description="values may hold ${placeholders}",
        json_schema_extra={
            "propertyNames": {"pattern": HEADER_NAME_PATTERN},
            "additionalProperties": {"type": "string", "pattern": HEADER_VALUE_PATTERN},
        },
    )
    body: Any = Field(default=None, description="sent as JSON unless it is a string")
    outputVariable: VariableName | None = None
    failOnError: bool = Field(default=True, description="fail the node on a 4xx or 5xx answer")

    def check_before_storing(self) -> None:
        """Header names are never interpolated, so a bad one fails every call; so does a bad literal value."""
        for name, value in self.headers.items():
            problem = header_name_problem(name) or ("${" not in value and header_value_problem(name, value))
            if problem:
                raise ValueError(f"headers: {problem}")


def run(config: HttpRequestConfig, context: NodeContext) -> Outcome:
    """Send the request; the result is ``{status, headers, body}`` with the body parsed when it is JSON.

    Error messages show the URL without userinfo, query string or fragment, which may carry secrets.
    """
    # Imported here, like requests in nodes.calls: not at cold start, only when a node calls out.
    from stepwise.outbound import display_url

    url = as_text(interpolate(config.url, context.variables))
    headers = {str(k): as_text(v) for k, v in interpolate(config.headers, context.variables).items()}
    # A key the author set (their own scheme for the endpoint they call) is theirs; else the node run's.
    headers = with_idempotency_key(context, headers, keep_callers=True)
    body = interpolate(config.body, context.variables)
    json_body = body if body is not None and not isinstance(body, str) else None
    data = body if isinstance(body, str) else None
    answer = send(
        context,
        config.method,
        str(url),
        policy=policy_for(context),
        headers=headers,
        json_body=json_body,
        data=data,
        keep_error_status=not config.failOnError,
    )
    content_type = answer.headers.get("content-type", answer.headers.get("Content-Type", ""))
    parsed: Any = answer.text
    if "json" in content_type.lower() and answer.body:
        try:
            parsed = json.loads(answer.body)
        except ValueError as error:
            shown = display_url(str(url))
            raise NodeFailed(f"{config.method} {shown} answered {content_type} that is not valid JSON") from error
    if config.failOnError and answer.status >= 400:
        raise NodeFailed(f"{config.method} {display_url(str(url))} answered HTTP {answer.status}")
    result = {"status": answer.status, "headers": dict(answer.headers), "body": parsed}
    return Outcome(output=result, set_variables={config.outputVariable or context.node_id: result})
