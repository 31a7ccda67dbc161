"""The floor: a bare Task + Choice loop on the same moto, one trivial in-process Lambda per iteration.

It is what any design on Step Functions pays per node locally: moto's interpreter, one Lambda task, one
Choice. Its Task state carries what the real ``RunNode`` carries (the same Parameters, ResultSelector and
ResultPath, hence the same JSONPath work), and its function answers at once without touching DynamoDB, so a
workflow's time per node divided by the floor's is what the node runner and its storage add.
"""

from __future__ import annotations

import io
import json
import threading
import zipfile
from collections import Counter
from typing import Any

FUNCTION_NAME = "bench-floor"
MACHINE_NAME = "bench-floor-loop"
ROLE_NAME = "bench-floor-role"
_LAMBDA_ERRORS = ["Lambda.ServiceException", "Lambda.AWSLambdaException", "Lambda.SdkClientException"]


def definition(function_arn: str) -> str:
    """The loop: ``Work`` (lambda:invoke) -> ``More`` (Choice) -> ``Work`` ... -> ``Done``."""
    return json.dumps(
        {
            "StartAt": "Work",
            "States": {
                "Work": {
                    "Type": "Task",
                    "Resource": "arn:aws:states:::lambda:invoke",
                    "Parameters": {"FunctionName": function_arn, "Payload": {"action": "step", "id.$": "$.id"}},
                    "ResultSelector": {
                        "status.$": "$.Payload.status",
                        "seconds.$": "$.Payload.seconds",
                        "timeoutSeconds.$": "$.Payload.timeoutSeconds",
                    },
                    "ResultPath": "$.step",
                    "Retry": [{"ErrorEquals": _LAMBDA_ERRORS, "IntervalSeconds": 1, "MaxAttempts": 2}],
                    "Next": "More",
                },
                "More": {
                    "Type": "Choice",
                    "Choices": [{"Variable": "$.step.status", "StringEquals": "continue", "Next": "Work"}],
                    "Default": "Done",
                },
                "Done": {"Type": "Succeed"},
            },
        }
    )


class Floor:
    """The loop's function and state machine in the active moto; :meth:`handler` is its Lambda."""

    def __init__(self) -> None:
        import boto3

        self._left: Counter[str] = Counter()
        self._lock = threading.Lock()
        iam = boto3.client("iam")
        trust = {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
            ],
        }
        role_arn = iam.create_role(RoleName=ROLE_NAME, AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
        archive = io.BytesIO()
        with zipfile.ZipFile(archive, "w") as files:
            files.writestr("app.py", "def handler(event, context):\n    return None\n")
        function_arn = boto3.client("lambda").create_function(
            FunctionName=FUNCTION_NAME,
            Runtime="python3.13",
            Role=role_arn,
            Handler="app.handler",
            Code={"ZipFile": archive.getvalue()},
        )["FunctionArn"]
        self.sfn = boto3.client("stepfunctions")
        self.state_machine_arn = self.sfn.create_state_machine(
            name=MACHINE_NAME, definition=definition(function_arn), roleArn=role_arn, type="STANDARD"
        )["stateMachineArn"]

    def handler(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        """The trivial function: "continue" until the run's iterations are used up, then "done"."""
        with self._lock:
            self._left[event["id"]] -= 1
            left = self._left[event["id"]]
        return {"status": "continue" if left > 0 else "done", "seconds": 0, "timeoutSeconds": 0}

    def start(self, run_id: str, iterations: int) -> str:
        """Start a loop of ``iterations`` Task + Choice pairs; its execution ARN."""
        with self._lock:
            self._left[run_id] = iterations
        return str(
            self.sfn.start_execution(
                stateMachineArn=self.state_machine_arn, name=run_id, input=json.dumps({"id": run_id})
            )["executionArn"]
        )
