"""The node runner: Step Functions invokes it once per step; it runs the next nodes and records them.

``start`` is only sent by runs of an older state machine definition (the current one's first step marks the
execution RUNNING itself).
"""

from __future__ import annotations

from typing import Any, Literal

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import BaseModel, event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from stepwise import aws, stepfunctions, wiring
from stepwise.models.events import Actor
from stepwise.observability import logger, metrics, trace_handler
from stepwise.service import runner

# Cold start: a variable the node runner needs that is not set fails here, by name.
wiring.node_runner_settings()


class TransientAwsError(Exception):
    """An AWS call of this step did not go through for now (throttled after the client's own retries, or not
    answered). The state machine's Retry names this error: the step is run again, patiently, as a throttled invoke
    is; nothing it did is lost (every step decides on the log, and a retried one repairs what it left half written)."""


class NodeRunnerEvent(BaseModel):
    action: Literal["start", "step", "pause", "resumed", "approvalTimeout", "fail"]
    executionId: str
    taskToken: str | None = None
    error: dict[str, Any] | None = None
    # Step Functions' $$.State.RetryCount: a retried step writes the newest group's projections again first.
    retryCount: int = 0
    # What the pause task ended with: {"resumedBy": {"sub", "name"}} from a resume, {} when it released itself.
    resume: dict[str, Any] | None = None
    # The backstop rule's "fail": the Step Functions run that ended (a run the reconciler replaced is ignored).
    runName: str | None = None


@logger.inject_lambda_context(correlation_id_path="executionId")
@trace_handler
@metrics.log_metrics(capture_cold_start_metric=True)
@event_parser(model=NodeRunnerEvent)
def lambda_handler(event: NodeRunnerEvent, context: LambdaContext) -> dict[str, Any] | None:
    try:
        return _handle(event, context)
    except aws.TransientError as error:
        raise TransientAwsError(f"{type(error).__name__}: {error}") from error


def _handle(event: NodeRunnerEvent, context: LambdaContext) -> dict[str, Any] | None:
    wired = wiring.node_runner()
    store = wired.store
    logger.append_keys(execution_id=event.executionId, action=event.action)
    retried = event.retryCount > 0
    if event.action == "start":
        return dict(runner.start(store, event.executionId, retried=retried))
    if event.action == "step":
        answer = runner.step(
            store,
            wired.step_limits,
            event.executionId,
            context.get_remaining_time_in_millis,
            retried=retried,
            values=wired.values,
        )
        metrics.add_metric(name="NodeSteps", unit=MetricUnit.Count, value=1)
        return dict(answer)
    if event.action == "pause":
        runner.pause(store, event.executionId, event.taskToken or "")
        return None
    if event.action == "resumed":
        by = (event.resume or {}).get("resumedBy")
        return dict(runner.resumed(store, event.executionId, Actor.model_validate(by) if by else None))
    if event.action == "approvalTimeout":
        return dict(runner.approval_timeout(store, event.executionId))
    if event.runName:
        execution_id = stepfunctions.execution_of(event.runName)
        return dict(runner.fail(store, execution_id, event.error or {}, run_name=event.runName))
    return dict(runner.fail(store, event.executionId, event.error or {}))
