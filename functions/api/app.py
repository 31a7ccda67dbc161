"""The HTTP API's Lambda handler: Powertools' Logger, Tracer and Metrics around the one resolver.

The routes, the error map and the OpenAPI document are in the shared package (:mod:`stepwise.api`); each
route parses, calls one use case and shapes the answer.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from stepwise.api.resolver import create_resolver
from stepwise.observability import logger, metrics, trace_handler

app = create_resolver()


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@trace_handler
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
