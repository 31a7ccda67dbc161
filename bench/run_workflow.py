"""Benchmark: what a cold start, a node and a local API request cost, locally and at AWS prices.

1. Cold imports (bench/cold_imports.py): each handler's import time beside a bare ``import boto3``.
2. Nodes: the real ASL under moto's Step Functions interpreter, Lambda routed to the project's handlers in
   this process (as the integration tests do), for N setVariables nodes (10, 100 and 1,000 by default), N
   agentTask nodes (a local agent on 127.0.0.1) and the local stack's demo workflow. Per node: state
   transitions, node-runner invocations, DynamoDB calls and the units AWS would bill for them
   (bench/capacity.py), S3 calls, wall and handler time; beside the floor (bench/floor.py), a bare Task + Choice
   loop with a trivial function run in the same process, and the AWS cost of a million such nodes at published
   prices (bench/prices.py), beside one transition pair per node and Lambda durable functions; then the
   targets the design keeps to, each with its measured figure.
3. Variables: what a node that sets one small variable costs in DynamoDB units with 1 KB and with 200 KB of
   other variables, and what one cancel poll costs while a node calls out.
4. The local API (bench/local_api.py): ``stepwise dev`` over HTTP, kept-alive and with 1, 4 and 16 clients.

    .venv/bin/python bench/run_workflow.py [--nodes 10 --nodes 100 --nodes 1000] [--agent-nodes 100]
        [--skip imports|nodes|variables|local-api] [--json FILE] [--profile FILE]

Every figure printed is also in the ``--json`` file, so two runs can be compared.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import math
import os
import platform
import pstats
import resource
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import capacity
import cold_imports
import floor
import local_api
import prices

PROJECT_DIR = Path(__file__).resolve().parent.parent
USER = "bench"
# Once the last step has answered, the end is polled this often (polling all along would load the process).
POLL_SECONDS = 0.005
ENDING = ("done", "failed", "ended")
FLOOR_ITERATIONS = 100
# The agent behind the cancel-poll measurement answers this late: polls at 0.5, 1.0 and 1.5 s.
SLOW_AGENT_SECONDS = 1.6
VARIABLE_SIZES = {"1 KB": 1_000, "200 KB": 200_000}
SMALL_NODES = 5
DEFAULT_NODES = [10, 100, 1000]
# What the design keeps to (at N = TARGET_NODES instant nodes, and for a node that calls out).
TARGET_NODES = 100
TARGETS = {
    "transitions_per_instant_node": 0.1,
    "invocations_per_instant_node": 0.05,
    "usd_per_million_instant_nodes": 5.0,
    "transitions_per_call_out_node": 2.0,
    "wall_over_floor": 1.0,
}


class _Agent(BaseHTTPRequestHandler):
    """A local agent: answers at once, or after SLOW_AGENT_SECONDS on ``/slow`` (noting when it was busy)."""

    busy: list[tuple[float, float]] = []  # one server per process: when /slow was answering

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if self.path.startswith("/slow"):
            began = time.monotonic()
            time.sleep(SLOW_AGENT_SECONDS)
            self.busy.append((began, time.monotonic()))
        answer = json.dumps({"answer": f"ok: {body['prompt']}"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args: Any) -> None:
        return


@dataclass
class Run:
    """One execution (or floor loop), measured."""

    workload: str
    nodes: int
    wall_seconds: float
    transitions: int
    invocations: int
    handler_seconds: float
    usage: capacity.Usage
    get_ms: float | None = None

    def per_node(self, value: float) -> float:
        return value / self.nodes

    @property
    def handler_ms_per_invocation(self) -> float:
        return self.handler_seconds * 1000 / self.invocations if self.invocations else 0.0

    @property
    def handler_ms_per_node(self) -> float:
        return self.handler_seconds * 1000 / self.nodes

    def figures(self, floor_ms: float | None) -> dict[str, Any]:
        """Per node figures (the JSON and the table)."""
        usage = self.usage
        wall_ms = self.wall_seconds * 1000 / self.nodes
        return {
            "workload": self.workload,
            "nodes": self.nodes,
            "transitions_per_node": self.per_node(self.transitions),
            "invocations_per_node": self.per_node(self.invocations),
            "dynamodb_reads_per_node": self.per_node(usage.dynamodb_reads),
            "dynamodb_writes_per_node": self.per_node(usage.dynamodb_writes),
            "read_units_per_node": self.per_node(usage.read_units),
            "write_units_per_node": self.per_node(usage.all_write_units),
            "index_write_units_per_node": self.per_node(usage.index_write_units),
            "s3_put_class_per_node": self.per_node(usage.s3_put_class),
            "s3_get_class_per_node": self.per_node(usage.s3_get_class),
            "wall_ms_per_node": wall_ms,
            "handler_ms_per_invocation": self.handler_ms_per_invocation,
            "handler_ms_per_node": self.handler_ms_per_node,
            "floor_ratio": wall_ms / floor_ms if floor_ms else None,
            "get_ms": self.get_ms,
            "wall_seconds": self.wall_seconds,
        }

    def per_node_for_prices(self) -> prices.PerNode:
        usage = self.usage
        return prices.PerNode(
            transitions=self.per_node(self.transitions),
            invocations=self.per_node(self.invocations),
            handler_seconds_per_invocation=self.handler_seconds / self.invocations if self.invocations else 0.0,
            read_units=self.per_node(usage.read_units),
            write_units=self.per_node(usage.all_write_units),
            s3_put_class=self.per_node(usage.s3_put_class),
            s3_get_class=self.per_node(usage.s3_get_class),
        )


def _set_nodes(runs: int) -> dict[str, Any]:
    """``runs`` setVariables node runs: that many nodes, or, past the workflow's node limit, laps of a loop.

    A lap of K node runs is K-2 setVariables nodes, a condition on the lap counter, and a setVariables node
    that either adds to the counter and goes round again or (on the last lap) ends the run: K+1 nodes. At
    1,000 runs, four laps of 250: all but 4 of the runs are setVariables, and the conditions are instant too.
    """
    from stepwise.nodes.definitions import MAX_NODES

    if runs <= MAX_NODES:
        laps, lap = 1, runs
    else:
        laps = next(n for n in range(2, runs) if runs % n == 0 and runs // n < MAX_NODES)
        lap = runs // laps
    steps: list[dict[str, Any]] = [
        {"id": f"n{i}", "type": "setVariables", "config": {"values": {f"v{i}": f"${{name}} {i}"}}}
        for i in range(lap if laps == 1 else lap - 2)
    ]
    if laps > 1:
        check = {"left": "${lap}", "op": "eq", "right": "x" * laps, "then": "last", "else": "again"}
        steps += [
            {"id": "lap", "type": "condition", "config": check},
            {"id": "again", "type": "setVariables", "config": {"values": {"lap": "${lap}x"}}, "next": "n0"},
            {"id": "last", "type": "setVariables", "config": {"values": {"done": True}}},
        ]
    variables = {"name": "bench", "lap": "x"}
    definition: dict[str, Any] = {"name": f"bench-set-{runs}", "variables": variables, "nodes": steps}
    if runs >= 1000:
        # The default step limit (1,000 node runs) would stop the run at its last node.
        definition["maxNodeRuns"] = runs + 10
    return definition


def _agent_nodes(nodes: int, agent_id: str) -> dict[str, Any]:
    steps = [
        {"id": f"n{i}", "type": "agentTask", "config": {"agentId": agent_id, "prompt": f"step {i} of ${{name}}"}}
        for i in range(nodes)
    ]
    return {"name": f"bench-agent-{nodes}", "variables": {"name": "bench"}, "nodes": steps}


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


def _variables_limit(needed: int) -> int | None:
    """A MAX_VARIABLES_BYTES that lets ``needed`` bytes of variables in, when the default would not."""
    from stepwise.settings import NodeRunnerSettings

    field = NodeRunnerSettings.model_fields.get("max_variables_bytes")
    default = field.default if field is not None else None
    if isinstance(default, int) and default < needed:
        return needed + 100_000
    return None


class Bench:
    """The deployed local stack in moto, the meter, the counters, and how to run and measure an execution."""

    def __init__(self, deployment: Any, meter: capacity.Meter, profiler: cProfile.Profile | None) -> None:
        import boto3

        self.deployment = deployment
        self.meter = meter
        self.profiler = profiler
        self.sfn = boto3.client("stepfunctions")
        self.floor = floor.Floor()
        self.invocations: Counter[str] = Counter()
        self.handler_seconds = 0.0
        self.last_step_answered = threading.Event()
        self.authorization = ""
        self._api: Any = None

    # -- routing -------------------------------------------------------------------------------------------

    def resolver(self, original: Callable[[str], Any]) -> Callable[[str], Any]:
        """Route the floor's function to its trivial handler and time and meter every node-runner invocation."""
        runner_name = self.deployment.function_names["NodeRunnerFunction"]

        def resolve(name: str) -> Any:
            if name.rsplit(":", 1)[-1] == floor.FUNCTION_NAME:
                return self._timed("floor", self.floor.handler, meter=False)
            handler = original(name)
            return self._timed("runner", handler, meter=True) if name.endswith(runner_name) else handler

        return resolve

    def _timed(self, kind: str, handler: Any, *, meter: bool) -> Any:
        def wrapped(event: Any, context: Any) -> Any:
            action = event.get("action", "?") if isinstance(event, dict) else "?"
            self.invocations[f"{kind}:{action}"] += 1
            overhead = self.meter.overhead_seconds
            began = time.perf_counter()
            if self.profiler and meter:
                self.profiler.enable()
            try:
                if not meter:
                    answer = handler(event, context)
                else:
                    with self.meter.scoped(action):
                        answer = handler(event, context)
                if isinstance(answer, dict) and answer.get("status") in ENDING:
                    self.last_step_answered.set()
                return answer
            finally:
                if self.profiler and meter:
                    self.profiler.disable()
                self.handler_seconds += time.perf_counter() - began - (self.meter.overhead_seconds - overhead)

        return wrapped

    # -- the API -------------------------------------------------------------------------------------------

    def call(self, method: str, path: str, body: Any = None) -> Any:
        """One request to the API function's handler, as the bench user."""
        from stepwise.local.events import http_api_event
        from stepwise.local.lambda_routing import LocalLambdaContext

        if self._api is None:
            self._api = self.deployment.handler_for(self.deployment.function_names["ApiFunction"])
        context = LocalLambdaContext("bench-api", "arn:aws:lambda:us-east-1:123456789012:function:bench", 512, 29)
        event = http_api_event(
            method,
            path,
            headers={"content-type": "application/json", "authorization": self.authorization},
            body=json.dumps(body) if body is not None else None,
        )
        answer = json.loads(self._api(event, context)["body"])
        if not answer.get("success"):
            raise RuntimeError(f"{method} {path}: {answer.get('error')}")
        return answer

    def create_workflow(self, definition: dict[str, Any]) -> str:
        return str(self.call("POST", "/api/workflows", definition)["data"]["id"])

    def create_agent(self, endpoint: str) -> str:
        return str(self.call("POST", "/api/agents", {"name": "bench", "endpoint": endpoint})["data"]["id"])

    # -- measuring -----------------------------------------------------------------------------------------

    def _wait(self, arn: str) -> None:
        self.last_step_answered.wait(timeout=600)
        while self.sfn.describe_execution(executionArn=arn)["status"] == "RUNNING":
            time.sleep(POLL_SECONDS)

    def _transitions(self, arn: str) -> int:
        pages = self.sfn.get_paginator("get_execution_history").paginate(executionArn=arn)
        return sum(1 for page in pages for event in page["events"] if event["type"].endswith("StateEntered"))

    @contextmanager
    def _measuring(self) -> Iterator[dict[str, Any]]:
        self.invocations.clear()
        self.handler_seconds = 0.0
        self.last_step_answered.clear()
        found: dict[str, Any] = {"mark": self.meter.mark()}
        overhead = self.meter.overhead_seconds
        began = time.perf_counter()
        yield found
        found["wall_seconds"] = time.perf_counter() - began - (self.meter.overhead_seconds - overhead)

    def execute(
        self, workload: str, workflow_id: str, variables: dict[str, Any] | None = None, runs: int | None = None
    ) -> Run:
        """Start ``workflow_id``, wait for its end, and measure it (it must complete); ``runs``: its node runs
        (else the nodes that completed, right for a workflow without loops)."""
        with self._measuring() as found:
            body = {"variables": variables} if variables is not None else None
            execution_id = self.call("POST", f"/api/workflows/execute/{workflow_id}", body)["data"]["executionId"]
            arn = self.deployment.state_machine_arn.replace(":stateMachine:", ":execution:") + f":{execution_id}"
            self._wait(arn)
        began = time.perf_counter()
        execution = self.call("GET", f"/api/workflows/execute/{execution_id}")["data"]
        get_ms = (time.perf_counter() - began) * 1000
        if execution["state"] != "COMPLETED":
            raise RuntimeError(f"{workload}: execution {execution['state']}: {execution.get('error')}")
        return Run(
            workload=workload,
            nodes=runs or sum(1 for state in execution["nodeStates"].values() if state["state"] == "COMPLETED"),
            wall_seconds=found["wall_seconds"],
            transitions=self._transitions(arn),
            invocations=sum(n for key, n in self.invocations.items() if key.startswith("runner:")),
            handler_seconds=self.handler_seconds,
            usage=self.meter.usage(found["mark"]),
            get_ms=get_ms,
        )

    def measure(
        self, workload: str, workflow_id: str, variables: dict[str, Any] | None = None, runs: int | None = None
    ) -> Run:
        """Run ``workflow_id`` twice: without the meter for its times (the meter's own calls, a GetItem or two per
        item written, would weigh on them however well they are taken off), then metered for its calls and units."""
        enabled = self.meter.enabled
        self.meter.enabled = False
        try:
            timed = self.execute(workload, workflow_id, variables, runs)
        finally:
            self.meter.enabled = enabled
        counted = self.execute(workload, workflow_id, variables, runs)
        return replace(
            counted, wall_seconds=timed.wall_seconds, handler_seconds=timed.handler_seconds, get_ms=timed.get_ms
        )

    def run_floor(self, iterations: int, tag: str) -> Run:
        """The bare Task + Choice loop, ``iterations`` times."""
        with self._measuring() as found:
            arn = self.floor.start(f"floor-{tag}", iterations)
            self._wait(arn)
        return Run(
            workload=f"floor x{iterations}",
            nodes=iterations,
            wall_seconds=found["wall_seconds"],
            transitions=self._transitions(arn),
            invocations=sum(n for key, n in self.invocations.items() if key.startswith("floor:")),
            handler_seconds=self.handler_seconds,
            usage=capacity.Usage(),
        )


