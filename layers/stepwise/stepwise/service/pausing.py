"""Pause and resume: a pause asked for (taken by the run at its next node boundary), withdrawn, or lifted.

A resume is delivered to Step Functions (SendTaskSuccess with the token the pause task waits on) before it is
recorded, so a resume Step Functions did not take leaves the execution PAUSED and resumable; the run's slots of
its concurrency limits are taken again first, so a resumed run never goes over a limit.
"""

from __future__ import annotations

import time
from typing import Any

from stepwise import stepfunctions
from stepwise.errors import Conflict, Unavailable
from stepwise.identity import Caller
from stepwise.models.execution import TERMINAL_STATES
from stepwise.models.records import Control, Group
from stepwise.service import concurrency
from stepwise.service.executions import PAUSABLE, Runs, record_for
from stepwise.service.history import Change, actor, approving, event, record_change, resumed_event
from stepwise.store import LimitReached, Store

# A resume that lands between a pause's group and its task token on the execution item waits this long for it.
TOKEN_WAIT_SECONDS = 2.0


def pause(store: Store, caller: Caller, execution_id: str) -> str:
    """Ask the run to pause before its next node (``pauseRequested`` shows it until then)."""
    record_for(store, caller, execution_id, change=True)

    def decide(tail: Group) -> Change:
        control = tail.control
        if control.state == "PAUSED":
            raise Conflict(f"Execution {execution_id} is already paused")
        if control.state not in PAUSABLE:
            raise Conflict(f"Execution {execution_id} already ended ({control.state}); it cannot be paused")
        if control.pauseRequested:
            raise Conflict(f"Execution {execution_id}: a pause is already requested; it pauses before its next node")
        return Change([event("execution.pause_requested", by=actor(caller))])

    record_change(store, execution_id, decide)
    return f"Execution {execution_id} will pause before its next node"


def _task_token_once_projected(
    store: Store, execution_id: str, *, other_than: frozenset[str] = frozenset()
) -> str | None:
    """The paused run's task token: the pause writes it on the execution item just after its group (a retried
    pause task writes a newer one: ``other_than`` waits for a token that is none of those)."""
    deadline = time.monotonic() + TOKEN_WAIT_SECONDS
    while True:
        current = store.get_execution(execution_id)
        token = current.taskToken if current and current.state == "PAUSED" else None
        if (token and token not in other_than) or time.monotonic() >= deadline:
            return token if token not in other_than else None
        time.sleep(0.05)


def _not_waiting(execution_id: str, code: str) -> str:
    if code == "TaskTimedOut":
        return f"Execution {execution_id} could not be resumed: its approval timed out before the resume reached it"
    return (
        f"Execution {execution_id} could not be resumed: its Step Functions run no longer waits for a resume "
        f"({code}); the reconciler starts it again within a few minutes: resume it then"
    )


def _deliver_resume(store: Store, execution_id: str, token: str, output: dict[str, Any]) -> None:
    """SendTaskSuccess to the task the paused run waits on (the newest token, if a retried pause task replaced it).

    ``Conflict`` when no task waits for it any more, ``Unavailable`` when Step Functions did not take it.
    """
    tried = {token}
    while True:
        try:
            stepfunctions.resume(token, output)
            return
        except stepfunctions.TaskGone as gone:
            newer = _task_token_once_projected(store, execution_id, other_than=frozenset(tried))
            if newer is None:
                raise Conflict(_not_waiting(execution_id, gone.code)) from gone
            tried.add(token := newer)
        except stepfunctions.StepFunctionsError as error:
            raise Unavailable(
                f"Execution {execution_id} was not resumed: Step Functions did not take the resume ({error}); "
                "if it is still PAUSED, resume it again"
            ) from error


def resume(store: Store, caller: Caller, execution_id: str, runs: Runs | None = None) -> str:
    """Resume a paused run (and approve the approval node it waits at), or withdraw a pause not yet taken.

    A paused run holds no concurrency slot: the resume takes its slots again first (``runs`` says the owner-wide
    limit), while the execution is still PAUSED; over a limit it waits in the queue, PAUSED, and resumes by
    itself (or, for a workflow that rejects, ``TooManyRuns``). Then the run is resumed (SendTaskSuccess with the
    token its pause task waits on), and only then is the resume recorded: a resume Step Functions did not take
    leaves the execution PAUSED, its slots given back, and resumable (``Unavailable``); one that reached no
    waiting task is refused (``Conflict``). The state machine records it too, as soon as its pause task ends
    (:func:`stepwise.service.runner.resumed`): whichever comes first records it once.
    """
    record = record_for(store, caller, execution_id, change=True)
    by = actor(caller)
    limits = runs.limits() if runs else concurrency.Limits(0)

    def withdraw(tail: Group) -> Change | Control:
        control = tail.control
        if control.state in PAUSABLE:
            if not control.pauseRequested:
                raise Conflict(f"Execution {execution_id} is not paused ({control.state}) and no pause is requested")
            return Change([event("execution.pause_withdrawn", by=by)])
        if control.state in TERMINAL_STATES:
            raise Conflict(f"Execution {execution_id} already ended ({control.state}); it cannot be resumed")
        concurrency.waiting_conflict(execution_id, control)
        return control

    _, paused = record_change(store, execution_id, withdraw)
    if isinstance(paused, Change):
        return f"Execution {execution_id}: pause withdrawn; it goes on running"
    slots = concurrency.resume_slots(store, limits, record)
    try:
        concurrency.take_resume_slots(store, execution_id, slots)
    except LimitReached as full:
        return concurrency.queue_resume(store, limits, record, caller, slots, full)
    token = record.taskToken or _task_token_once_projected(store, execution_id)
    try:
        if token is None:
            raise Conflict(f"Execution {execution_id} is pausing; resume it in a moment")
        _deliver_resume(store, execution_id, token, {"resumedBy": by.model_dump()})
    except (Conflict, Unavailable):
        concurrency.give_back_resume_slots(store, execution_id, token)
        raise

    def record_resume(tail: Group) -> Change | str:
        if tail.control.state != "PAUSED":
            return tail.control.state  # the run recorded it first (RUNNING), or a cancel landed meanwhile
        return Change([resumed_event(tail.control, by)])

    _, decided = record_change(store, execution_id, record_resume)
    if isinstance(decided, str) and decided in TERMINAL_STATES:
        raise Conflict(f"Execution {execution_id} ended ({decided}) while it was being resumed")
    if approving(paused):
        return f"Execution {execution_id} approved and resumed"
    return f"Execution {execution_id} resumed"
