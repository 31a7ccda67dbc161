"""The local stand-in for the reconciler's schedule: a pass every few seconds instead of every 5 minutes.

In AWS an EventBridge schedule invokes ``ReconcilerFunction`` every 5 minutes, and it leaves alone an
execution whose log changed within ``RECONCILE_GRACE_SECONDS`` (120 s: a start in progress). Locally starts are
quick and a laptop's stack is stopped and started often, so the clock runs a pass every ``interval`` seconds
with a grace of ``LOCAL_GRACE_SECONDS``: an execution left in flight by a stack that was killed goes on (or
fails, saying why) within half a minute of the next start. Wiring into the local stack is one line::

    stack.enter_context(ReconcileClock.for_deployment(deployment).running())
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from stepwise.local.repeating import repeating

if TYPE_CHECKING:
    from stepwise.local.stack import Deployment
    from stepwise.service.reconciler import Reconciled


LOCAL_GRACE_SECONDS = 10.0
DEFAULT_INTERVAL_SECONDS = 3.0


class ReconcileClock:
    """Runs ``reconcile_once`` every ``interval`` seconds on a daemon thread (see :meth:`running`)."""

    def __init__(self, reconcile_once: Callable[[], Reconciled]) -> None:
        self.reconcile_once = reconcile_once

    @classmethod
    def for_deployment(cls, deployment: Deployment, grace_seconds: float = LOCAL_GRACE_SECONDS) -> ReconcileClock:
        """A clock for the local stack: the reconciler's use case over its table and state machine.

        The deployment's environment must be the process's (:func:`stepwise.local.stack.running`).
        """
        from stepwise import wiring
        from stepwise.service.reconciler import reconcile

        def reconcile_once() -> Reconciled:
            wired = wiring.reconciler()
            return reconcile(wired.store, dataclasses.replace(wired.reconciling, grace_seconds=grace_seconds))

        return cls(reconcile_once)

    @contextlib.contextmanager
    def running(self, interval: float = DEFAULT_INTERVAL_SECONDS) -> Iterator[ReconcileClock]:
        """Run it every ``interval`` seconds on a daemon thread while the context is open (stopped on exit)."""
        with repeating(self.reconcile_once, interval, "reconciler"):
            yield self
