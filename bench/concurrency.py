"""Benchmark: what a start (and the cancel that ends it) costs with concurrency limits set, beside one without.

The API function's handler runs in this process against moto (the template deployed as the tests deploy it);
Step Functions only records the runs (its interpreter is off), so what is measured is the API request alone:
its DynamoDB calls, the read and write units AWS would bill for them (bench/capacity.py, item sizes measured),
and its time. Each case starts ``--starts`` executions of one workflow, then cancels them:

- no limit: the stack's owner-wide limit off (OWNER_CONCURRENCY_LIMIT=0), a workflow without ``concurrency``:
  the start is one PutItem of the log's first group, as before limits existed;
- owner limit: the default owner-wide limit (100), a workflow without its own;
- workflow + owner limit: a workflow with ``concurrency: {"limit": 1000}`` as well;
- queued: a workflow with ``concurrency: {"limit": 1}`` whose one slot is taken: each start waits in the queue
  (and its cancel takes it out of the queue);
- the cancels of the first three give the slots back, which looks at the owner's queue (empty here).

    .venv/bin/python bench/concurrency.py [--starts 50] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

import capacity

PROJECT_DIR = Path(__file__).resolve().parent.parent
USER = "bench"
CASES = {
    "no limit": ("0", None),
    "owner limit (100)": ("100", None),
    "workflow (1000) + owner limit": ("100", {"limit": 1000}),
    "queued (workflow limit 1 taken)": ("100", {"limit": 1}),
}
NODES = [{"id": "a", "type": "setVariables", "config": {"values": {"x": 1}}}]


def _environment() -> None:
    for key, value in {
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_DEFAULT_REGION": "us-east-1",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_METRICS_DISABLED": "true",
        "POWERTOOLS_LOG_LEVEL": "WARNING",
    }.items():
        os.environ[key] = value
    os.environ.pop("AWS_ENDPOINT_URL", None)


class Api:
    """The API function's handler, called as API Gateway calls it, as one user."""

    def __init__(self, handler: Any, token: str) -> None:
        self.handler = handler
        self.authorization = f"Bearer {token}"

    def call(self, method: str, path: str, body: Any = None) -> dict[str, Any]:
        from stepwise.local.events import http_api_event
        from stepwise.local.lambda_routing import LocalLambdaContext

        context = LocalLambdaContext("bench-api", "arn:aws:lambda:us-east-1:123456789012:function:bench", 512, 29)
        event = http_api_event(
            method,
            path,
            headers={"content-type": "application/json", "authorization": self.authorization},
            body=json.dumps(body) if body is not None else None,
        )
        answer: dict[str, Any] = json.loads(self.handler(event, context)["body"])
        if not answer.get("success"):
            raise RuntimeError(f"{method} {path}: {answer.get('error')}")
        return answer


def _measured(meter: capacity.Meter, scope: str, calls: list[Any]) -> dict[str, Any]:
    """Make each call (metered under ``scope``) and sum what they cost: per call, and their times."""
    mark = meter.mark()
    times = []
    for call in calls:
        overhead = meter.overhead_seconds
        began = time.perf_counter()
        with meter.scoped(scope):
            call()
        times.append((time.perf_counter() - began - (meter.overhead_seconds - overhead)) * 1000)
    usage = meter.usage(mark, scope=scope)
    count = len(calls)
    return {
        "requests": count,
        "dynamodb_reads": usage.dynamodb_reads / count,
        "dynamodb_writes": usage.dynamodb_writes / count,
        "read_units": usage.read_units / count,
        "write_units": usage.all_write_units / count,
        "ms_p50": statistics.median(times),
        "ms_p90": statistics.quantiles(times, n=10)[-1] if count >= 10 else max(times),
    }


def _case(deployment: Any, meter: capacity.Meter, token: str, name: str, starts: int) -> dict[str, Any]:
    from stepwise.local.stack import running

    owner_limit, concurrency = CASES[name]
    deployment.environment["OWNER_CONCURRENCY_LIMIT"] = owner_limit
    with running(deployment):
        api = Api(deployment.handler_for(deployment.function_names["ApiFunction"]), token)
        definition: dict[str, Any] = {"name": name, "nodes": NODES}
        if concurrency:
            definition["concurrency"] = concurrency
        workflow_id = api.call("POST", "/api/workflows", definition)["data"]["id"]
        taken = []
        if concurrency and concurrency["limit"] == 1:
            taken.append(api.call("POST", f"/api/workflows/execute/{workflow_id}")["data"]["executionId"])
        started: list[str] = []

        def start() -> None:
            started.append(api.call("POST", f"/api/workflows/execute/{workflow_id}")["data"]["executionId"])

        found = {"start": _measured(meter, f"{name}: start", [start] * starts)}
        cancels = [lambda execution_id=e: api.call("DELETE", f"/api/workflows/execute/{execution_id}") for e in started]
        found["cancel"] = _measured(meter, f"{name}: cancel", cancels)
        for execution_id in taken:
            api.call("DELETE", f"/api/workflows/execute/{execution_id}")
    return found


# (figure, title, decimals): each column as wide as its title, and at least 7.
_COLUMNS = (
    ("dynamodb_reads", "DDB reads", 2),
    ("dynamodb_writes", "DDB writes", 2),
    ("read_units", "RCU", 2),
    ("write_units", "WCU", 2),
    ("ms_p50", "ms p50", 1),
    ("ms_p90", "ms p90", 1),
)


def _print(results: dict[str, dict[str, Any]]) -> None:
    width = max(len(name) for name in results) + len(": cancel")
    widths = [max(7, len(title)) for _, title, _ in _COLUMNS]
    titles = "  ".join(f"{title:>{size}}" for (_, title, _), size in zip(_COLUMNS, widths, strict=True))
    print(f"{'per request':<{width}}  {titles}")
    for name, found in results.items():
        for kind in ("start", "cancel"):
            row = found[kind]
            cells = "  ".join(
                f"{row[key]:>{size}.{decimals}f}" for (key, _, decimals), size in zip(_COLUMNS, widths, strict=True)
            )
            print(f"{f'{name}: {kind}':<{width}}  {cells}")
    print(
        "  DDB reads/writes: DynamoDB calls the API request made (a transaction is one write call); RCU/WCU: the\n"
        "  units AWS bills for them (a transaction bills 2 WCU per KB per item; WCU include the GSIs' writes);\n"
        "  ms: the request through the API handler in process, against moto (p50, p90)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--starts", type=int, default=50, help="starts (and cancels) per case (default 50)")
    parser.add_argument("--json", type=Path, help="also write every figure to this file as JSON")
    args = parser.parse_args()
    _environment()
    from moto import mock_aws

    from stepwise.local.auth import LocalTokenIssuer
    from stepwise.local.stack import provision

    meter = capacity.Meter()
    issuer = LocalTokenIssuer()
    results: dict[str, dict[str, Any]] = {}
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; {args.starts} starts per case")
    with meter.installed(), mock_aws(), issuer.serving():
        deployment = provision(PROJECT_DIR)
        deployment.environment.update(issuer.api_environment())
        token = issuer.token(USER)
        for name in CASES:
            results[name] = _case(deployment, meter, token, name, args.starts)
    _print(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
        print(f"\nfigures written to {args.json}")


if __name__ == "__main__":
    main()
