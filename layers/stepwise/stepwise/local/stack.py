"""Deploy the template's resources into moto (in process, or a moto server) and route Lambda to our code.

What ``sam deploy`` creates in AWS, this creates in moto from the same template.yaml: the tables (same
key schema), the values' bucket, the state machine (the real ASL file, with its substitutions filled), one
moto Lambda function per template function (whose invokes run our handlers in this process), the schedule
group and its dead-letter queue. The environment it returns is what the template gives the functions.
"""

from __future__ import annotations

import io
import json
import os
import threading
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3

from stepwise.local.lambda_routing import route_lambda_invokes
from stepwise.local.partition_queries import queries_read_one_partition
from stepwise.local.template import (
    FunctionSpec,
    create_tables,
    function_specs,
    load_handler,
    load_template,
    state_machine_definition,
)

ACCOUNT = "123456789012"
PREFIX = "stepwise-local"


@dataclass
class Deployment:
    """The names and ARNs of what was created, and the functions' environment."""

    project_dir: Path
    region: str
    environment: dict[str, str]
    function_names: dict[str, str]
    state_machine_arn: str
    values_bucket: str = ""
    specs: dict[str, FunctionSpec] = field(default_factory=dict)

    def handler_for(self, function_name: str) -> Any:
        """The project's handler behind a moto function name (or ARN)."""
        name = function_name.rsplit(":", 1)[-1] if function_name.startswith("arn:") else function_name
        for logical_id, deployed in self.function_names.items():
            if deployed == name:
                return load_handler(self.project_dir, self.specs[logical_id])
        raise KeyError(f"no local function named {function_name}")


def project_root() -> Path:
    """The checkout that holds template.yaml (the current directory, or STEPWISE_PROJECT_DIR)."""
    root = Path(os.environ.get("STEPWISE_PROJECT_DIR", Path.cwd()))
    for candidate in (root, *root.parents):
        if (candidate / "template.yaml").exists():
            return candidate
    raise FileNotFoundError("template.yaml not found: run from the stepwise checkout or set STEPWISE_PROJECT_DIR")


def _zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("app.py", "def lambda_handler(event, context):\n    return None\n")
    return buffer.getvalue()


_dynamodb_lock = threading.RLock()


def serialize_dynamodb() -> None:
    """Make moto's DynamoDB take one request at a time, as real DynamoDB's consistency lets callers assume.

    moto's tables are plain dicts: a Query iterating a table while another thread's PutItem adds to it
    fails with "dictionary changed size during iteration". The local stack and the tests run the API,
    the node runner and Step Functions' threads against one moto in one process, so every DynamoDB
    request goes through one lock (DynamoDB requests never call back into moto, so this cannot deadlock).
    """
    from moto.dynamodb.responses import DynamoHandler

    if getattr(DynamoHandler.call_action, "_stepwise_serialized", False):
        return
    original = DynamoHandler.call_action

    def call_action(self: Any) -> Any:
        with _dynamodb_lock:
            return original(self)

    call_action._stepwise_serialized = True  # type: ignore[attr-defined]
    DynamoHandler.call_action = call_action  # type: ignore[method-assign]