# ------------------------------------------------------------------------------------------------ printing

_COLUMNS = (
    ("nodes", "nodes", "{:>5.0f}"),
    ("transitions_per_node", "trans/node", "{:>10.2f}"),
    ("invocations_per_node", "invokes/node", "{:>12.2f}"),
    ("dynamodb_reads_per_node", "DDB reads/node", "{:>14.2f}"),
    ("dynamodb_writes_per_node", "DDB writes/node", "{:>15.2f}"),
    ("read_units_per_node", "RCU/node", "{:>8.2f}"),
    ("write_units_per_node", "WCU/node", "{:>8.2f}"),
    ("index_write_units_per_node", "(GSI WCU)", "{:>9.2f}"),
    ("s3_calls_per_node", "S3 calls/node", "{:>13.2f}"),
    ("wall_ms_per_node", "wall ms/node", "{:>12.1f}"),
    ("handler_ms_per_node", "handler ms/node", "{:>15.2f}"),
    ("floor_ratio", "wall/floor", "{:>10.2f}"),
    ("get_ms", "GET ms/run", "{:>10.1f}"),
)
_LEGEND = """\
  nodes: node runs in the execution (or loop iterations); every other figure is per node unless it says not
  trans/node: Step Functions state transitions (StateEntered events), what Standard workflows bill
  invokes/node: node-runner Lambda invocations (the floor: its trivial function's)
  DDB reads/node, DDB writes/node: DynamoDB calls the node runner made (API requests not included)
  RCU/node, WCU/node: DynamoDB read and write units as AWS bills them (item sizes measured); WCU includes the
    global secondary indexes' writes, shown again as (GSI WCU)
  S3 calls/node: S3 requests (PUT and GET classes) the node runner made
  wall ms/node: start to end of the execution, per node; handler ms/node: time inside the node-runner
    handler, per node (both from a run of the workflow without the meter; the counts and units from a second,
    metered run of it)
  floor xN: a bare Task+Choice loop of N iterations with a trivial in-process function (bench/floor.py), run
    before and after the workflows (its figures: both runs together)
  wall/floor: wall ms/node divided by that of the floor of the nearest size, measured in this run
  GET ms/run: one GET of the finished execution through the API handler (per execution, not per node)"""


