"""The reconciler: a schedule invokes it every few minutes; it repairs executions whose Step Functions run is gone.

Every rule lives in :mod:`stepwise.service.reconciler`; the scheduled event itself carries nothing it needs.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from stepwise import wiring
from stepwise.observability import logger, metrics, trace_handler
from stepwise.service import reconciler

# Cold start: a variable the reconciler needs that is not set fails here, by name.
wiring.reconciler_settings()


@logger.inject_lambda_context
@trace_handler
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    wired = wiring.reconciler()
    done = reconciler.reconcile(wired.store, wired.reconciling, time_left_ms=context.get_remaining_time_in_millis)
    metrics.add_metric(name="ExecutionsRestarted", unit=MetricUnit.Count, value=len(done.restarted))
    metrics.add_metric(name="ExecutionsFailedByReconciler", unit=MetricUnit.Count, value=len(done.failed))
    return done.summary()