def provision(project_dir: Path, region: str = "us-east-1", *, allow_private_endpoints: bool = True) -> Deployment:
    """Create the template's resources in the active moto and return the functions' environment."""
    serialize_dynamodb()
    template = load_template(project_dir)
    session = boto3.session.Session(region_name=region)
    dynamodb = session.client("dynamodb")
    table_names = {"StepwiseTable": f"{PREFIX}-table", "IdempotencyTable": f"{PREFIX}-idempotency"}
    existing = set(dynamodb.list_tables()["TableNames"])
    create_tables(dynamodb, template, {k: v for k, v in table_names.items() if v not in existing})
    values_bucket = _create_values_bucket(session, template, region)

    iam = session.client("iam")
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ],
    }
    try:
        role_arn = iam.create_role(RoleName=f"{PREFIX}-role", AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    except iam.exceptions.EntityAlreadyExistsException:
        role_arn = iam.get_role(RoleName=f"{PREFIX}-role")["Role"]["Arn"]

    lambda_client = session.client("lambda")
    specs = function_specs(template)
    function_names: dict[str, str] = {}
    function_arns: dict[str, str] = {}
    for logical_id, spec in specs.items():
        name = f"{PREFIX}-{logical_id}"
        try:
            arn = lambda_client.get_function(FunctionName=name)["Configuration"]["FunctionArn"]
        except lambda_client.exceptions.ResourceNotFoundException:
            arn = lambda_client.create_function(
                FunctionName=name,
                Runtime="python3.13",
                Role=role_arn,
                Handler=spec.handler,
                Code={"ZipFile": _zip()},
                Timeout=spec.timeout,
                MemorySize=spec.memory,
            )["FunctionArn"]
        function_names[logical_id] = name
        function_arns[logical_id] = arn

    sfn = session.client("stepfunctions")
    definition = state_machine_definition(
        project_dir, template, {"NodeRunnerFunctionArn": function_arns["NodeRunnerFunction"]}
    )
    machine_name = f"{PREFIX}-execution"
    machines = {m["name"]: m["stateMachineArn"] for m in sfn.list_state_machines()["stateMachines"]}
    if machine_name in machines:
        state_machine_arn = machines[machine_name]
        sfn.update_state_machine(stateMachineArn=state_machine_arn, definition=definition)
    else:
        state_machine_arn = sfn.create_state_machine(
            name=machine_name, definition=definition, roleArn=role_arn, type="STANDARD"
        )["stateMachineArn"]

    scheduler = session.client("scheduler")
    group = f"{PREFIX}-schedules"
    if group not in {g["Name"] for g in scheduler.list_schedule_groups()["ScheduleGroups"]}:
        scheduler.create_schedule_group(Name=group)
    sqs = session.client("sqs")
    queue_url = sqs.create_queue(QueueName=f"{PREFIX}-schedule-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]

    environment = {
        "TABLE_NAME": table_names["StepwiseTable"],
        "IDEMPOTENCY_TABLE_NAME": table_names["IdempotencyTable"],
        "VALUES_BUCKET_NAME": values_bucket,
        "STATE_MACHINE_ARN": state_machine_arn,
        "SECRET_PREFIX": f"{PREFIX}/agents/",
        "ALLOW_PRIVATE_ENDPOINTS": "true" if allow_private_endpoints else "false",
        "SCHEDULE_GROUP_NAME": group,
        "SCHEDULER_TARGET_ARN": function_arns["SchedulerFunction"],
        "SCHEDULER_ROLE_ARN": role_arn,
        "SCHEDULER_DLQ_ARN": dlq_arn,
        "POWERTOOLS_SERVICE_NAME": "stepwise",
        "POWERTOOLS_METRICS_NAMESPACE": "Stepwise",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_METRICS_DISABLED": "true",
        "AWS_DEFAULT_REGION": region,
        "AWS_REGION": region,
    }
    return Deployment(
        project_dir=project_dir,
        region=region,
        environment=environment,
        function_names=function_names,
        state_machine_arn=state_machine_arn,
        specs=specs,
        values_bucket=values_bucket,
    )


def _create_values_bucket(session: boto3.session.Session, template: Mapping[str, Any], region: str) -> str:
    """The template's ValuesBucket in moto (created once; a second provision finds it)."""
    if "ValuesBucket" not in template["Resources"]:
        raise KeyError("template.yaml has no ValuesBucket")
    name = f"{PREFIX}-values"
    s3 = session.client("s3")
    if name not in {bucket["Name"] for bucket in s3.list_buckets().get("Buckets", [])}:
        # Outside us-east-1, S3 wants the region named; in it, it refuses the name.
        where = {} if region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": region}}
        s3.create_bucket(Bucket=name, **where)  # type: ignore[arg-type]
    return name


@contextmanager
def environment(values: Mapping[str, str], drop: Sequence[str] = ()) -> Iterator[None]:
    """Set ``values`` (and unset ``drop``) in os.environ for the duration, then put everything back."""
    saved = {key: os.environ.get(key) for key in [*values, *drop]}
    for key in drop:
        os.environ.pop(key, None)
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextmanager
def running(deployment: Deployment) -> Iterator[Deployment]:
    """Apply the deployment's environment to this process, route Lambda invokes to our handlers, and let a Query
    read one partition (:mod:`stepwise.local.partition_queries`)."""
    from stepwise import wiring

    with environment(deployment.environment):
        wiring.reset()
        try:
            with route_lambda_invokes(deployment.handler_for), queries_read_one_partition():
                yield deployment
        finally:
            wiring.reset()