def _print_table(rows: list[dict[str, Any]]) -> None:
    width = max(len(row["workload"]) for row in rows)
    print(f"{'workload':<{width}} " + " ".join(f"{title:>{len(fmt.format(0))}}" for _, title, fmt in _COLUMNS))
    for row in rows:
        cells = []
        for key, _, fmt in _COLUMNS:
            value = row.get(key)
            if key == "s3_calls_per_node":
                value = row["s3_put_class_per_node"] + row["s3_get_class_per_node"]
            cells.append(fmt.format(value) if value is not None else " " * len(fmt.format(0)))
        print(f"{row['workload']:<{width}} " + " ".join(cells))
    print(_LEGEND)


def _print_costs(costs: list[dict[str, Any]], memory_mb: int) -> None:
    print(
        f"AWS cost of 1M nodes in USD at published prices (bench/prices.py): NodeRunnerFunction at {memory_mb} MB, "
        "duration = measured handler time; every column in USD per 1M nodes"
    )
    parts = (
        ("step_functions", "Step Functions"),
        ("lambda_requests", "Lambda requests"),
        ("lambda_duration", "Lambda GB-s"),
        ("durable_operations", "durable ops"),
        ("dynamodb_reads", "DynamoDB RCU"),
        ("dynamodb_writes", "DynamoDB WCU"),
        ("s3", "S3"),
        ("total", "total"),
    )
    width = max(len(cost["workload"]) for cost in costs)
    design_width = max(len(name) for cost in costs for name in cost["designs"])
    print(
        f"{'workload':<{width}} {'design':<{design_width}} "
        + " ".join(f"{title:>{max(len(title), 8)}}" for _, title in parts)
    )
    for cost in costs:
        for index, (design, figures) in enumerate(cost["designs"].items()):
            label = cost["workload"] if index == 0 else ""
            cells = " ".join(f"{figures[key]:>{max(len(title), 8)}.2f}" for key, title in parts)
            print(f"{label:<{width}} {design:<{design_width}} {cells}")
    arm = prices.PRICES["lambda_gb_second_arm64"] / prices.PRICES["lambda_gb_second"]
    print(
        "  measured: this run's transitions and invocations; one pair per node: 2 transitions + 1 invocation per\n"
        "  node (the design before batching); durable functions: $8 per 1M operations, one per node, no Step\n"
        "  Functions and no per-node request. DynamoDB and S3 are the measured units, and Lambda GB-s the measured\n"
        "  handler time, in every design: the columns that differ are the orchestration's.\n"
        f"  Lambda GB-s at the x86 price; the template deploys arm64, whose GB-s cost {arm:.2f}x as much."
    )


