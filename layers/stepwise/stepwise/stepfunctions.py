"""The Step Functions adapter: start, stop and resume the state machine that drives an execution.

Botocore's errors end here: a call either answers (a start of a name that exists is done; a token that is
gone is ``False``) or raises a ``StepFunctionsError``.
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


class Throttled(StepFunctionsError):
    """Step Functions refused the call for now, after the client's own retries."""


def _error(error: ClientError | BotoCoreError) -> StepFunctionsError:
    if isinstance(error, ClientError) and aws.error_code(error) in aws.THROTTLING_CODES:
        return Throttled(str(error))
    return StepFunctionsError(str(error))


# SendTaskSuccess's answers for a token that no longer waits (timed out, stopped, or never ours).
_TOKEN_GONE = ("TaskTimedOut", "InvalidToken", "TaskDoesNotExist")


def execution_arn(state_machine_arn: str, name: str) -> str:
    """The ARN of the state machine execution named ``name``."""
    return state_machine_arn.replace(":stateMachine:", ":execution:") + f":{name}"


def start(state_machine_arn: str, execution_id: str) -> None:
    """Start the run named by the execution id; starting the same name again is a no-op."""
    try:
        aws.stepfunctions().start_execution(
            stateMachineArn=state_machine_arn,
            name=execution_id,
            input=json.dumps({"executionId": execution_id}),
        )
    except ClientError as error:
        if aws.error_code(error) == "ExecutionAlreadyExists":
            return
        raise StartRefused(str(error)) from error
    except BotoCoreError as error:
        # Timeouts, connection errors: the start may or may not have happened; a retry with the same
        # name finds out (ExecutionAlreadyExists), and the caller records the failure meanwhile.
        raise StartRefused(str(error)) from error


def stop(state_machine_arn: str, execution_id: str, cause: str) -> None:
    """Stop the run, best effort: the execution record is already CANCELED, and that is what counts.

    A run that already ended or never started is fine; any other failure is logged, not raised: the node
    runner reads CANCELED before its next node and ends the run itself.
    """
    try:
        aws.stepfunctions().stop_execution(
            executionArn=execution_arn(state_machine_arn, execution_id),
            error="stepwise.Canceled",
            cause=cause,
        )
    except ClientError as error:
        if aws.error_code(error) not in ("ExecutionDoesNotExist", "InvalidArn"):
            logger.warning("StopExecution failed; the run ends at its next step", extra={"error": str(error)})
    except BotoCoreError as error:
        logger.warning("StopExecution failed; the run ends at its next step", extra={"error": str(error)})


def resume(task_token: str, output: dict[str, Any]) -> bool:
    """Complete the waiting task; False when the token is no longer valid (timed out, stopped).

    Any other failure is a ``StepFunctionsError`` (``Throttled`` when Step Functions refused it for now).
    """
    try:
        aws.stepfunctions().send_task_success(taskToken=task_token, output=json.dumps(output))
    except ClientError as error:
        if aws.error_code(error) in _TOKEN_GONE:
            return False
        raise _error(error) from error
    except BotoCoreError as error:
        raise _error(error) from error
    return True


def abandon(task_token: str, cause: str) -> None:
    """Fail the waiting task so the run does not wait forever (used after a cancel)."""
    try:
        aws.stepfunctions().send_task_failure(taskToken=task_token, error="stepwise.Canceled", cause=cause)
    except ClientError:
        # The token is gone once StopExecution took effect: nothing left to release.
        return
    except BotoCoreError as error:
        raise _error(error) from error
