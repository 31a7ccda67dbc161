"""Powertools, created once: Logger (with the correlation id), Tracer, Metrics.

The X-Ray SDK behind Powertools' Tracer costs about 0.4 s of every cold start, even when tracing is
disabled, so the Tracer is only built when ``POWERTOOLS_TRACE_DISABLED`` is not true. The template turns
it off by default: Lambda and Step Functions still trace each invocation (``Tracing: Active``); set the
variable to false for a subsegment per AWS and HTTP call.

``POWERTOOLS_METRICS_DISABLED`` (the local stack and the tests set it) silences every metric, the cold-start
one included: Powertools 3.37 prints that one whatever the variable says, and, disabled, never clears the
metrics an invocation added, so they pile up across invocations and are printed once 100 have gathered.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from functools import cache
from typing import TYPE_CHECKING, Any, cast

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics.functions import is_metrics_disabled
from aws_lambda_powertools.metrics.provider.cloudwatch_emf.cloudwatch import AmazonCloudWatchEMFProvider
from aws_lambda_powertools.utilities.typing import LambdaContext

if TYPE_CHECKING:
    from aws_lambda_powertools import Tracer

# An invocation that adds no metric of its own is normal here (reads, most node steps); don't warn each time.
warnings.filterwarnings("ignore", message="No application metrics to publish")


class _EmfProvider(AmazonCloudWatchEMFProvider):
    """Powertools' CloudWatch EMF metrics, all of them (the cold start too) silent under POWERTOOLS_METRICS_DISABLED."""

    def add_cold_start_metric(self, context: LambdaContext) -> None:
        """Print the cold-start metric, unless metrics are disabled."""
        if not is_metrics_disabled():
            super().add_cold_start_metric(context)

    def flush_metrics(self, raise_on_empty_metrics: bool = False) -> None:
        """Print the invocation's metrics; when metrics are disabled, drop them instead."""
        if is_metrics_disabled():
            self.clear_metrics()
            return
        super().flush_metrics(raise_on_empty_metrics)


logger = Logger()
metrics = Metrics(provider=_EmfProvider())


def tracing_enabled() -> bool:
    """False when ``POWERTOOLS_TRACE_DISABLED`` is true (Powertools' own switch)."""
    return os.environ.get("POWERTOOLS_TRACE_DISABLED", "false").lower() not in ("1", "true", "yes", "on")


@cache
def tracer() -> Tracer:
    """The one Tracer (imports the X-Ray SDK)."""
    from aws_lambda_powertools import Tracer

    return Tracer()


def trace_handler[Handler: Callable[..., Any]](handler: Handler) -> Handler:
    """``tracer.capture_lambda_handler`` when tracing is on, else the handler unchanged."""
    if not tracing_enabled():
        return handler
    return cast(Handler, tracer().capture_lambda_handler(handler))