def _targets(rows: list[dict[str, Any]], costs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each target of the design beside its measured figure (None when this run did not measure it)."""
    by_workload = {row["workload"]: row for row in rows}
    instant = by_workload.get(f"setVariables x{TARGET_NODES}")
    agents = next((row for row in rows if row["workload"].startswith("agentTask")), None)
    instant_cost = next((c for c in costs if c["workload"] == f"setVariables x{TARGET_NODES}"), None)
    measured = {
        "transitions_per_instant_node": instant and instant["transitions_per_node"],
        "invocations_per_instant_node": instant and instant["invocations_per_node"],
        "usd_per_million_instant_nodes": instant_cost and instant_cost["designs"]["measured"]["total"],
        # The run's end state (Completed) is entered once per execution, not per node.
        "transitions_per_call_out_node": agents and agents["transitions_per_node"] - 1 / agents["nodes"],
        "wall_over_floor": instant and instant["floor_ratio"],
    }
    return [
        {
            "target": name,
            "at_most": limit,
            "measured": measured[name],
            "met": measured[name] is not None and measured[name] <= limit,
        }
        for name, limit in TARGETS.items()
    ]


def _print_targets(targets: list[dict[str, Any]]) -> None:
    print(
        f"targets (instant nodes: setVariables x{TARGET_NODES}, all in; a node that calls out: agentTask, the run's "
        "end state apart)"
    )
    width = max(len(target["target"]) for target in targets)
    print(f"{'target':<{width}} {'at most':>8} {'measured':>9}  met")
    for target in targets:
        shown = "-" if target["measured"] is None else f"{target['measured']:.3f}"
        print(f"{target['target']:<{width}} {target['at_most']:>8.2f} {shown:>9}  {'yes' if target['met'] else 'NO'}")


# ------------------------------------------------------------------------------------------------ sections


def _floors(bench: Bench, sizes: list[int], tag: str) -> dict[int, Run]:
    return {size: bench.run_floor(size, f"{size}-{tag}") for size in sizes}


def _combined(first: Run, second: Run) -> Run:
    """Two runs of the same floor as one (their sums): the floor before and after the workflows."""
    return Run(
        workload=first.workload,
        nodes=first.nodes + second.nodes,
        wall_seconds=first.wall_seconds + second.wall_seconds,
        transitions=first.transitions + second.transitions,
        invocations=first.invocations + second.invocations,
        handler_seconds=first.handler_seconds + second.handler_seconds,
        usage=capacity.Usage(),
    )


def _nearest(floors: dict[int, Run], nodes: int) -> Run:
    """The floor whose size is nearest ``nodes`` (by ratio): fixed costs per execution weigh alike."""
    size = min(floors, key=lambda iterations: abs(math.log(iterations / nodes)))
    return floors[size]


def _nodes_section(bench: Bench, sizes: list[int], agent_nodes: int, agent_url: str) -> dict[str, Any]:
    from stepwise import wiring
    from stepwise.local import demo

    floor_sizes = sorted({*sizes, *([agent_nodes] if agent_nodes else []), FLOOR_ITERATIONS})
    before = _floors(bench, floor_sizes, "before")
    runs = [
        bench.measure(f"setVariables x{size}", bench.create_workflow(_set_nodes(size)), runs=size) for size in sizes
    ]
    if agent_nodes:
        agent_id = bench.create_agent(f"{agent_url}/")
        workflow_id = bench.create_workflow(_agent_nodes(agent_nodes, agent_id))
        runs.append(bench.measure(f"agentTask x{agent_nodes}", workflow_id))
    with demo.DemoAgentServer() as agents:
        seeded = demo.seed(wiring.api().store, USER, agents.url)
        runs.append(bench.measure("demo workflow", seeded.workflow_id))
    after = _floors(bench, floor_sizes, "after")
    floors = {size: _combined(before[size], after[size]) for size in floor_sizes}
    rows = []
    for size, run in floors.items():
        row = run.figures(run.wall_seconds * 1000 / run.nodes)
        row["nodes"] = size
        row["wall_ms_per_node_each_run"] = [r.wall_seconds * 1000 / size for r in (before[size], after[size])]
        rows.append(row)
    for run in runs:
        floor_run = _nearest(floors, run.nodes)
        rows.append(run.figures(floor_run.wall_seconds * 1000 / floor_run.nodes))
    print(
        f"nodes (moto {_moto_version()}, the real ASL, handlers in this process; each floor ran before and after "
        "the workflows, its figures are of both runs)"
    )
    _print_table(rows)
    print()
    memory_mb = prices.node_runner_memory_mb(PROJECT_DIR)
    costs = [
        {
            "workload": run.workload,
            "designs": {
                name: {**asdict(cost), "total": cost.total}
                for name, cost in prices.designs(run.per_node_for_prices(), memory_mb).items()
            },
        }
        for run in runs
    ]
    _print_costs(costs, memory_mb)
    print()
    targets = _targets(rows, costs)
    _print_targets(targets)
    floor_ms = {size: run.wall_seconds * 1000 / run.nodes for size, run in floors.items()}
    return {"floor_ms_per_node": floor_ms, "rows": rows, "costs": costs, "memory_mb": memory_mb, "targets": targets}


def _variables_section(bench: Bench, agent_url: str) -> dict[str, Any]:
    small = bench.create_workflow(
        {
            "name": "bench-small-variable",
            "nodes": [
                {"id": f"s{i}", "type": "setVariables", "config": {"values": {f"small{i}": "x"}}}
                for i in range(SMALL_NODES)
            ],
        }
    )
    slow_agent = bench.create_agent(f"{agent_url}/slow")
    ask = {"id": "ask", "type": "agentTask", "config": {"agentId": slow_agent, "prompt": "wait"}}
    slow = bench.create_workflow({"name": "bench-slow-call", "nodes": [ask]})
    found: dict[str, Any] = {}
    print(
        f"variables: a setVariables node that sets one small variable ({SMALL_NODES} in a row, one step; the step's "
        "first read,\nof the group that holds the initial variables, shown apart: once per run), and one cancel "
        f"poll while an agentTask node\nwaits {SLOW_AGENT_SECONDS} s on its agent (every DynamoDB call the node runner "
        "made meanwhile)"
    )
    header = (
        f"{'other variables':>15} {'first read RCU':>14} {'RCU/node':>8} {'WCU/node':>8} {'(GSI WCU)':>9} "
        f"{'reads/node':>10} {'writes/node':>11} {'polls':>5} {'RCU/poll':>8} {'other calls during the call':>27}"
    )
    print(header)
    for label, size in VARIABLE_SIZES.items():
        variables = {"payload": "x" * (size - len('{"payload":""}'))}
        mark = bench.meter.mark()
        run = bench.execute(f"small variable, {label}", small, variables)
        first_read = bench.meter.first_call(mark, scope="step")
        whole = bench.meter.usage(mark, scope="step")
        steps = capacity.Usage(
            dynamodb_reads=whole.dynamodb_reads - 1,
            dynamodb_writes=whole.dynamodb_writes,
            read_units=whole.read_units - first_read.read_units,
            write_units=whole.write_units,
            index_write_units=whole.index_write_units,
            s3_put_class=whole.s3_put_class,
            s3_get_class=whole.s3_get_class,
        )
        mark = bench.meter.mark()
        _Agent.busy.clear()
        bench.execute(f"slow call, {label}", slow, variables)
        window = _Agent.busy[0]
        during = bench.meter.usage(mark, between=window)
        polls = during.dynamodb_reads
        found[label] = {
            "variables_bytes": size,
            "per_node": {
                "read_units": steps.read_units / run.nodes,
                "write_units": steps.all_write_units / run.nodes,
                "index_write_units": steps.index_write_units / run.nodes,
                "dynamodb_reads": steps.dynamodb_reads / run.nodes,
                "dynamodb_writes": steps.dynamodb_writes / run.nodes,
                "s3_calls": (steps.s3_put_class + steps.s3_get_class) / run.nodes,
            },
            "first_read_units": first_read.read_units,
            "cancel_poll": {
                "call_seconds": window[1] - window[0],
                "polls": polls,
                "read_units_per_poll": during.read_units / polls if polls else None,
                "writes_meanwhile": during.dynamodb_writes,
                "write_units_meanwhile": during.all_write_units,
            },
        }
        per_node = found[label]["per_node"]
        other = f"{during.dynamodb_writes} writes, {during.all_write_units:.0f} WCU"
        print(
            f"{label:>15} {first_read.read_units:>14.1f} {per_node['read_units']:>8.2f} "
            f"{per_node['write_units']:>8.2f} "
            f"{per_node['index_write_units']:>9.2f} {per_node['dynamodb_reads']:>10.2f} "
            f"{per_node['dynamodb_writes']:>11.2f} {polls:>5} "
            f"{(during.read_units / polls if polls else 0):>8.2f} {other:>27}"
        )
    print(
        "  first read RCU: the step's read of the newest group, here the first (the initial variables), per run\n"
        "  RCU/node, WCU/node (with the global secondary indexes' share again as (GSI WCU)): units AWS bills per\n"
        "  node, the first read left out; the WCU include the run's one change of its EXECUTION item (PENDING to\n"
        "  COMPLETED, 1 WCU and 2 in the indexes), shared by its nodes; reads/node, writes/node: DynamoDB calls per\n"
        "  node; polls: DynamoDB reads while the agent was answering; RCU/poll: units per poll (a projection reads\n"
        "  the whole item); other calls: writes meanwhile (the log lines of a slow call)"
    )
    return found


def _moto_version() -> str:
    import moto

    return str(getattr(moto, "__version__", "?"))


def _nodes_and_variables(args: argparse.Namespace) -> dict[str, Any]:
    _environment()
    from moto import mock_aws

    from stepwise.local.auth import LocalTokenIssuer
    from stepwise.local.stack import provision, running

    # A profile shows the node path alone: the meter's own calls would crowd it.
    meter = capacity.Meter(enabled=not args.profile)
    profiler = cProfile.Profile() if args.profile else None
    agent = ThreadingHTTPServer(("127.0.0.1", 0), _Agent)
    threading.Thread(target=agent.serve_forever, daemon=True).start()
    agent_url = f"http://127.0.0.1:{agent.server_port}"
    found: dict[str, Any] = {}
    issuer = LocalTokenIssuer()
    with (
        meter.installed(),
        mock_aws(config={"stepfunctions": {"execute_state_machine": True}}),
        issuer.serving(),
    ):
        deployment = provision(PROJECT_DIR)
        deployment.environment.update(issuer.api_environment())
        if "variables" not in args.skip and (limit := _variables_limit(max(VARIABLE_SIZES.values()))):
            deployment.environment["MAX_VARIABLES_BYTES"] = str(limit)
            found["max_variables_bytes"] = limit
            print(f"(MAX_VARIABLES_BYTES set to {limit} for this run: the default refuses 200 KB of variables)")
        bench = Bench(deployment, meter, profiler)
        deployment.handler_for = bench.resolver(deployment.handler_for)  # type: ignore[assignment]
        with running(deployment):
            bench.authorization = f"Bearer {issuer.token(USER)}"
            if "nodes" not in args.skip:
                found["nodes"] = _nodes_section(bench, args.nodes or DEFAULT_NODES, args.agent_nodes, agent_url)
                print()
            if "variables" not in args.skip:
                found["variables"] = _variables_section(bench, agent_url)
                print()
    agent.shutdown()
    found["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS of the process: {found['peak_rss_mb']:.0f} MB")
    if profiler:
        profiler.dump_stats(args.profile)
        print(f"\nprofile of the node-runner invocations (all of them; pstats file {args.profile}), top 25:")
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--nodes", type=int, action="append", help="setVariables workflow size (repeatable; default 10, 100, 1000)"
    )
    parser.add_argument("--agent-nodes", type=int, default=100, help="agentTask workflow size (0: none; default 100)")
    parser.add_argument("--import-rounds", type=int, default=9, help="fresh processes per cold import (default 9)")
    parser.add_argument(
        "--skip",
        action="append",
        default=[],
        choices=["imports", "nodes", "variables", "local-api"],
        help="leave a part out",
    )
    parser.add_argument("--json", type=Path, help="also write every figure to this file as JSON")
    parser.add_argument(
        "--profile", help="cProfile the node-runner invocations into this pstats file (DynamoDB units not metered)"
    )
    args = parser.parse_args()
    report: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "load_before": os.getloadavg()},
        "prices": prices.PRICES,
        "arguments": {key: value for key, value in vars(args).items() if key != "json"},
    }
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    if "imports" not in args.skip:
        report["imports"] = cold_imports.report(PROJECT_DIR, args.import_rounds)
        print()
    if not {"nodes", "variables"} <= set(args.skip):
        report.update(_nodes_and_variables(args))
        print()
    if "local-api" not in args.skip:
        report["local_api"] = local_api.report(PROJECT_DIR)
    report["machine"]["load_after"] = os.getloadavg()
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=str) + "\n")
        print(f"\nfigures written to {args.json}")


if __name__ == "__main__":
    main()
