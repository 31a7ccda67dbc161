"""Outgoing calls from nodes: the timeout and retry a node asks for, and errors a user can read."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from stepwise.nodes.base import NodeContext, NodeFailed

if TYPE_CHECKING:
    # requests is imported when a node first calls out, not at cold start (the API never needs it).
    from stepwise.outbound import CallPolicy, HttpAnswer


def policy_for(context: NodeContext, agent_timeout: float | None = None) -> CallPolicy:
    """The node's timeout, else the agent's, else the default; the node's retry policy, else 3 attempts."""
    from stepwise.outbound import CallPolicy

    timeout = context.timeout_seconds or agent_timeout or context.calls.timeout_seconds
    retry = context.retry
    return CallPolicy(
        timeout_seconds=timeout,
        max_attempts=retry.maxAttempts if retry else 3,
        backoff_seconds=retry.backoffSeconds if retry else 1.0,
        max_response_bytes=context.calls.max_response_bytes,
        allow_private=context.calls.allow_private_endpoints,
    )


IDEMPOTENCY_KEY = "Idempotency-Key"


def with_idempotency_key(context: NodeContext, headers: dict[str, str], *, keep_callers: bool) -> dict[str, str]:
    """``headers`` with ``Idempotency-Key: <executionId>:<nodeId>:<run>``; ``keep_callers`` keeps one the workflow's
    author set (any case) instead."""
    named = [name for name in headers if name.lower() == IDEMPOTENCY_KEY.lower()]
    if named and keep_callers:
        return headers
    kept = {name: value for name, value in headers.items() if name not in named}
    return {**kept, IDEMPOTENCY_KEY: context.idempotency_key}


def send(
    context: NodeContext,
    method: str,
    url: str,
    *,
    policy: CallPolicy,
    headers: dict[str, str] | None = None,
    json_body: Any = None,
    data: str | None = None,
    keep_error_status: bool = False,
) -> HttpAnswer:
    """Make the call, logging every attempt on the node; a failure becomes ``NodeFailed``.

    ``headers`` should carry the node run's ``Idempotency-Key`` (:func:`with_idempotency_key`): every attempt
    sends the same headers. ``keep_error_status``: a call that still answered 429 or 5xx after its retries comes
    back as an answer with that status (and no body) instead of failing the node.
    """
    from stepwise.outbound import HttpAnswer, OutboundError, call

    def log(level: str, message: str) -> None:
        context.log("warning" if level == "warning" else "error" if level == "error" else "info", message)

    try:
        return call(
            method,
            url,
            policy=policy,
            headers=headers,
            json_body=json_body,
            data=data,
            log=log,
            should_stop=context.should_stop,
        )
    except OutboundError as error:
        if keep_error_status and error.status is not None:
            return HttpAnswer(status=error.status, headers={}, body=b"", attempts=policy.max_attempts, elapsed_ms=0)
        raise NodeFailed(str(error)) from error
