"""The Step Functions adapter: start, describe, stop and resume the state machine run that drives an execution.

Botocore's errors end here: a call either answers (a start of a name that exists is done) or raises a
``StepFunctionsError`` (``TaskGone`` for a task token nothing waits on any more; ``Throttled`` and ``StartDelayed``
when Step Functions did not take the call for now, both a :class:`stepwise.aws.TransientError`).

A run is named by its execution's id; a run the reconciler starts again after the first one was lost is named
``<execution id>-<n>`` (:func:`run_name`), and every run's input is ``{"executionId": ...}``.
"""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from stepwise import aws
from stepwise.observability import logger


class StepFunctionsError(Exception):
    """A Step Functions call failed; the message says why."""


class StartRefused(StepFunctionsError):
    """Step Functions did not start the execution; the message says why."""


class StartDelayed(StartRefused, aws.TransientError):
    """Step Functions did not take the start for now (throttled after the client's own retries, or no answer: it may
    have started after all). Nothing failed: a start of the same name later starts it, or finds it started."""


class Throttled(StepFunctionsError, aws.TransientError):
    """Step Functions refused the call for now, after the client's own retries."""


class TaskGone(StepFunctionsError):
    """No task waits on the token any more (``code``: TaskTimedOut, TaskDoesNotExist or InvalidToken)."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


def _error(error: ClientError | BotoCoreError) -> StepFunctionsError:
    if isinstance(error, ClientError) and aws.error_code(error) in aws.THROTTLING_CODES:
        return Throttled(str(error))
    return StepFunctionsError(str(error))


# SendTaskSuccess's answers for a token that no longer waits (timed out, stopped, or never ours).
_TOKEN_GONE = ("TaskTimedOut", "InvalidToken", "TaskDoesNotExist")


def execution_arn(state_machine_arn: str, name: str) -> str:
    """The ARN of the state machine execution named ``name``."""
    return state_machine_arn.replace(":stateMachine:", ":execution:") + f":{name}"


def run_name(execution_id: str, restarts: int = 0) -> str:
    """The name of an execution's current run: its id, then ``<id>-<n>`` after the reconciler's n-th restart."""
    return execution_id if restarts == 0 else f"{execution_id}-{restarts}"


def execution_of(name: str) -> str:
    """The execution id a run is named after (ids hold no ``-``)."""
    return name.split("-", 1)[0]


def start(state_machine_arn: str, name: str) -> None:
    """Start the run ``name`` (:func:`run_name`) of its execution; starting the same name again is a no-op.

    ``StartDelayed`` when Step Functions did not take it for now, ``StartRefused`` when it refused it for good.
    """
    try:
        aws.stepfunctions().start_execution(
            stateMachineArn=state_machine_arn,
            name=name,
            input=json.dumps({"executionId": execution_of(name)}),
        )
    except ClientError as error:
        if (code := aws.error_code(error)) == "ExecutionAlreadyExists":
            return
        if code in aws.THROTTLING_CODES:
            raise StartDelayed(str(error)) from error
        raise StartRefused(str(error)) from error
    except BotoCoreError as error:
        # Timeouts, connection errors: the start may or may not have happened; a start of the same name
        # later finds out (ExecutionAlreadyExists).
        raise StartDelayed(str(error)) from error


def status(state_machine_arn: str, name: str) -> str | None:
    """The run's status (RUNNING, SUCCEEDED, FAILED, TIMED_OUT, ABORTED, PENDING_REDRIVE); None: no run has the name."""
    try:
        described = aws.stepfunctions().describe_execution(executionArn=execution_arn(state_machine_arn, name))
    except ClientError as error:
        if aws.error_code(error) == "ExecutionDoesNotExist":
            return None
        raise _error(error) from error
    except BotoCoreError as error:
        raise _error(error) from error
    return str(described["status"])


def stop(state_machine_arn: str, name: str, cause: str) -> None:
    """Stop the run, best effort: the execution record is already CANCELED, and that is what counts.

    A run that already ended or never started is fine; any other failure is logged, not raised: the node
    runner reads CANCELED before its next node and ends the run itself.
    """
    try:
        aws.stepfunctions().stop_execution(
            executionArn=execution_arn(state_machine_arn, name),
            error="stepwise.Canceled",
            cause=cause,
        )
    except ClientError as error:
        if aws.error_code(error) not in ("ExecutionDoesNotExist", "InvalidArn"):
            logger.warning("StopExecution failed; the run ends at its next step", extra={"error": str(error)})
    except BotoCoreError as error:
        logger.warning("StopExecution failed; the run ends at its next step", extra={"error": str(error)})


def resume(task_token: str, output: dict[str, Any]) -> None:
    """Complete the waiting task with ``output``.

    ``TaskGone`` when nothing waits on the token any more (timed out, stopped, or replaced by a retried task);
    any other failure is a ``StepFunctionsError`` (``Throttled`` when Step Functions refused it for now). A
    timeout (``BotoCoreError``) is a ``StepFunctionsError`` too, though the task may have been completed.
    """
    try:
        aws.stepfunctions().send_task_success(taskToken=task_token, output=json.dumps(output))
    except ClientError as error:
        if (code := aws.error_code(error)) in _TOKEN_GONE:
            raise TaskGone(aws.error_message(error), code) from error
        raise _error(error) from error
    except BotoCoreError as error:
        raise _error(error) from error


def abandon(task_token: str, cause: str) -> None:
    """Fail the waiting task so the run does not wait forever (used after a cancel)."""
    try:
        aws.stepfunctions().send_task_failure(taskToken=task_token, error="stepwise.Canceled", cause=cause)
    except ClientError:
        # The token is gone once StopExecution took effect: nothing left to release.
        return
    except BotoCoreError as error:
        raise _error(error) from error
