"""Each handler's cold import time beside a bare ``import boto3``, measured in the same run.

Every sample is a fresh Python process that times one import with ``time.perf_counter`` (interpreter start
excluded), as Lambda's runtime imports ``app`` from the function's directory at a cold start, with the
function's environment from template.yaml (a handler checks its settings at import). Rounds
alternate the targets, so a busy machine slows them alike; the median of the rounds is printed, with its
ratio to boto3's.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
from pathlib import Path

HANDLERS = ("api", "node_runner", "scheduler")
# The template's Globals that the import itself reads (the X-Ray SDK is only imported when tracing is on).
ENVIRONMENT = {
    "POWERTOOLS_SERVICE_NAME": "stepwise",
    "POWERTOOLS_METRICS_NAMESPACE": "Stepwise",
    "POWERTOOLS_TRACE_DISABLED": "true",
    "POWERTOOLS_LOG_LEVEL": "INFO",
    "AWS_DEFAULT_REGION": "us-east-1",
}
_TIMED = "import sys, time\n{setup}\nbegan = time.perf_counter()\nimport {module}\nprint(time.perf_counter() - began)\n"


def _function_environment(project_dir: Path, target: str) -> dict[str, str]:
    """The template's variables for the function in ``functions/<target>``: its literal values, and a stand-in
    for each value CloudFormation would fill in (a table name, an ARN)."""
    from stepwise.local.template import function_specs, load_template

    template = load_template(project_dir)
    defaults = {name: str(p["Default"]) for name, p in (template.get("Parameters") or {}).items() if "Default" in p}

    def literal(key: str, value: object) -> str:
        if isinstance(value, str):
            return value
        if isinstance(value, dict) and value.get("Ref") in defaults:  # a stack parameter: its default
            return defaults[value["Ref"]]
        return f"bench-{key.lower()}"

    for spec in function_specs(template).values():
        if spec.code_uri.rstrip("/") == f"functions/{target}":
            return {key: literal(key, value) for key, value in spec.environment.items()}
    return {}


def _sample(project_dir: Path, target: str) -> float:
    environment = dict(os.environ)
    if target == "boto3":
        code = _TIMED.format(setup="", module="boto3")
    else:
        code = _TIMED.format(setup=f"sys.path.insert(0, {str(project_dir / 'functions' / target)!r})", module="app")
        environment.update(_function_environment(project_dir, target))
    environment.update(ENVIRONMENT)
    answer = subprocess.run(
        [sys.executable, "-c", code],
        env=environment,
        cwd=project_dir,
        capture_output=True,
        text=True,
        check=True,
    )
    return float(answer.stdout)


def measure(project_dir: Path, rounds: int) -> dict[str, float]:
    """Median seconds to import boto3 and each handler, over ``rounds`` fresh processes each."""
    targets = ("boto3", *HANDLERS)
    samples: dict[str, list[float]] = {target: [] for target in targets}
    for round_ in range(rounds):
        for target in targets[round_ % len(targets) :] + targets[: round_ % len(targets)]:
            samples[target].append(_sample(project_dir, target))
    return {target: statistics.median(values) for target, values in samples.items()}


def report(project_dir: Path, rounds: int) -> dict[str, float]:
    """Print the table; the medians in milliseconds."""
    medians = measure(project_dir, rounds)
    boto3 = medians["boto3"]
    print(f"cold imports (median of {rounds} fresh processes each; ratio to a bare `import boto3`)")
    print(f"{'import':>22} {'ms':>7} {'ratio':>6}")
    print(f"{'boto3':>22} {boto3 * 1000:>7.1f} {1.0:>6.2f}")
    for handler in HANDLERS:
        seconds = medians[handler]
        print(f"{'functions/' + handler:>22} {seconds * 1000:>7.1f} {seconds / boto3:>6.2f}")
    return {target: seconds * 1000 for target, seconds in medians.items()}
