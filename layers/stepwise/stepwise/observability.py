"""Powertools, created once: Logger (with the correlation id), Tracer, Metrics."""

from __future__ import annotations

import warnings

from aws_lambda_powertools import Logger, Metrics, Tracer

# An invocation that adds no metric of its own is normal here (reads, most node steps); don't warn each time.
warnings.filterwarnings("ignore", message="No application metrics to publish")

logger = Logger()
tracer = Tracer()
metrics = Metrics()
