"""Powertools as the handlers use it: metrics stay silent when POWERTOOLS_METRICS_DISABLED says so."""

from __future__ import annotations

from typing import Any

import pytest
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.metrics.provider import cold_start

from stepwise.local.lambda_routing import LocalLambdaContext
from stepwise.observability import metrics


@metrics.log_metrics(capture_cold_start_metric=True)
def handler(event: dict[str, Any], context: Any) -> str:
    return "done"


@metrics.log_metrics
def counting_handler(event: dict[str, Any], context: Any) -> str:
    metrics.add_metric(name="NodeSteps", unit=MetricUnit.Count, value=1)
    return "counted"


def cold_invoke() -> None:
    cold_start.is_cold_start = True
    context = LocalLambdaContext("stepwise-test", "arn:aws:lambda:us-east-1:123456789012:function:x", 128, 3)
    assert handler({}, context) == "done"


def test_no_metric_is_printed_when_metrics_are_disabled(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # The local stack and the tests: its log carries no raw EMF JSON, not even the cold-start metric.
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")

    cold_invoke()

    assert capsys.readouterr().out == ""


def test_no_metric_is_printed_when_metrics_are_disabled_however_many_invocations_add_one(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # A long local session: the node runner adds NodeSteps at every node, hundreds of times in one process.
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    context = LocalLambdaContext("stepwise-test", "arn:aws:lambda:us-east-1:123456789012:function:x", 128, 3)

    for _ in range(150):
        counting_handler({}, context)

    assert capsys.readouterr().out == ""


def test_the_cold_start_metric_is_printed_when_metrics_are_enabled(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # The control: in AWS, the cold start is a metric (CloudWatch reads the EMF line).
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")
    monkeypatch.setattr(metrics.provider, "namespace", "Stepwise")  # the template's POWERTOOLS_METRICS_NAMESPACE

    cold_invoke()

    assert '"ColdStart"' in capsys.readouterr().out
