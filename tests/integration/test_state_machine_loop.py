"""The real statemachine/execution.asl.json, run by moto's Step Functions interpreter.

The node runner is a scripted test double (answers from a list, records every payload), reached
through a moto Lambda function whose invokes stepwise.local.lambda_routing sends to it in-process.
The double speaks the contract of notes/CONTRACTS.md, "State machine <-> node runner".

What moto 5.2.5 was seen to honour with this definition: Retry (with JitterStrategy FULL, which
it parses and applies as a random fraction of the interval), Catch with ResultPath, ResultSelector,
Wait with SecondsPath, TimeoutSecondsPath on a waitForTaskToken task (States.Timeout after the
given seconds), SendTaskSuccess, Fail with ErrorPath/CausePath, and States.Format in a Pass state.
"""

from __future__ import annotations

import io
import json
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from stepwise.local.early_stops import stops_wait_for_the_run
from stepwise.local.lambda_routing import check_seam, route_lambda_invokes
from stepwise.local.template import load_template, state_machine_definition

PROJECT_DIR = Path(__file__).resolve().parents[2]
REGION = "us-east-1"
NODE_RUNNER_NAME = "stepwise-NodeRunnerFunction-local"
DEADLINE_SECONDS = 20.0
POLL_SECONDS = 0.02

# What Step Functions calls Lambda's own throttling; the double fakes it through errorType.
LambdaThrottled = type("Lambda.TooManyRequestsException", (Exception,), {})


def answer(status: str, seconds: int = 0, timeout_seconds: int = 0) -> dict[str, Any]:
    """A node runner answer: the contract says every key is always there."""
    return {"status": status, "seconds": seconds, "timeoutSeconds": timeout_seconds}


@dataclass
class ScriptedNodeRunner:
    """Answers step/approvalTimeout from ``script`` in order; records every payload it gets.

    An exception in the script is raised instead of answered. ``fail_raises`` makes the "fail"
    action (RecordFailure) raise too.
    """

    script: list[dict[str, Any] | Exception]
    fail_raises: bool = False
    calls: list[dict[str, Any]] = field(default_factory=list)
    call_times: list[float] = field(default_factory=list)
    _changed: threading.Condition = field(default_factory=threading.Condition)

    def __call__(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        assert context.function_name == NODE_RUNNER_NAME
        with self._changed:
            self.calls.append(event)
            self.call_times.append(time.monotonic())
            self._changed.notify_all()
        if event["action"] == "fail" and self.fail_raises:
            raise RuntimeError("the store is down too")
        if event["action"] in ("pause", "fail"):
            return answer("continue")  # ignored: both tasks have ResultPath null
        if event["action"] == "resumed":
            return answer("continue")  # the pause task ended with SendTaskSuccess: go on
        step = self.script.pop(0)
        if isinstance(step, Exception):
            raise step
        return step

    @property
    def actions(self) -> list[str]:
        return [call["action"] for call in self.calls]

    def wait_for_call(self, action: str, occurrence: int = 1) -> dict[str, Any]:
        """Block until the double has received ``action`` ``occurrence`` times; return that payload."""
        deadline = time.monotonic() + DEADLINE_SECONDS
        with self._changed:
            while True:
                matching = [call for call in self.calls if call["action"] == action]
                if len(matching) >= occurrence:
                    return matching[occurrence - 1]
                remaining = deadline - time.monotonic()
                assert remaining > 0, f"no {action!r} #{occurrence} within {DEADLINE_SECONDS} s: {self.actions}"
                self._changed.wait(remaining)


@dataclass
class Loop:
    """The state machine under test and a way to run one execution against a double."""

    sfn: Any
    state_machine_arn: str
    start: Callable[[ScriptedNodeRunner, str], str]
    doubles: dict[str, ScriptedNodeRunner]

    def wait_until_done(self, execution_arn: str) -> dict[str, Any]:
        """Poll describe_execution until it leaves RUNNING, failing after the deadline."""
        deadline = time.monotonic() + DEADLINE_SECONDS
        while True:
            described: dict[str, Any] = self.sfn.describe_execution(executionArn=execution_arn)
            if described["status"] != "RUNNING":
                return described
            assert time.monotonic() < deadline, f"{execution_arn} still RUNNING after {DEADLINE_SECONDS} s"
            time.sleep(POLL_SECONDS)

    def states_entered(self, execution_arn: str) -> list[str]:
        """The names of the states the execution entered, in order, from its history."""
        events = self.sfn.get_execution_history(executionArn=execution_arn, maxResults=1000)["events"]
        return [e["stateEnteredEventDetails"]["name"] for e in events if "stateEnteredEventDetails" in e]


@pytest.fixture
def loop(monkeypatch: pytest.MonkeyPatch) -> Iterator[Loop]:
    # Given fake credentials, moto with real ASL execution, a node runner function and the machine
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
    }.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)

    doubles: dict[str, ScriptedNodeRunner] = {}
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        stops_wait_for_the_run()  # as the local stack's moto (stepwise.local.early_stops)
        role_arn = boto3.client("iam").create_role(
            RoleName="stepwise-local", AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17"})
        )["Role"]["Arn"]
        # moto keeps the code but never runs it: invokes are routed to the double below.
        code = io.BytesIO()
        with zipfile.ZipFile(code, "w") as archive:
            archive.writestr("app.py", "def lambda_handler(event, context):\n    raise NotImplementedError\n")
        function_arn = boto3.client("lambda").create_function(
            FunctionName=NODE_RUNNER_NAME,
            Runtime="python3.13",
            Role=role_arn,
            Handler="app.lambda_handler",
            Code={"ZipFile": code.getvalue()},
            Timeout=330,
        )["FunctionArn"]
        definition = state_machine_definition(
            PROJECT_DIR, load_template(PROJECT_DIR), {"NodeRunnerFunctionArn": function_arn}
        )
        sfn = boto3.client("stepfunctions")
        state_machine_arn = sfn.create_state_machine(
            name="ExecutionStateMachine", definition=definition, roleArn=role_arn, type="STANDARD"
        )["stateMachineArn"]

        def start(double: ScriptedNodeRunner, execution_id: str) -> str:
            doubles[execution_id] = double
            started = sfn.start_execution(
                stateMachineArn=state_machine_arn,
                name=execution_id,
                input=json.dumps({"executionId": execution_id}),
            )
            return str(started["executionArn"])

        def resolve(function_name: str) -> Callable[[dict[str, Any], Any], Any]:
            assert function_name == NODE_RUNNER_NAME

            def by_execution(event: dict[str, Any], context: Any) -> Any:
                return doubles[event["executionId"]](event, context)

            return by_execution

        with route_lambda_invokes(resolve):
            yield Loop(sfn=sfn, state_machine_arn=state_machine_arn, start=start, doubles=doubles)


