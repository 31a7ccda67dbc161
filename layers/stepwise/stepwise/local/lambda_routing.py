"""Run moto's Lambda invokes in this process, with the project's own handlers.

moto runs a Lambda function in a Docker container, which these machines do not have. Its one seam
is the private method ``moto.awslambda.models.LambdaFunction._invoke_lambda(self, event)``, which
returns ``(payload_json, errored, logs)``; every invoke goes through it, whether it comes from
boto3 or from a Step Functions ``lambda:invoke`` task. :func:`route_lambda_invokes` swaps that
method for one that calls a Python handler with the event and a small Lambda context, so the real
ASL runs the real handlers.

It is a private API of moto 5.2.5 (pinned in ``requirements-dev.txt``): :func:`check_seam` fails
loudly, naming the installed version, if a moto upgrade moves it.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cache
from typing import Any

Handler = Callable[[dict[str, Any], Any], Any]
Resolver = Callable[[str], Handler]

_SEAM = "_invoke_lambda"
_WRITTEN_FOR = "5.2.5"
_patch_lock = threading.Lock()


@dataclass
class LocalLambdaContext:
    """The parts of Lambda's context object that handlers and Powertools read."""

    function_name: str
    invoked_function_arn: str
    memory_limit_in_mb: int
    timeout_seconds: float
    function_version: str = "$LATEST"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    log_group_name: str = ""
    log_stream_name: str = "local"
    identity: Any = None
    client_context: Any = None
    _started: float = field(default_factory=time.monotonic, repr=False)

    def __post_init__(self) -> None:
        if not self.log_group_name:
            self.log_group_name = f"/aws/lambda/{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds left before the function's timeout, as in Lambda (never below zero)."""
        elapsed = time.monotonic() - self._started
        return max(0, int((self.timeout_seconds - elapsed) * 1000))


@cache
def check_seam() -> Any:
    """Return moto's ``LambdaFunction`` class once its ``_invoke_lambda(self, event)`` is confirmed.

    Raises ``RuntimeError`` naming the installed moto version when the private method has moved.
    """
    import moto
    from moto.awslambda import models

    version = getattr(moto, "__version__", "unknown")
    function_class = getattr(models, "LambdaFunction", None)
    method = getattr(function_class, _SEAM, None)
    parameters = list(inspect.signature(method).parameters) if callable(method) else []
    if parameters[:2] != ["self", "event"]:
        raise RuntimeError(
            f"moto {version}: moto.awslambda.models.LambdaFunction.{_SEAM}(self, event) is gone or has "
            f"changed (stepwise.local.lambda_routing was written for moto {_WRITTEN_FOR}); Lambda invokes "
            "cannot be routed to the project's handlers. Pin moto or adapt the routing."
        )
    return function_class


def _decode_event(event: Any) -> Any:
    # moto hands over the invoke body parsed (a dict) or, for an empty body, the string "{}".
    if isinstance(event, str | bytes):
        return json.loads(event) if event else {}
    return {} if event is None else event


def _error_payload(error: BaseException, error_type: str, request_id: str) -> str:
    # The shape the Python runtime returns; Step Functions takes errorType as the error's name.
    return json.dumps(
        {
            "errorMessage": str(error),
            "errorType": error_type,
            "requestId": request_id,
            "stackTrace": traceback.format_list(traceback.extract_tb(error.__traceback__)),
        }
    )


def invoke_handler(resolver: Resolver, function: Any, event: Any) -> tuple[str, bool, str]:
    """Run one invoke of moto's ``function`` with the handler ``resolver`` names for it.

    Returns what moto's ``_invoke_lambda`` returns: ``(payload_json, errored, logs)``. A handler
    exception comes back as ``errored`` with Lambda's error payload, so a task's Catch sees it.
    """
    context = LocalLambdaContext(
        function_name=function.function_name,
        invoked_function_arn=function.function_arn,
        memory_limit_in_mb=int(function.memory_size),
        timeout_seconds=float(function.timeout),
    )
    try:
        handler = resolver(function.function_name)
        result = handler(_decode_event(event), context)
    except Exception as error:
        payload = _error_payload(error, type(error).__name__, context.aws_request_id)
        return payload, True, traceback.format_exc()
    try:
        return json.dumps(result), False, ""
    except (TypeError, ValueError) as error:
        # What Lambda answers when a handler returns something JSON cannot carry.
        return _error_payload(error, "Runtime.MarshalError", context.aws_request_id), True, ""


@contextlib.contextmanager
def route_lambda_invokes(resolver: Resolver) -> Iterator[None]:
    """While active, every moto Lambda invoke runs ``resolver(function_name)(event, context)`` here.

    ``resolver`` maps a moto function's name to a handler (for instance through
    :func:`stepwise.local.template.load_handler`); a name it cannot resolve should raise, which the
    caller sees as a failed invoke. Contexts nest; leaving one restores what was there before.
    """
    function_class = check_seam()

    def routed_invoke(function: Any, event: Any = None) -> tuple[str, bool, str]:
        return invoke_handler(resolver, function, event)

    with _patch_lock:
        previous = function_class.__dict__[_SEAM]
        setattr(function_class, _SEAM, routed_invoke)
    try:
        yield
    finally:
        with _patch_lock:
            setattr(function_class, _SEAM, previous)
