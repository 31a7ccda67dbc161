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

    .venv/bin/python bench/concurrency.py [--starts 50] [--rounds 3] [--json FILE]
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


def _measured(meter: capacity.Meter, scope: str, calls: list[Any], times: list[float]) -> None:
    """Make each call, metered under ``scope``, adding its time (ms, without the meter's own calls) to ``times``."""
    for call in calls:
        overhead = meter.overhead_seconds
        began = time.perf_counter()
        with meter.scoped(scope):
            call()
        times.append((time.perf_counter() - began - (meter.overhead_seconds - overhead)) * 1000)


def _figures(meter: capacity.Meter, scope: str, metered: int, times: list[float]) -> dict[str, Any]:
    """What the ``metered`` calls under ``scope`` cost, per call, and the times of the calls made unmetered."""
    usage = meter.usage(scope=scope)
    count = len(times)
    return {
        "requests": count,
        "dynamodb_reads": usage.dynamodb_reads / metered,
        "dynamodb_writes": usage.dynamodb_writes / metered,
        "read_units": usage.read_units / metered,
        "write_units": usage.all_write_units / metered,
        "ms_p50": statistics.median(times),
        "ms_p90": statistics.quantiles(times, n=10)[-1] if count >= 10 else max(times),
    }


def _case(
    deployment: Any, meter: capacity.Meter, token: str, name: str, starts: int, times: dict[str, list[float]]
) -> None:
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

        _measured(meter, f"{name}: start", [start] * starts, times.setdefault(f"{name}: start", []))
        cancels = [lambda execution_id=e: api.call("DELETE", f"/api/workflows/execute/{execution_id}") for e in started]
        _measured(meter, f"{name}: cancel", cancels, times.setdefault(f"{name}: cancel", []))
        for execution_id in taken:
            api.call("DELETE", f"/api/workflows/execute/{execution_id}")


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
        "  ms: the request through the API handler in process, against moto (p50, p90; rounds without the meter)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--starts", type=int, default=50, help="starts (and cancels) per case and round (default 50)")
    parser.add_argument(
        "--rounds", type=int, default=3, help="every case this many times in turn, so each meets the same load (3)"
    )
    parser.add_argument("--json", type=Path, help="also write every figure to this file as JSON")
    args = parser.parse_args()
    _environment()
    from moto import mock_aws

    from stepwise.local.auth import LocalTokenIssuer
    from stepwise.local.stack import provision

    meter = capacity.Meter()
    issuer = LocalTokenIssuer()
    times: dict[str, list[float]] = {}
    load = os.getloadavg()[0]
    print(f"load average {load:.1f} on {os.cpu_count()} cores; {args.starts} starts per case, {args.rounds} rounds")
    with meter.installed(), mock_aws(), issuer.serving():
        deployment = provision(PROJECT_DIR)
        deployment.environment.update(issuer.api_environment())
        token = issuer.token(USER)
        # A first round counts the units; the meter's own reads (the items' sizes) would weigh on the times of
        # the rounds after it, which it leaves alone.
        for name in CASES:
            _case(deployment, meter, token, name, args.starts, {})
        meter.enabled = False
        for _ in range(args.rounds):
            for name in CASES:
                _case(deployment, meter, token, name, args.starts, times)
    results = {
        name: {
            kind: _figures(meter, f"{name}: {kind}", args.starts, times[f"{name}: {kind}"])
            for kind in ("start", "cancel")
        }
        for name in CASES
    }
    _print(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
        print(f"\nfigures written to {args.json}")


if __name__ == "__main__":
    main()