def test_the_moto_lambda_seam_exists() -> None:
    # Given the pinned moto, When the routing checks its seam, Then it finds LambdaFunction._invoke_lambda
    assert check_seam().__name__ == "LambdaFunction"


def test_a_run_through_every_kind_of_step_succeeds(loop: Loop) -> None:
    # Given a node runner that continues, delays, pauses, asks for an approval nobody gives, then is done
    double = ScriptedNodeRunner(
        script=[
            answer("continue"),
            answer("delay", seconds=1),
            answer("pause"),
            answer("approval", timeout_seconds=1),
            answer("continue"),  # approvalTimeout
            answer("done"),
        ]
    )

    # When the execution runs and the test resumes the pause with the token the double received
    execution_arn = loop.start(double, "exe_every_step")
    pause = double.wait_for_call("pause")
    resumed_by = {"resumedBy": {"sub": "u1", "name": "Ada"}}
    loop.sfn.send_task_success(taskToken=pause["taskToken"], output=json.dumps(resumed_by))
    described = loop.wait_until_done(execution_arn)

    # Then the node runner saw the contract's actions in order and the execution succeeded
    assert described["status"] == "SUCCEEDED"
    assert double.actions == [
        "step",
        "step",
        "step",
        "pause",
        "resumed",
        "step",
        "pause",
        "approvalTimeout",
        "step",
    ]
    # The pause task's output (who resumed) reaches the node runner, which records it
    assert double.wait_for_call("resumed")["resume"] == resumed_by
    approval = double.wait_for_call("pause", occurrence=2)
    assert approval["taskToken"]
    assert approval["taskToken"] != pause["taskToken"]
    assert all(call["executionId"] == "exe_every_step" for call in double.calls)
    # The Wait (SecondsPath) and the approval's timeout (TimeoutSecondsPath) really took their second.
    after_delay = double.call_times[2] - double.call_times[1]
    approval_wait = double.call_times[7] - double.call_times[6]
    assert after_delay >= 0.9
    assert approval_wait >= 0.9
    # Two state transitions per step in the normal loop, RunNode -> Route -> RunNode, from the first state on.
    assert loop.states_entered(execution_arn) == [
        "RunNode",
        "Route",
        "RunNode",
        "Route",
        "Delay",
        "RunNode",
        "Route",
        "Pause",
        "Resumed",
        "Route",
        "RunNode",
        "Route",
        "AwaitApproval",
        "ApprovalTimedOut",
        "Route",
        "RunNode",
        "Route",
        "Completed",
    ]


