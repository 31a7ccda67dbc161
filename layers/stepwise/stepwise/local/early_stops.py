"""moto: a StopExecution that lands just after StartExecution stops the run instead of failing.

moto's interpreter runs a Step Functions run on a thread of its own, which sets up the run's environment when it
starts; a StopExecution before that (a cancel right after a start) raises ``AttributeError`` inside moto, which the
caller sees as a 500 (``'NoneType' object has no attribute 'set_stop'``). AWS has no such window. Patched here, the
stop waits briefly for the environment, as the run would have one a moment later in AWS. Once per process, from
:func:`stepwise.local.stack.provision`.
"""

from __future__ import annotations

import time
from typing import Any

# How long a stop waits for the run's thread to set up its environment (it takes milliseconds).
WAIT_SECONDS = 2.0


def stops_wait_for_the_run() -> None:
    """Patch moto's ExecutionWorker.stop (once per process)."""
    from moto.stepfunctions.parser.backend.execution_worker import ExecutionWorker

    original = ExecutionWorker.stop
    if getattr(original, "_stepwise_waits", False):
        return

    def stop(self: Any, stop_date: Any, error: str | None, cause: str | None) -> None:
        deadline = time.monotonic() + WAIT_SECONDS
        while getattr(self, "env", None) is None and time.monotonic() < deadline:
            time.sleep(0.01)
        if getattr(self, "env", None) is not None:
            original(self, stop_date=stop_date, error=error, cause=cause)

    stop._stepwise_waits = True  # type: ignore[attr-defined]
    ExecutionWorker.stop = stop  # type: ignore[method-assign]
