"""The reconciler: every execution in flight has a Step Functions run driving it, or is repaired.

An execution is PENDING, RUNNING or PAUSED only while a Step Functions run drives it (starts it, steps it,
parks it). A start that died between the execution's record and StartExecution, a run that failed where its
own failure path could not record it (the store was down too), a run stopped from the console, a local stack
killed mid-run: each leaves an execution in flight with no run. Every few minutes (locally every few seconds)
:func:`reconcile` reads the executions in flight by state (``GSI3``: one Query per state, never a Scan) and,
for each whose log has not changed for ``grace_seconds`` (so a start in progress is never raced), asks Step
Functions about its current run (:func:`stepwise.stepfunctions.status`). When that run is missing or ended:

- it **restarts** the execution: ``execution.restarted`` (why, and the new run's name) is appended to its log,
  then a new run ``<execution id>-<n>`` is started. The new run goes on from the log: at the cursor; a node
  whose run was in flight is run again as the same run (:mod:`stepwise.service.claims`), with the same
  ``Idempotency-Key``; a delay waits out what is left; a pause or an approval parks again;
- or it **fails** the execution, with an error that says why: a run stopped outside stepwise (ABORTED), a run
  lost ``MAX_RESTARTS`` times already, a workflow version that no longer exists.

Every decision is a change appended through the log (:func:`stepwise.service.history.record_change`), decided
on its newest group: an execution that ended meanwhile is never touched, and one restarted by someone else
meanwhile is left to its new run. Each is also a log line of the reconciler's (with the execution's id).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from stepwise import stepfunctions
from stepwise.aws import TransientError
from stepwise.clock import now as wall_clock
from stepwise.clock import parse_iso
from stepwise.models.records import Group
from stepwise.observability import logger
from stepwise.service import concurrency, runner
from stepwise.service.history import Change, event, record_change
from stepwise.store import Store, terminal

UNFINISHED = ("PENDING", "RUNNING", "PAUSED")
# A run that keeps getting lost is not started again past this many restarts: the execution fails instead.
MAX_RESTARTS = 5
# Stop this long before the reconciler's own time is up (the next tick goes on where this one stopped).
TIME_MARGIN_MS = 5_000
# Runs that still drive their execution.
_ALIVE = ("RUNNING", "PENDING_REDRIVE")


@dataclass(frozen=True)
class Reconciling:
    """What the reconciler needs beside the table: the state machine, and how long a quiet log is left alone."""

    state_machine_arn: str
    grace_seconds: float
    owner_limit: int = 0  # the owner-wide concurrency limit (0: none), for the queues it moves on


@dataclass
class Reconciled:
    """What one pass did: how many executions it looked at, which it restarted or failed, whether it finished."""

    examined: int = 0
    restarted: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    complete: bool = True

    def summary(self) -> dict[str, Any]:
        """The pass as the handler answers it."""
        return {
            "examined": self.examined,
            "restarted": self.restarted,
            "failed": self.failed,
            "complete": self.complete,
        }


def reconcile(
    store: Store,
    reconciling: Reconciling,
    *,
    now: datetime | None = None,
    time_left_ms: Callable[[], int] | None = None,
) -> Reconciled:
    """One pass over every execution in flight: restart or fail each whose Step Functions run is missing or ended.

    ``now`` is the time the grace period counts from (the wall clock by default); ``time_left_ms`` the Lambda
    context's clock: the pass stops early when it runs short (``complete`` False), the next one goes on.
    """
    moment = now or wall_clock()
    done = Reconciled()
    for state in UNFINISHED:
        for execution_id in store.unfinished(state):
            if time_left_ms is not None and time_left_ms() < TIME_MARGIN_MS:
                done.complete = False
                return done
            done.examined += 1
            try:
                outcome = _reconcile_one(store, reconciling, execution_id, moment)
            except (stepfunctions.StepFunctionsError, TransientError) as error:
                # Refused for now (or Step Functions could not say): the next pass looks at it again.
                logger.warning(f"reconciler: {execution_id} skipped: {error}", extra={"execution_id": execution_id})
                continue
            if outcome == "restarted":
                done.restarted.append(execution_id)
            elif outcome == "failed":
                done.failed.append(execution_id)
    return done


def _quiet_since(tail: Group) -> datetime:
    """When the execution's log last changed."""
    return parse_iso(tail.events[-1].at)


