"""Deploy the template's resources into moto (in process, or a moto server) and route Lambda to our code.

What ``sam deploy`` creates in AWS, this creates in moto from the same template.yaml: the tables (same
key schema), the values' bucket, the state machine (the real ASL file, with its substitutions filled), one
moto Lambda function per template function (whose invokes run our handlers in this process), the schedule
group and its dead-letter queue. The environment it returns is what the template gives the functions.
:meth:`Deployment.reset` empties what running the service fills, so one deployment can serve many tests.
"""

from __future__ import annotations

import io
import json
import os
import threading
import time
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3

from stepwise.local.early_stops import stops_wait_for_the_run
from stepwise.local.lambda_routing import FaultDecider, route_lambda_invokes
from stepwise.local.partition_queries import queries_read_one_partition
from stepwise.local.template import (
    FunctionSpec,
    create_tables,
    function_specs,
    load_handler,
    load_template,
    state_machine_definition,
)
from stepwise.local.transactions import cheap_transactions

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
    table_names: dict[str, str] = field(default_factory=dict)
    schedule_dlq_url: str = ""
    # Clients and table keys reset() reuses: building a boto3 client costs more than most calls to moto.
    _clients: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    _table_keys: dict[str, list[str]] = field(default_factory=dict, repr=False, compare=False)

    def handler_for(self, function_name: str) -> Any:
        """The project's handler behind a moto function name (or ARN)."""
        name = function_name.rsplit(":", 1)[-1] if function_name.startswith("arn:") else function_name
        for logical_id, deployed in self.function_names.items():
            if deployed == name:
                return load_handler(self.project_dir, self.specs[logical_id])
        raise KeyError(f"no local function named {function_name}")

    def exists(self) -> bool:
        """Whether the deployment is still there: moto drops everything when a mock of its starts afresh."""
        sfn = self._client("stepfunctions")
        try:
            sfn.describe_state_machine(stateMachineArn=self.state_machine_arn)
        except sfn.exceptions.StateMachineDoesNotExist:
            return False
        return True

    def reset(self) -> None:
        """Empty what running the service fills, and keep every resource: the deployment as provisioned.

        Stops the state machine's running executions and forgets all of them, deletes every item of
        the tables, every schedule of the group, the agents' secrets, the dead-letter queue's
        messages and the values' bucket's objects. Tests share one deployment this way: it costs a few
        calls to moto, where a new deployment parses the ASL and creates a dozen resources. The
        environment of this process and the routing of Lambda invokes are the caller's (see :func:`running`).
        """
        self.stop_executions()
        _forget_executions(self.region, self.state_machine_arn)
        for table_name in self.table_names.values():
            self._empty_table(table_name)
        self._delete_schedules()
        self._delete_secrets()
        self._drain_queue()
        self._empty_bucket()

    def stop_executions(self, wait_seconds: float = 0.0) -> list[str]:
        """Stop the state machine's running executions and return their ARNs.

        With ``wait_seconds``, wait that long at most for them to leave RUNNING, so that none is still
        writing when the caller goes on (moto keeps one that waits for a task token RUNNING after a stop).
        """
        sfn = self._client("stepfunctions")
        arns = [
            execution["executionArn"]
            for page in sfn.get_paginator("list_executions").paginate(
                stateMachineArn=self.state_machine_arn, statusFilter="RUNNING"
            )
            for execution in page["executions"]
        ]
        for arn in arns:
            _stop_execution(sfn, arn)
        deadline = time.monotonic() + wait_seconds
        waiting = list(arns)
        while waiting and time.monotonic() < deadline:
            time.sleep(0.01)
            waiting = [arn for arn in waiting if sfn.describe_execution(executionArn=arn)["status"] == "RUNNING"]
        return arns

    def _empty_bucket(self) -> None:
        if not self.values_bucket:
            return
        s3 = self._client("s3")
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=self.values_bucket):
            keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
            if keys:
                s3.delete_objects(Bucket=self.values_bucket, Delete={"Objects": keys})

    def _client(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = boto3.session.Session(region_name=self.region).client(service)  # type: ignore[call-overload]
        return self._clients[service]

    def _empty_table(self, table_name: str) -> None:
        dynamodb = self._client("dynamodb")
        if table_name not in self._table_keys:
            schema = dynamodb.describe_table(TableName=table_name)["Table"]["KeySchema"]
            self._table_keys[table_name] = [key["AttributeName"] for key in schema]
        keys = self._table_keys[table_name]
        names = {f"#k{index}": name for index, name in enumerate(keys)}
        for page in dynamodb.get_paginator("scan").paginate(
            TableName=table_name, ProjectionExpression=", ".join(names), ExpressionAttributeNames=names
        ):
            items = page["Items"]
            for start in range(0, len(items), 25):  # BatchWriteItem's limit
                requests = [{"DeleteRequest": {"Key": item}} for item in items[start : start + 25]]
                while requests:
                    answer = dynamodb.batch_write_item(RequestItems={table_name: requests})
                    requests = answer.get("UnprocessedItems", {}).get(table_name, [])

    def _delete_schedules(self) -> None:
        scheduler = self._client("scheduler")
        group = self.environment["SCHEDULE_GROUP_NAME"]
        names = [
            schedule["Name"]
            for page in scheduler.get_paginator("list_schedules").paginate(GroupName=group)
            for schedule in page["Schedules"]
        ]
        for name in names:
            scheduler.delete_schedule(GroupName=group, Name=name)

    def _delete_secrets(self) -> None:
        secrets = self._client("secretsmanager")
        prefix = self.environment["SECRET_PREFIX"]
        names = [
            secret["Name"]
            for page in secrets.get_paginator("list_secrets").paginate()
            for secret in page["SecretList"]
            if secret["Name"].startswith(prefix)
        ]
        for name in names:
            secrets.delete_secret(SecretId=name, ForceDeleteWithoutRecovery=True)

    def _drain_queue(self) -> None:
        # Received and deleted rather than purged: SQS (and moto) refuse a second purge within 60 s.
        if not self.schedule_dlq_url:
            return
        sqs = self._client("sqs")
        while messages := sqs.receive_message(QueueUrl=self.schedule_dlq_url, MaxNumberOfMessages=10).get(
            "Messages", []
        ):
            sqs.delete_message_batch(
                QueueUrl=self.schedule_dlq_url,
                Entries=[{"Id": str(index), "ReceiptHandle": m["ReceiptHandle"]} for index, m in enumerate(messages)],
            )


def _stop_execution(sfn: Any, arn: str) -> None:
    # moto fails to stop a run whose thread has not set itself up yet (in process, with an AttributeError):
    # that takes a few milliseconds after StartExecution, so try again for a little while.
    for _ in range(50):
        try:
            sfn.stop_execution(executionArn=arn, cause="the local deployment was reset")
            return
        except Exception:
            time.sleep(0.01)


def _forget_executions(region: str, state_machine_arn: str) -> None:
    """Drop every execution moto holds for the state machine, its history included.

    Step Functions has no call that deletes an execution, and moto keeps each one (about 175 KB) as
    long as the process lives: without this, one test would list another's runs and a long session
    would grow without end. It reaches into moto's backend in this process (in-process mocks and the local
    stack's threaded moto server alike); a running execution's thread, if any, is left to end on its own.
    """
    from moto.stepfunctions.models import stepfunctions_backends
    from moto.stepfunctions.parser.models import stepfunctions_parser_backends

    # Executions live in the parser's backend when they run their ASL, in the plain one when they don't.
    for backends in (stepfunctions_parser_backends, stepfunctions_backends):
        for machine in backends[ACCOUNT][region].state_machines:
            if machine.arn == state_machine_arn:
                machine.executions.clear()


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


# Held by every DynamoDB request moto handles (see serialize_dynamodb); the state journal holds it too, so a
# write is journaled before any read can see it (stepwise.local.persistence).
DYNAMODB_LOCK = threading.RLock()


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
        with DYNAMODB_LOCK:
            return original(self)

    call_action._stepwise_serialized = True  # type: ignore[attr-defined]
    DynamoHandler.call_action = call_action  # type: ignore[method-assign]


def provision(project_dir: Path, region: str = "us-east-1", *, allow_private_endpoints: bool = True) -> Deployment:
    """Create the template's resources in the active moto and return the functions' environment."""
    serialize_dynamodb()
    cheap_transactions()
    stops_wait_for_the_run()
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
        table_names=table_names,
        schedule_dlq_url=queue_url,
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
def running(deployment: Deployment, faults: FaultDecider | None = None) -> Iterator[Deployment]:
    """Apply the deployment's environment to this process, route Lambda invokes to our handlers (injecting the
    faults ``faults`` decides, if any), and let a Query read one partition
    (:mod:`stepwise.local.partition_queries`)."""
    from stepwise import wiring

    with environment(deployment.environment):
        wiring.reset()
        try:
            with route_lambda_invokes(deployment.handler_for, faults), queries_read_one_partition():
                yield deployment
        finally:
            wiring.reset()