def test_a_node_runner_exception_is_recorded_and_fails_the_execution(loop: Loop) -> None:
    # Given a node runner whose second step raises
    double = ScriptedNodeRunner(script=[answer("continue"), RuntimeError("agent exploded")])

    # When the execution runs
    described = loop.wait_until_done(loop.start(double, "exe_raises"))

    # Then RecordFailure hands the caught error to the node runner and the execution FAILED with it
    assert described["status"] == "FAILED"
    assert double.actions == ["step", "step", "fail"]
    error = double.calls[-1]["error"]
    assert error["Error"] == "RuntimeError"
    cause = json.loads(error["Cause"])
    assert cause["errorType"] == "RuntimeError"
    assert cause["errorMessage"] == "agent exploded"
    assert cause["stackTrace"]
    assert described.get("error") == "RuntimeError"


def test_a_failing_record_failure_still_fails_the_execution(loop: Loop) -> None:
    # Given a node runner that raises on a step and again when asked to record the failure
    double = ScriptedNodeRunner(script=[RuntimeError("agent exploded")], fail_raises=True)

    # When the execution runs
    execution_arn = loop.start(double, "exe_record_fails")
    described = loop.wait_until_done(execution_arn)

    # Then it still ends FAILED with the original error, through ExecutionFailed
    assert described["status"] == "FAILED"
    assert double.actions == ["step", "fail"]
    assert described.get("error") == "RuntimeError"
    assert loop.states_entered(execution_arn)[-2:] == ["RecordFailure", "ExecutionFailed"]


def test_a_failed_answer_fails_the_execution_without_recording_again(loop: Loop) -> None:
    # Given a node runner that answers failed (it has recorded the node's error itself)
    double = ScriptedNodeRunner(script=[answer("continue"), answer("failed")])

    # When the execution runs
    described = loop.wait_until_done(loop.start(double, "exe_failed"))

    # Then it ends FAILED in NodeFailed and the node runner is not asked to record a failure
    assert described["status"] == "FAILED"
    assert double.actions == ["step", "step"]
    assert described.get("error") == "Stepwise.NodeFailed"


def test_an_ended_answer_succeeds(loop: Loop) -> None:
    # Given an execution canceled before it started
    double = ScriptedNodeRunner(script=[answer("ended")])

    # When the execution runs
    execution_arn = loop.start(double, "exe_ended")
    described = loop.wait_until_done(execution_arn)

    # Then it ends SUCCEEDED in Canceled after the single step
    assert described["status"] == "SUCCEEDED"
    assert double.actions == ["step"]
    assert loop.states_entered(execution_arn)[-1] == "Canceled"


def test_an_unknown_status_is_recorded_as_a_failure(loop: Loop) -> None:
    # Given a node runner that answers outside the contract
    double = ScriptedNodeRunner(script=[answer("exploded")])

    # When the execution runs
    described = loop.wait_until_done(loop.start(double, "exe_unknown"))

    # Then RecordFailure receives a Stepwise.UnknownStatus error naming the status
    assert described["status"] == "FAILED"
    assert double.actions == ["step", "fail"]
    error = double.calls[-1]["error"]
    assert error["Error"] == "Stepwise.UnknownStatus"
    assert "exploded" in error["Cause"]


def test_lambda_throttling_is_retried(loop: Loop) -> None:
    # Given a node runner that is throttled once, then goes on
    double = ScriptedNodeRunner(script=[answer("continue"), LambdaThrottled("Rate exceeded"), answer("done")])

    # When the execution runs
    described = loop.wait_until_done(loop.start(double, "exe_throttled"))

    # Then the step is retried (not caught) and the execution succeeds
    assert described["status"] == "SUCCEEDED"
    assert double.actions == ["step", "step", "step"]