def _reconcile_one(store: Store, reconciling: Reconciling, execution_id: str, moment: datetime) -> str | None:
    """Restart or fail one execution whose run is missing or ended; what was done ("restarted", "failed"), if any."""
    tail = store.tail(execution_id)
    if tail is None or terminal(tail.control.state):
        return None  # the index lags the log: it ended already
    if tail.control.queued is not None:
        # It waits for a concurrency slot, with no run on purpose. A crash between a run giving its slots back
        # and the queue moving on leaves the queue stalled until the owner's next start or end: move it on here.
        concurrency.wake(store, concurrency.Limits(reconciling.owner_limit), tail.control.queued.owner)
        return None
    if moment - _quiet_since(tail) < timedelta(seconds=reconciling.grace_seconds):
        return None  # it changed lately: a start, a step or a restart may be in progress
    restarts = tail.control.restarts
    run = stepfunctions.run_name(execution_id, restarts)
    status = stepfunctions.status(reconciling.state_machine_arn, run)
    if status in _ALIVE:
        return None
    if status is None and tail.events[-1].type == "execution.restarted":
        # A restart recorded whose run did not start (StartExecution refused, or the reconciler died): start it.
        stepfunctions.start(reconciling.state_machine_arn, run)
        logger.warning(f"reconciler: {execution_id}: started {run} (its restart was interrupted)")
        return "restarted"
    state = tail.control.state
    lost = (
        f"its Step Functions run {run} does not exist"
        if status is None
        else f"its Step Functions run {run} ended {status}"
    )
    why = f"{lost} while the execution was {state}"
    given_up = _give_up(store, tail, status, restarts)
    if given_up is not None:
        return _fail(store, execution_id, run, f"{why}; {given_up}")
    return _restart(store, reconciling, execution_id, restarts, why)


def _give_up(store: Store, tail: Group, status: str | None, restarts: int) -> str | None:
    """Why the execution is failed rather than restarted, if it is."""
    if status == "ABORTED":
        return "someone stopped it outside stepwise"
    if restarts >= MAX_RESTARTS:
        return f"it was restarted {restarts} times already"
    control = tail.control
    if store.get_workflow_version(control.workflowId, control.workflowVersion) is None:
        return f"workflow {control.workflowId} version {control.workflowVersion} no longer exists"
    return None


def _fail(store: Store, execution_id: str, run: str, why: str) -> str | None:
    """FAILED with ``why`` (and its node run in flight failed), unless it ended, or was restarted, meanwhile."""
    answered = runner.fail(store, execution_id, {"Error": "Stepwise.RunLost", "Cause": why}, run_name=run)
    if answered["status"] != "failed":
        return None
    logger.warning(f"reconciler: {execution_id} failed: {why}", extra={"execution_id": execution_id})
    return "failed"


def _restart(store: Store, reconciling: Reconciling, execution_id: str, restarts: int, why: str) -> str | None:
    """Record ``execution.restarted`` and start the next run, unless it ended, or was restarted, meanwhile."""
    next_run = stepfunctions.run_name(execution_id, restarts + 1)

    def decide(tail: Group) -> Change | None:
        if terminal(tail.control.state) or tail.control.restarts != restarts:
            return None
        return Change([event("execution.restarted", message=why, runName=next_run)])

    _, decided = record_change(store, execution_id, decide)
    if decided is None:
        return None
    logger.warning(f"reconciler: {execution_id} restarted as {next_run}: {why}", extra={"execution_id": execution_id})
    try:
        stepfunctions.start(reconciling.state_machine_arn, next_run)
    except stepfunctions.StartRefused as error:
        # Recorded: the next pass finds the new run missing after the grace period and starts it then.
        logger.error(f"reconciler: {execution_id}: {next_run} could not be started: {error}")
    return "restarted"
