"""What a million nodes cost in AWS at published prices, from what the bench measured per node.

Three designs side by side, each from the same measured DynamoDB units and S3 calls per node:

- ``measured``: the transitions and node-runner invocations this run counted.
- ``one pair per node``: the design before instant nodes ran together: 2 state transitions and 1 invocation
  per node.
- ``durable functions``: AWS Lambda durable functions, one operation per node, no Step Functions; the node's
  compute is billed as Lambda duration as in the other designs, and its requests are left out (one per
  execution, not per node).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

NODES = 1_000_000

# Published on-demand prices, us-east-1, in USD.
PRICES: dict[str, float] = {
    # aws.amazon.com/step-functions/pricing: Standard workflows, per state transition.
    "step_functions_transition": 0.025 / 1_000,
    # aws.amazon.com/lambda/pricing: per request, and per GB-second of duration (x86; issue 12's figure).
    "lambda_request": 0.20 / 1_000_000,
    "lambda_gb_second": 0.0000166667,
    # aws.amazon.com/lambda/pricing: Arm (the template's Architectures), per GB-second; printed as a footnote.
    "lambda_gb_second_arm64": 0.0000133334,
    # aws.amazon.com/lambda/pricing, Lambda durable functions: per durable operation (issue 12's figure).
    "durable_operation": 8.00 / 1_000_000,
    # aws.amazon.com/dynamodb/pricing/on-demand: per write request unit and per read request unit.
    "dynamodb_write_unit": 0.625 / 1_000_000,
    "dynamodb_read_unit": 0.125 / 1_000_000,
    # aws.amazon.com/s3/pricing, S3 Standard requests: PUT, COPY, POST, LIST; GET, SELECT and all others.
    "s3_put_class": 0.005 / 1_000,
    "s3_get_class": 0.0004 / 1_000,
}


def node_runner_memory_mb(project_dir: Path) -> int:
    """MemorySize of NodeRunnerFunction in template.yaml (its own, else the Globals', else Lambda's default)."""
    from stepwise.local.template import function_specs, load_template

    return int(function_specs(load_template(project_dir))["NodeRunnerFunction"].memory)


@dataclass(frozen=True)
class PerNode:
    """What one node took, on average."""

    transitions: float
    invocations: float
    handler_seconds_per_invocation: float
    read_units: float
    write_units: float
    s3_put_class: float
    s3_get_class: float


@dataclass(frozen=True)
class Cost:
    """USD per ``NODES`` nodes, by what is billed."""

    step_functions: float
    lambda_requests: float
    lambda_duration: float
    durable_operations: float
    dynamodb_reads: float
    dynamodb_writes: float
    s3: float

    @property
    def total(self) -> float:
        """Everything."""
        return (
            self.step_functions
            + self.lambda_requests
            + self.lambda_duration
            + self.durable_operations
            + self.dynamodb_reads
            + self.dynamodb_writes
            + self.s3
        )


def _cost(per_node: PerNode, memory_mb: int, transitions: float, invocations: float, operations: float) -> Cost:
    # Duration follows the node's work, whichever design runs it: the measured handler time per node.
    gb_seconds = per_node.invocations * per_node.handler_seconds_per_invocation * memory_mb / 1024
    return Cost(
        step_functions=NODES * transitions * PRICES["step_functions_transition"],
        lambda_requests=NODES * invocations * PRICES["lambda_request"],
        lambda_duration=NODES * gb_seconds * PRICES["lambda_gb_second"],
        durable_operations=NODES * operations * PRICES["durable_operation"],
        dynamodb_reads=NODES * per_node.read_units * PRICES["dynamodb_read_unit"],
        dynamodb_writes=NODES * per_node.write_units * PRICES["dynamodb_write_unit"],
        s3=NODES * (per_node.s3_put_class * PRICES["s3_put_class"] + per_node.s3_get_class * PRICES["s3_get_class"]),
    )


def designs(per_node: PerNode, memory_mb: int) -> dict[str, Cost]:
    """The cost of ``NODES`` nodes as measured, with one transition pair per node, and as durable functions."""
    return {
        "measured": _cost(per_node, memory_mb, per_node.transitions, per_node.invocations, 0.0),
        "one pair per node": _cost(per_node, memory_mb, 2.0, 1.0, 0.0),
        "durable functions": _cost(per_node, memory_mb, 0.0, 0.0, 1.0),
    }