def test_a_step_whose_aws_call_was_throttled_is_retried(loop: Loop) -> None:
    # Given a node runner whose step meets a throttled DynamoDB call once (functions/node_runner/app.py names it)
    throttled = type("TransientAwsError", (Exception,), {})
    double = ScriptedNodeRunner(
        script=[answer("continue"), throttled("Throttled: DynamoDB: Rate exceeded"), answer("done")]
    )

    # When the execution runs
    described = loop.wait_until_done(loop.start(double, "exe_store_throttled"))

    # Then the step is run again (not recorded as the execution's failure) and the execution succeeds
    assert described["status"] == "SUCCEEDED"
    assert double.actions == ["step", "step", "step"]
    assert double.calls[2]["retryCount"] == 1


# How Step Functions names an invocation that ran out of memory, or out of time, or whose process exited.
LambdaUnknown = type("Lambda.Unknown", (Exception,), {})
SandboxTimedOut = type("Sandbox.Timedout", (Exception,), {})
RuntimeExitError = type("Runtime.ExitError", (Exception,), {})
RuntimeOutOfMemory = type("Runtime.OutOfMemory", (Exception,), {})


@pytest.mark.parametrize("died", [LambdaUnknown, SandboxTimedOut, RuntimeExitError, RuntimeOutOfMemory])
def test_a_step_whose_invocation_died_is_retried(loop: Loop, died: type[Exception]) -> None:
    # Given a node runner whose step invocation dies once (out of memory, or out of time), then goes on
    double = ScriptedNodeRunner(script=[answer("continue"), died("the invocation died"), answer("done")])

    # When the execution runs
    described = loop.wait_until_done(loop.start(double, f"exe_died_{died.__name__.replace('.', '_')}"))

    # Then the step is run again (not recorded as the execution's failure) and the execution succeeds
    assert described["status"] == "SUCCEEDED"
    assert double.actions == ["step", "step", "step"]
    assert double.calls[2]["retryCount"] == 1


def test_an_approval_that_times_out_is_not_retried(loop: Loop) -> None:
    # Given an approval with a 1 s timeout that nobody gives
    double = ScriptedNodeRunner(script=[answer("continue"), answer("approval", timeout_seconds=1), answer("failed")])

    # When the execution runs
    described = loop.wait_until_done(loop.start(double, "exe_approval_times_out"))

    # Then its timeout goes to ApprovalTimedOut at once, not to a second wait
    assert described["status"] == "FAILED"
    assert double.actions == ["step", "step", "pause", "approvalTimeout"]


def test_a_direct_invoke_is_routed_and_errors_look_like_lambda_errors(loop: Loop) -> None:
    # Given a double registered for an execution, answering once and then raising
    loop.doubles["exe_direct"] = ScriptedNodeRunner(script=[answer("done"), ValueError("bad node")])
    client = boto3.client("lambda")
    payload = json.dumps({"action": "step", "executionId": "exe_direct"})

    # When the moto function is invoked directly, twice
    answered = client.invoke(FunctionName=NODE_RUNNER_NAME, Payload=payload)
    raised = client.invoke(FunctionName=NODE_RUNNER_NAME, Payload=payload)

    # Then the first returns the handler's answer and the second Lambda's error payload
    assert "FunctionError" not in answered
    assert json.loads(answered["Payload"].read()) == answer("done")
    assert raised["FunctionError"]  # moto says "Handled" where Lambda says "Unhandled"; both are errors
    error = json.loads(raised["Payload"].read())
    assert (error["errorType"], error["errorMessage"]) == ("ValueError", "bad node")
    assert error["stackTrace"]
    assert error["requestId"]


def test_a_run_stopped_the_moment_it_started_is_stopped(loop: Loop) -> None:
    # Given runs whose node runner would wait (a cancel lands right after the start, before the first step)
    for index in range(10):
        execution_arn = loop.start(ScriptedNodeRunner(script=[answer("delay", seconds=5)]), f"exe_stopped_{index}")

        # When each is stopped at once, then Step Functions takes the stop (no error from the interpreter)
        loop.sfn.stop_execution(executionArn=execution_arn, error="stepwise.Canceled", cause="canceled")

        # (moto ends a run stopped in the middle of its first task ABORTED or FAILED; either way it ended)
        assert loop.wait_until_done(execution_arn)["status"] in ("ABORTED", "FAILED")
