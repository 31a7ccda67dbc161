"""The Step Functions adapter: start, stop and resume the state machine that drives an execution."""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from stepwise import aws
from stepwise.observability import logger


class StartRefused(Exception):
    """Step Functions did not start the execution; the message says why."""


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
        if error.response.get("Error", {}).get("Code") == "ExecutionAlreadyExists":
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
        if error.response.get("Error", {}).get("Code") not in ("ExecutionDoesNotExist", "InvalidArn"):
            logger.warning("StopExecution failed; the run ends at its next step", extra={"error": str(error)})
    except BotoCoreError as error:
        logger.warning("StopExecution failed; the run ends at its next step", extra={"error": str(error)})


def resume(task_token: str, output: dict[str, Any]) -> bool:
    """Complete the waiting task; False when the token is no longer valid (timed out, stopped)."""
    try:
        aws.stepfunctions().send_task_success(taskToken=task_token, output=json.dumps(output))
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") in (
            "TaskTimedOut",
            "InvalidToken",
            "TaskDoesNotExist",
        ):
            return False
        raise
    return True


def abandon(task_token: str, cause: str) -> None:
    """Fail the waiting task so the run does not wait forever (used after a cancel)."""
    try:
        aws.stepfunctions().send_task_failure(taskToken=task_token, error="stepwise.Canceled", cause=cause)
    except ClientError:
        # The token is gone once StopExecution took effect: nothing left to release.
        return
