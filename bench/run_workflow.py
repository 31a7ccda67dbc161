"""Benchmark: what a cold start, a node and a local API request cost.

1. Cold imports (bench/cold_imports.py): each handler's import time beside a bare ``import boto3``.
2. Nodes: runs the real ASL under moto's Step Functions interpreter with Lambda routed to the project's
   handlers (in process, as the integration tests do) and prints, per node: state transitions, node-runner
   Lambda invocations, DynamoDB read and write calls (and items written), and wall-clock milliseconds; plus
   the time to read the finished execution through the API and the process's peak memory.
3. The local API (bench/local_api.py): ``stepwise dev`` over HTTP, kept-alive and with 1, 4 and 16 clients.

    .venv/bin/python bench/run_workflow.py --nodes 10 --nodes 100 [--kind set|agent] [--skip imports] ...
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import cold_imports
import local_api

PROJECT_DIR = Path(__file__).resolve().parent.parent
READS = {"GetItem", "Query", "Scan", "BatchGetItem", "TransactGetItems"}
WRITES = {"PutItem", "UpdateItem", "DeleteItem", "TransactWriteItems", "BatchWriteItem"}

# Set while a node-runner invocation is in progress (one execution runs at a time here, and the node's
# worker thread makes calls too, so a process-wide flag rather than a thread-local one).
_runner_active = [False]
_calls: Counter[str] = Counter()
_items_written = 0
_lock = threading.Lock()
_handler_seconds = [0.0]


def _count_calls() -> None:
    """Count every AWS API call the node runner makes (not the benchmark's own polling)."""
    from botocore.client import BaseClient

    original = BaseClient._make_api_call

    def counted(self: BaseClient, operation: str, params: dict[str, Any]) -> Any:
        global _items_written
        if _runner_active[0] and self.meta.service_model.service_name == "dynamodb":
            with _lock:
                _calls[operation] += 1
                if operation in WRITES:
                    _items_written += len(params.get("TransactItems", [])) or 1
        return original(self, operation, params)

    BaseClient._make_api_call = counted  # type: ignore[method-assign]


class _Agent(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        answer = json.dumps({"answer": f"ok: {body['prompt']}"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args: Any) -> None:
        return


def _definition(nodes: int, kind: str, agent_id: str | None) -> dict[str, Any]:
    if kind == "agent":
        steps = [
            {"id": f"n{i}", "type": "agentTask", "config": {"agentId": agent_id, "prompt": f"step {i} of ${{name}}"}}
            for i in range(nodes)
        ]
    else:
        steps = [
            {"id": f"n{i}", "type": "setVariables", "config": {"values": {f"v{i}": f"${{name}} {i}"}}}
            for i in range(nodes)
        ]
    return {"name": f"bench-{kind}-{nodes}", "variables": {"name": "bench"}, "nodes": steps}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, action="append", help="workflow size (repeatable; default 10 and 100)")
    parser.add_argument("--kind", choices=["set", "agent"], default="set", help="setVariables or agentTask nodes")
    parser.add_argument("--import-rounds", type=int, default=9, help="fresh processes per cold import (default 9)")
    parser.add_argument(
        "--skip", action="append", default=[], choices=["imports", "nodes", "local-api"], help="leave a part out"
    )
    args = parser.parse_args()
    if "imports" not in args.skip:
        cold_imports.report(PROJECT_DIR, args.import_rounds)
        print()
    if "nodes" not in args.skip:
        _nodes(args.nodes or [10, 100], args.kind)
        print()
    if "local-api" not in args.skip:
        local_api.report(PROJECT_DIR)


def _nodes(sizes: list[int], kind: str) -> None:

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

    from moto import mock_aws

    from stepwise.local.auth import LocalTokenIssuer
    from stepwise.local.events import http_api_event
    from stepwise.local.lambda_routing import LocalLambdaContext
    from stepwise.local.stack import provision, running

    _count_calls()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Agent)
    threading.Thread(target=server.serve_forever, daemon=True).start()

    issuer = LocalTokenIssuer()
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}), issuer.serving():
        deployment = provision(PROJECT_DIR)
        deployment.environment.update(issuer.api_environment())
        authorization = f"Bearer {issuer.token('bench')}"
        runner_name = deployment.function_names["NodeRunnerFunction"]
        original_resolver = deployment.handler_for
        invocations: Counter[str] = Counter()

        def counting_resolver(name: str) -> Any:
            handler = original_resolver(name)
            if not name.endswith(runner_name):
                return handler

            def wrapped(event: Any, context: Any) -> Any:
                invocations[event.get("action", "?") if isinstance(event, dict) else "?"] += 1
                _runner_active[0] = True
                began = time.perf_counter()
                try:
                    return handler(event, context)
                finally:
                    _runner_active[0] = False
                    _handler_seconds[0] += time.perf_counter() - began

            return wrapped

        deployment.handler_for = counting_resolver  # type: ignore[method-assign]
        with running(deployment):
            api_handler = deployment.handler_for(deployment.function_names["ApiFunction"])
            context = LocalLambdaContext("bench-api", "arn:aws:lambda:us-east-1:123456789012:function:bench", 512, 29)

            def call(method: str, path: str, body: Any = None) -> Any:
                event = http_api_event(
                    method,
                    path,
                    headers={"content-type": "application/json", "authorization": authorization},
                    body=json.dumps(body) if body is not None else None,
                )
                answer = api_handler(event, context)
                return json.loads(answer["body"])

            agent_id = None
            if kind == "agent":
                agent = call(
                    "POST", "/api/agents", {"name": "bench", "endpoint": f"http://127.0.0.1:{server.server_port}/"}
                )
                agent_id = agent["data"]["id"]

            import boto3

            sfn = boto3.client("stepfunctions")
            print(f"kind={kind}  (per node: transitions, node-runner invocations, DynamoDB calls, wall ms)")
            header = (
                f"{'nodes':>6} {'total ms':>9} {'ms/node':>8} {'trans/node':>10} {'invokes/node':>12} "
                f"{'reads/node':>10} {'writes/node':>11} {'items/node':>10} {'GET ms':>7}"
            )
            print(header)
            for size in sizes:
                workflow = call("POST", "/api/workflows", _definition(size, kind, agent_id))["data"]
                _calls.clear()
                invocations.clear()
                global _items_written
                _items_written = 0
                _handler_seconds[0] = 0.0
                began = time.perf_counter()
                execution_id = call("POST", f"/api/workflows/execute/{workflow['id']}")["data"]["executionId"]
                arn = deployment.state_machine_arn.replace(":stateMachine:", ":execution:") + f":{execution_id}"
                while sfn.describe_execution(executionArn=arn)["status"] == "RUNNING":
                    time.sleep(0.05)
                elapsed_ms = (time.perf_counter() - began) * 1000
                read_began = time.perf_counter()
                execution = call("GET", f"/api/workflows/execute/{execution_id}")["data"]
                read_ms = (time.perf_counter() - read_began) * 1000
                assert execution["state"] == "COMPLETED", execution["error"]
                history = sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"]
                transitions = sum(1 for event in history if event["type"].endswith("StateEntered"))
                reads = sum(n for op, n in _calls.items() if op in READS)
                writes = sum(n for op, n in _calls.items() if op in WRITES)
                print(
                    f"{size:>6} {elapsed_ms:>9.0f} {elapsed_ms / size:>8.1f} {transitions / size:>10.2f} "
                    f"{sum(invocations.values()) / size:>12.2f} {reads / size:>10.2f} {writes / size:>11.2f} "
                    f"{_items_written / size:>10.2f} {read_ms:>7.1f} {_handler_seconds[0] * 1000 / size:>14.1f}"
                )
            peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            print(f"peak RSS of the process: {peak_mb:.0f} MB")
    server.shutdown()


if __name__ == "__main__":
    main()
