"""Who runs a node that calls out: one invocation of the node runner at a time for each node run.

A node that calls out is claimed before its call: its ``node.started`` names the invocation that runs it
(``claim``, a random id) and the time until which that invocation may still be calling out (``claimUntil``:
its own deadline, when Lambda ends it, plus a little slack). Two things start a step while such a run may
still be in flight: Step Functions retrying a step whose invocation it lost (an error of the invoke itself,
an invocation that timed out or ran out of memory), and the reconciler starting a new Step Functions run for
an execution whose run was lost. Either way the step finds the node run claimed (:func:`settle`):

- while the claim holds, it does not call out: it waits, reading the newest group every half second, for the
  node run to end, then goes on from the log; if its own time runs short first, the state machine is told to
  step again (a fresh invocation waits on);
- once the claim has lapsed (its invocation has surely stopped), it takes the same run over: a new
  ``node.started`` for that run with a claim of its own, and the call again, with the same ``Idempotency-Key``.

The invocation that holds a claim checks, every half second while its call waits, that the node run is still
its own (:func:`owns`): superseded (taken over, canceled, the run moved on), it stops calling out and its result
is dropped. One that stops before its node run ended, with nothing in flight (an AWS call of the step refused for
now: the state machine runs the step again), lets the run go first (:func:`release`): the next step takes it over
at once instead of waiting for the claim to lapse.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Literal

from stepwise.aws import TransientError
from stepwise.clock import iso, now, now_iso, parse_iso
from stepwise.models.records import ActiveNode, Control, Group
from stepwise.service.history import Change, event, record_change, tail_of
from stepwise.store import Store

# How often a step that found a node run claimed by another invocation looks at the log again.
POLL_SECONDS = 0.5
# A claim lasts this long past its invocation's deadline (its last writes may land a moment after it).
SLACK_SECONDS = 5.0
# The node runner's timeout (template.yaml): how long an invocation whose time left is unknown may last.
INVOCATION_SECONDS = 330.0
# A waiting step hands over to a fresh invocation this long before its own time is up.
HAND_OVER_MS = 10_000
TAKEN_OVER = "the invocation that ran this node stopped before its call ended: the same run is made again"
RELEASED = "an AWS call of this step was refused for now; the step is run again and makes this run again"
# A release is itself a write AWS may refuse for now: tried this many times, 0.2 s apart and doubling (3 s in all;
# then the claim lapses on its own).
RELEASE_TRIES = 5

Settled = Literal["take over", "step again"]
TAKE_OVER: Settled = "take over"
STEP_AGAIN: Settled = "step again"


def new_claim(time_left_ms: Callable[[], int] | None) -> tuple[str, str]:
    """A claim for the calling invocation: its id, and until when it holds (the invocation's deadline)."""
    seconds = time_left_ms() / 1000 if time_left_ms else INVOCATION_SECONDS
    return uuid.uuid4().hex, iso(now() + timedelta(seconds=seconds + SLACK_SECONDS))


def holds(active: ActiveNode, lapsed_before: str | None = None) -> bool:
    """True while the invocation that claimed the node run may still be calling out.

    ``lapsed_before``: a claim taken before this time has lapsed whatever its ``claimUntil`` says, because every
    invocation alive then has died since (the local stack sets it to the time it started: a stack killed with
    a call in flight takes the call over as soon as the reconciler restarts it, not minutes later).
    """
    if lapsed_before and active.claimedAt and parse_iso(active.claimedAt) < parse_iso(lapsed_before):
        return False
    return active.claimUntil is not None and parse_iso(active.claimUntil) > now()


def owns(control: Control, run: int, claim: str) -> bool:
    """True while node run ``run`` is still the running execution's active run, under ``claim``."""
    active = control.activeNode
    return control.state == "RUNNING" and active is not None and active.run == run and active.claim == claim


def settle(
    store: Store,
    execution_id: str,
    tail: Group,
    time_left_ms: Callable[[], int] | None,
    lapsed_before: str | None = None,
) -> Group | Settled:
    """Wait while another invocation holds the node run in flight; then the newest group to decide on.

    ``TAKE_OVER`` when the claim has lapsed (run the same node run again), ``STEP_AGAIN`` when this invocation's
    own time runs short first.
    """
    while True:
        control = tail.control
        active = control.activeNode
        if control.state != "RUNNING" or active is None or active.waitingFor:
            return tail
        if not holds(active, lapsed_before):
            return TAKE_OVER
        if time_left_ms is not None and time_left_ms() < HAND_OVER_MS:
            return STEP_AGAIN
        time.sleep(POLL_SECONDS)
        tail = tail_of(store, execution_id)


def release(store: Store, execution_id: str, run: int, claim: str) -> bool:
    """Let go of node run ``run``, held under ``claim`` by this invocation, which stops before the run ended with
    nothing in flight: its claim lapses now (a warning in the node's log says why), so the next step takes the run
    over at once. False when the run was not held under ``claim`` any more, or the release was not written (best
    effort: the claim then lapses at its ``claimUntil``)."""

    def decide(tail: Group) -> Change | None:
        control = tail.control
        if not owns(control, run, claim) or control.activeNode is None:
            return None
        active = control.activeNode
        line = event("log", nodeId=active.nodeId, run=run, level="warning", message=RELEASED)
        return Change([line], updates={"activeNode": active.model_copy(update={"claimUntil": now_iso()})})

    for attempt in range(RELEASE_TRIES):
        if attempt:
            time.sleep(0.2 * 2 ** (attempt - 1))
        try:
            _, decided = record_change(store, execution_id, decide, repair=False)
        except TransientError:
            continue
        return decided is not None
    return False
