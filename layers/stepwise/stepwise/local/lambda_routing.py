"""Run moto's Lambda invokes in this process, with the project's own handlers.

moto runs a Lambda function in a Docker container, which these machines do not have. Its one seam
is the private method ``moto.awslambda.models.LambdaFunction._invoke_lambda(self, event)``, which
returns ``(payload_json, errored, logs)``; every invoke goes through it, whether it comes from
boto3 or from a Step Functions ``lambda:invoke`` task. :func:`route_lambda_invokes` swaps that
method for one that calls a Python handler with the event and a small Lambda context, so the real
ASL runs the real handlers. With a fault decider (:mod:`stepwise.local.faults`), an invoke may fail as a
Lambda service error, crash before or after its handler, or time out instead.

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
# Given a function's name, the fault to inject into one invoke of it (a kind of stepwise.local.faults), or None.
FaultDecider = Callable[[str], str | None]

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


class LambdaServiceError(Exception):
    """An invoke Lambda itself refused (an injected fault): moto answers it as the service's error response."""

    def __init__(self, code: str, status: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


def _service_error(error: LambdaServiceError) -> Exception:
    # moto turns its own RESTError raised while it handles a request into that HTTP error answer; the caller's
    # boto3 client raises it as a ClientError, which Step Functions names Lambda.<code>.
    from moto.core.exceptions import JsonRESTError

    answer = JsonRESTError(error.code, str(error))
    answer.code = error.status
    return answer


_SERVICE_ERRORS = {
    "lambda-error": ("ServiceException", 500, "Lambda could not run the function (injected by the local stack)"),
    "lambda-throttle": ("TooManyRequestsException", 429, "Rate Exceeded. (injected by the local stack)"),
}


def invoke_handler(resolver: Resolver, function: Any, event: Any, fault: str | None = None) -> tuple[str, bool, str]:
    """Run one invoke of moto's ``function`` with the handler ``resolver`` names for it.

    Returns what moto's ``_invoke_lambda`` returns: ``(payload_json, errored, logs)``. A handler
    exception comes back as ``errored`` with Lambda's error payload, so a task's Catch sees it.
    ``fault`` injects one (:mod:`stepwise.local.faults`): ``lambda-error`` and ``lambda-throttle`` raise
    :class:`LambdaServiceError`; ``crash-before``, ``crash-after`` and ``timeout`` answer as Lambda does when
    the function's process dies or runs out of time, the handler not run (before) or run to its end (after,
    timeout: its writes are made, its answer is lost).
    """
    context = LocalLambdaContext(
        function_name=function.function_name,
        invoked_function_arn=function.function_arn,
        memory_limit_in_mb=int(function.memory_size),
        timeout_seconds=float(function.timeout),
    )
    if fault in _SERVICE_ERRORS:
        code, status, message = _SERVICE_ERRORS[fault]
        raise LambdaServiceError(code, status, message)
    if fault == "crash-before":
        return _crashed(context), True, ""
    try:
        handler = resolver(function.function_name)
        result = handler(_decode_event(event), context)
    except Exception as error:
        payload = _error_payload(error, type(error).__name__, context.aws_request_id)
        return payload, True, traceback.format_exc()
    if fault == "crash-after":
        return _crashed(context), True, ""
    if fault == "timeout":
        message = (
            f"RequestId: {context.aws_request_id} Error: Task timed out after {context.timeout_seconds:.2f} seconds"
        )
        return json.dumps({"errorType": "Sandbox.Timedout", "errorMessage": message}), True, ""
    try:
        return json.dumps(result), False, ""
    except (TypeError, ValueError) as error:
        # What Lambda answers when a handler returns something JSON cannot carry.
        return _error_payload(error, "Runtime.MarshalError", context.aws_request_id), True, ""


def _crashed(context: LocalLambdaContext) -> str:
    # What Lambda answers when the function's process exits mid-invoke (killed, out of memory, os._exit).
    message = f"RequestId: {context.aws_request_id} Error: Runtime exited with error: signal: killed"
    return json.dumps({"errorType": "Runtime.ExitError", "errorMessage": message})


@contextlib.contextmanager
def route_lambda_invokes(resolver: Resolver, faults: FaultDecider | None = None) -> Iterator[None]:
    """While active, every moto Lambda invoke runs ``resolver(function_name)(event, context)`` here.

    ``resolver`` maps a moto function's name to a handler (for instance through
    :func:`stepwise.local.template.load_handler`); a name it cannot resolve should raise, which the
    caller sees as a failed invoke. ``faults``, when given, decides a fault for each invoke (see
    :func:`invoke_handler`). Contexts nest; leaving one restores what was there before.
    """
    function_class = check_seam()

    def routed_invoke(function: Any, event: Any = None) -> tuple[str, bool, str]:
        fault = faults(function.function_name) if faults is not None else None
        try:
            return invoke_handler(resolver, function, event, fault)
        except LambdaServiceError as error:
            raise _service_error(error) from error

    with _patch_lock:
        previous = function_class.__dict__[_SEAM]
        setattr(function_class, _SEAM, routed_invoke)
    try:
        yield
    finally:
        with _patch_lock:
            setattr(function_class, _SEAM, previous)
