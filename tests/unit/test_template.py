"""template.yaml and statemachine/execution.asl.json read as data: the rules a reviewer would check by eye."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from stepwise.local.template import (
    create_table_kwargs,
    definition_placeholders,
    function_specs,
    load_template,
    resources_of_type,
    state_machine_definition,
    table_specs,
)
from stepwise.settings import FunctionSettings
from stepwise.store.table import _LONGEST_RUN_DAYS

PROJECT_DIR = Path(__file__).resolve().parents[2]
TERMINAL_TYPES = {"Choice", "Succeed", "Fail"}
TRANSIENT_LAMBDA_ERRORS = {
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
}
# Throttled: the node runner's invoke (reserved concurrency), or an AWS call of the step (functions/node_runner/app.py
# raises TransientAwsError for it).
THROTTLES = {"Lambda.TooManyRequestsException", "TransientAwsError"}
# How Lambda and Step Functions name an invocation that died: out of time, out of memory, its process gone.
DIED = {"Lambda.Unknown", "Sandbox.Timedout", "Runtime.ExitError", "Runtime.OutOfMemory"}
# Name properties that are unique only inside their parent (a pool, a role, a table, an API), so a
# literal value cannot collide with another stack's.
PARENT_SCOPED_NAMES = {"GroupName", "PolicyName", "IndexName", "StageName", "AttributeName"}
# Actions IAM grants on no resource ARN at all: the only ones allowed with Resource "*".
ACTIONS_WITHOUT_RESOURCE_LEVEL_PERMISSIONS = {
    "states:SendTaskSuccess",
    "states:SendTaskFailure",
    "scheduler:ListSchedules",
    "logs:CreateLogDelivery",
    "logs:GetLogDelivery",
    "logs:UpdateLogDelivery",
    "logs:DeleteLogDelivery",
    "logs:ListLogDeliveries",
    "logs:PutResourcePolicy",
    "logs:DescribeResourcePolicies",
    "logs:DescribeLogGroups",
}
# notes/CONTRACTS.md, "Environment variables the functions read".
CONTRACT_ENVIRONMENT = {
    "TABLE_NAME",
    "EXECUTION_RETENTION_DAYS",
    "OWNER_CONCURRENCY_LIMIT",
    "IDEMPOTENCY_TABLE_NAME",
    "STATE_MACHINE_ARN",
    "SECRET_PREFIX",
    "ALLOW_PRIVATE_ENDPOINTS",
    "SCHEDULE_GROUP_NAME",
    "SCHEDULER_TARGET_ARN",
    "SCHEDULER_ROLE_ARN",
    "SCHEDULER_DLQ_ARN",
    "POWERTOOLS_SERVICE_NAME",
    "POWERTOOLS_METRICS_NAMESPACE",
    "POWERTOOLS_LOG_LEVEL",
    "POWERTOOLS_TRACE_DISABLED",
    # Empty in AWS; declared so `sam local --env-vars events/env.json` may point at the local stack.
    "AWS_ENDPOINT_URL",
}
# The API function checks bearer tokens itself (stepwise/auth.py): the user pool's issuer, client and keys.
TOKEN_ENVIRONMENT = {"JWT_ISSUER", "JWT_AUDIENCE", "JWKS_URL"}
# The API and the node runner read and write an execution's big values (stepwise/blobs.py).
VALUES_ENVIRONMENT = {"VALUES_BUCKET_NAME"}


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template(PROJECT_DIR)


@pytest.fixture(scope="module")
def state_machine(template: dict[str, Any]) -> dict[str, Any]:
    properties = template["Resources"]["ExecutionStateMachine"]["Properties"]
    substitutions = {name: f"<{name}>" for name in properties["DefinitionSubstitutions"]}
    definition: dict[str, Any] = json.loads(state_machine_definition(PROJECT_DIR, template, substitutions))
    return definition


@pytest.fixture(scope="module")
def states(state_machine: dict[str, Any]) -> dict[str, dict[str, Any]]:
    result: dict[str, dict[str, Any]] = state_machine["States"]
    return result


def _targets(state: dict[str, Any]) -> list[str]:
    targets = [state["Next"]] if "Next" in state else []
    targets += [choice["Next"] for choice in state.get("Choices", [])]
    targets += [state["Default"]] if "Default" in state else []
    targets += [catcher["Next"] for catcher in state.get("Catch", [])]
    return targets


# ---------------------------------------------------------------------------------------------- the ASL


def test_asl_placeholders_equal_the_definition_substitutions(template: dict[str, Any]) -> None:
    properties = template["Resources"]["ExecutionStateMachine"]["Properties"]
    text = (PROJECT_DIR / properties["DefinitionUri"]).read_text()
    assert definition_placeholders(text) == set(properties["DefinitionSubstitutions"])


def test_a_missing_substitution_is_an_error(template: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="NodeRunnerFunctionArn"):
        state_machine_definition(PROJECT_DIR, template, {})


def test_every_state_has_next_or_end(states: dict[str, dict[str, Any]]) -> None:
    for name, state in states.items():
        if state["Type"] in TERMINAL_TYPES:
            assert "Next" not in state, name
            assert "End" not in state, name
        else:
            assert ("Next" in state) != bool(state.get("End")), f"{name} needs exactly one of Next or End"


def test_every_target_exists_and_every_state_is_reachable(
    state_machine: dict[str, Any], states: dict[str, dict[str, Any]]
) -> None:
    assert state_machine["StartAt"] in states
    reachable, frontier = set(), [state_machine["StartAt"]]
    while frontier:
        name = frontier.pop()
        if name in reachable:
            continue
        reachable.add(name)
        for target in _targets(states[name]):
            assert target in states, f"{name} goes to {target}, which does not exist"
            frontier.append(target)
    assert reachable == set(states), f"unreachable: {set(states) - reachable}"


def test_every_task_retries_transient_lambda_errors_and_catches_everything(
    states: dict[str, dict[str, Any]],
) -> None:
    tasks = {name: state for name, state in states.items() if state["Type"] == "Task"}
    assert tasks
    for name, task in tasks.items():
        assert task["Parameters"]["FunctionName"] == "<NodeRunnerFunctionArn>", name
        retriers = task.get("Retry", [])
        retried = {error for retrier in retriers for error in retrier["ErrorEquals"]}
        assert retried >= TRANSIENT_LAMBDA_ERRORS | THROTTLES | DIED, name
        assert "States.ALL" not in retried, name
        assert all(r.get("JitterStrategy") == "FULL" for r in retriers), name
        catchers = task.get("Catch", [])
        assert catchers, name
        assert catchers[-1]["ErrorEquals"] == ["States.ALL"], name
        expected = "ExecutionFailed" if name == "RecordFailure" else "RecordFailure"
        assert catchers[-1]["Next"] == expected, name


def _patience_seconds(retrier: dict[str, Any]) -> float:
    """How long a retrier waits in all before it gives up, on average (full jitter: half of each interval)."""
    interval, rate = retrier.get("IntervalSeconds", 1), retrier.get("BackoffRate", 2.0)
    longest = retrier.get("MaxDelaySeconds", float("inf"))
    return sum(min(interval * rate**attempt, longest) for attempt in range(retrier.get("MaxAttempts", 3))) / 2


def test_a_throttled_step_is_retried_for_minutes_before_the_run_gives_up(states: dict[str, dict[str, Any]]) -> None:
    # A burst of runs meets the node runner's reserved concurrency, or a busy table, for as long as the burst lasts.
    for name, task in states.items():
        if task["Type"] != "Task":
            continue
        for throttle in THROTTLES:
            (retrier,) = [retrier for retrier in task["Retry"] if throttle in retrier["ErrorEquals"]]
            assert _patience_seconds(retrier) >= 300, (name, throttle)
            assert retrier.get("MaxDelaySeconds", 0) <= 60, (name, throttle)  # it tries at least every minute


def test_the_route_covers_every_status_of_the_contract(states: dict[str, dict[str, Any]]) -> None:
    route = states["Route"]
    routed = {choice["StringEquals"]: choice["Next"] for choice in route["Choices"]}
    assert routed == {
        "continue": "RunNode",
        "delay": "Delay",
        "pause": "Pause",
        "approval": "AwaitApproval",
        "done": "Completed",
        "ended": "Canceled",
        "failed": "NodeFailed",
    }
    assert all(choice["Variable"] == "$.step.status" for choice in route["Choices"])
    assert route["Default"] in states


def test_the_normal_loop_is_two_transitions_per_node(states: dict[str, dict[str, Any]]) -> None:
    assert states["RunNode"]["Next"] == "Route"
    assert {"StringEquals": "continue", "Next": "RunNode", "Variable": "$.step.status"} in states["Route"]["Choices"]


# ---------------------------------------------------------------------------------------------- the template


def test_no_function_ships_tests_or_its_own_requirements(template: dict[str, Any]) -> None:
    for logical_id, spec in function_specs(template).items():
        assert spec.code_uri.startswith("functions/"), logical_id
        assert "test" not in spec.code_uri.lower(), logical_id
        folder = PROJECT_DIR / spec.code_uri
        shipped = [p.relative_to(folder).as_posix() for p in folder.rglob("*") if "__pycache__" not in p.parts]
        assert not [p for p in shipped if "test" in p.lower()], f"{logical_id} would ship {shipped}"
        assert "requirements.txt" not in shipped, f"{logical_id}: dependencies belong in the layer"


def test_functions_match_the_contract(template: dict[str, Any]) -> None:
    specs = function_specs(template)
    assert {(s.logical_id, s.code_uri, s.handler) for s in specs.values()} == {
        ("ApiFunction", "functions/api/", "app.lambda_handler"),
        ("NodeRunnerFunction", "functions/node_runner/", "app.lambda_handler"),
        ("SchedulerFunction", "functions/scheduler/", "app.lambda_handler"),
        ("ReconcilerFunction", "functions/reconciler/", "app.lambda_handler"),
    }
    assert set(specs["ApiFunction"].environment_keys) == CONTRACT_ENVIRONMENT | TOKEN_ENVIRONMENT | VALUES_ENVIRONMENT
    # Each leaves out the one variable that would be a circular dependency (see template.yaml).
    assert set(specs["NodeRunnerFunction"].environment_keys) == (CONTRACT_ENVIRONMENT | VALUES_ENVIRONMENT) - {
        "STATE_MACHINE_ARN",
        "SCHEDULER_TARGET_ARN",
    }
    assert set(specs["SchedulerFunction"].environment_keys) == CONTRACT_ENVIRONMENT - {"SCHEDULER_TARGET_ARN"}
    reconciler = (CONTRACT_ENVIRONMENT | {"RECONCILE_GRACE_SECONDS"}) - {"SCHEDULER_TARGET_ARN"}
    assert set(specs["ReconcilerFunction"].environment_keys) == reconciler
    assert specs["ApiFunction"].timeout <= 29
    assert specs["NodeRunnerFunction"].timeout == 330


def test_every_function_has_a_log_group_with_retention(template: dict[str, Any]) -> None:
    log_groups = resources_of_type(template, "AWS::Logs::LogGroup")
    assert all("RetentionInDays" in group["Properties"] for group in log_groups.values())
    names = [group["Properties"].get("LogGroupName") for group in log_groups.values()]
    for logical_id in resources_of_type(template, "AWS::Serverless::Function"):
        assert {"Fn::Sub": f"/aws/lambda/${{{logical_id}}}"} in names, logical_id


def test_no_resource_has_a_fixed_name(template: dict[str, Any]) -> None:
    for logical_id, resource in template["Resources"].items():
        for key, value in (resource.get("Properties") or {}).items():
            if not key.endswith("Name") or key in PARENT_SCOPED_NAMES:
                continue
            fixed = isinstance(value, str) or (
                isinstance(value, dict) and isinstance(value.get("Fn::Sub"), str) and "${" not in value["Fn::Sub"]
            )
            assert not fixed, f"{logical_id}.{key} is a fixed name: {value!r}"


def _statements(template: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    found: list[tuple[str, dict[str, Any]]] = []

    def walk(logical_id: str, node: Any) -> None:
        if isinstance(node, dict):
            if "Effect" in node and "Action" in node:
                found.append((logical_id, node))
            for value in node.values():
                walk(logical_id, value)
        elif isinstance(node, list):
            for value in node:
                walk(logical_id, value)

    for logical_id, resource in template["Resources"].items():
        walk(logical_id, resource.get("Properties"))
    return found


def test_resource_star_only_for_actions_without_resource_level_permissions(template: dict[str, Any]) -> None:
    statements = _statements(template)
    assert statements
    for logical_id, statement in statements:
        resources = statement.get("Resource", [])
        if "*" in (resources if isinstance(resources, list) else [resources]):
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            assert set(actions) <= ACTIONS_WITHOUT_RESOURCE_LEVEL_PERMISSIONS, f"{logical_id}: {actions}"


def test_the_tables_match_the_contract(template: dict[str, Any]) -> None:
    specs = table_specs(template)
    assert set(specs) == {"StepwiseTable", "IdempotencyTable"}
    assert create_table_kwargs(specs["StepwiseTable"], "t") == {
        "TableName": "t",
        "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": [
            {"AttributeName": "PK", "AttributeType": "S"},
            {"AttributeName": "SK", "AttributeType": "S"},
            {"AttributeName": "GSI1PK", "AttributeType": "S"},
            {"AttributeName": "GSI1SK", "AttributeType": "S"},
            {"AttributeName": "GSI2PK", "AttributeType": "S"},
            {"AttributeName": "GSI2SK", "AttributeType": "S"},
            {"AttributeName": "GSI3PK", "AttributeType": "S"},
            {"AttributeName": "GSI3SK", "AttributeType": "S"},
        ],
        "KeySchema": [{"AttributeName": "PK", "KeyType": "HASH"}, {"AttributeName": "SK", "KeyType": "RANGE"}],
        "GlobalSecondaryIndexes": [
            {
                "IndexName": "GSI1",
                "KeySchema": [
                    {"AttributeName": "GSI1PK", "KeyType": "HASH"},
                    {"AttributeName": "GSI1SK", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            },
            {
                "IndexName": "GSI2",
                "KeySchema": [
                    {"AttributeName": "GSI2PK", "KeyType": "HASH"},
                    {"AttributeName": "GSI2SK", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            },
            {
                "IndexName": "GSI3",
                "KeySchema": [
                    {"AttributeName": "GSI3PK", "KeyType": "HASH"},
                    {"AttributeName": "GSI3SK", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "KEYS_ONLY"},
            },
        ],
    }
    assert specs["StepwiseTable"]["TimeToLiveAttribute"] == "expiresAt"
    assert specs["IdempotencyTable"]["KeySchema"] == [{"AttributeName": "id", "KeyType": "HASH"}]
    assert specs["IdempotencyTable"]["TimeToLiveAttribute"] == "expiration"
    for logical_id in specs:
        properties = template["Resources"][logical_id]["Properties"]
        assert properties["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
        assert properties["SSESpecification"] == {"SSEEnabled": True}


# ---------------------------------------------------------------------------------------------- the reader


def test_short_tags_read_into_their_long_form(tmp_path: Path) -> None:
    (tmp_path / "template.yaml").write_text(
        "Resources:\n"
        "  A:\n"
        "    Type: X\n"
        "    Properties:\n"
        "      Ref: !Ref B\n"
        "      Att: !GetAtt B.Outputs.Url\n"
        "      Sub: !Sub 'x-${B}'\n"
        "      If: !If [C, !Ref B, !Ref AWS::NoValue]\n"
        "      Join: !Join ['', [a, !Select [0, !GetAZs '']]]\n"
    )
    properties = load_template(tmp_path)["Resources"]["A"]["Properties"]
    assert properties == {
        "Ref": {"Ref": "B"},
        "Att": {"Fn::GetAtt": ["B", "Outputs.Url"]},
        "Sub": {"Fn::Sub": "x-${B}"},
        "If": {"Fn::If": ["C", {"Ref": "B"}, {"Ref": "AWS::NoValue"}]},
        "Join": {"Fn::Join": ["", ["a", {"Fn::Select": [0, {"Fn::GetAZs": ""}]}]]},
    }


# What each function's code calls (besides DynamoDB, granted by DynamoDBCrudPolicy): a missing grant only
# shows in AWS, never under moto, so it is checked here.
CALLS_BY_FUNCTION = {
    "ApiFunction": {
        "states:StartExecution",
        "states:StopExecution",
        "states:SendTaskSuccess",
        "states:SendTaskFailure",
        "secretsmanager:CreateSecret",
        "secretsmanager:PutSecretValue",
        "secretsmanager:DeleteSecret",
        "scheduler:CreateSchedule",
        "scheduler:UpdateSchedule",
        "scheduler:DeleteSchedule",
        "scheduler:GetSchedule",
        "iam:PassRole",
        "s3:GetObject",
        "s3:PutObject",
    },
    "NodeRunnerFunction": {"secretsmanager:GetSecretValue", "states:SendTaskSuccess", "s3:GetObject", "s3:PutObject"},
    "SchedulerFunction": {"states:StartExecution", "scheduler:GetSchedule", "scheduler:UpdateSchedule", "iam:PassRole"},
    "ReconcilerFunction": {"states:StartExecution", "states:DescribeExecution"},
}


@pytest.mark.parametrize("function", sorted(CALLS_BY_FUNCTION))
def test_every_function_may_make_the_calls_its_code_makes(template: dict[str, Any], function: str) -> None:
    granted: set[str] = set()
    for policy in template["Resources"][function]["Properties"].get("Policies", []):
        for statement in policy.get("Statement", []) if isinstance(policy, dict) else []:
            if statement.get("Effect") == "Allow":
                actions = statement["Action"]
                granted.update(actions if isinstance(actions, list) else [actions])
    assert CALLS_BY_FUNCTION[function] <= granted, CALLS_BY_FUNCTION[function] - granted


def test_a_run_that_ends_outside_the_loop_reaches_the_node_runner(template: dict[str, Any]) -> None:
    event = template["Resources"]["NodeRunnerFunction"]["Properties"]["Events"]["ExecutionEnded"]
    assert event["Type"] == "EventBridgeRule"
    assert set(event["Properties"]["Pattern"]["detail"]["status"]) == {"FAILED", "TIMED_OUT", "ABORTED"}
    template_text = event["Properties"]["InputTransformer"]["InputTemplate"]
    rendered = template_text.replace("<name>", '"exe_x-1"').replace("<status>", "TIMED_OUT")
    assert json.loads(rendered)["action"] == "fail"
    assert json.loads(rendered)["runName"] == "exe_x-1"


def test_a_run_end_that_cannot_be_delivered_is_retried_then_kept_in_an_encrypted_queue(
    template: dict[str, Any],
) -> None:
    properties = template["Resources"]["NodeRunnerFunction"]["Properties"]["Events"]["ExecutionEnded"]["Properties"]
    assert properties["RetryPolicy"]["MaximumRetryAttempts"] > 0
    queue = properties["DeadLetterConfig"]["Arn"]["Fn::GetAtt"][0]
    assert template["Resources"][queue]["Properties"]["SqsManagedSseEnabled"] is True
    policies = resources_of_type(template, "AWS::SQS::QueuePolicy").values()
    assert any({"Ref": queue} in policy["Properties"]["Queues"] for policy in policies)


def test_the_reconciler_runs_every_5_minutes_one_pass_at_a_time(template: dict[str, Any]) -> None:
    properties = template["Resources"]["ReconcilerFunction"]["Properties"]
    (schedule,) = properties["Events"].values()
    assert schedule["Properties"]["Schedule"] == "rate(5 minutes)"
    assert properties["ReservedConcurrentExecutions"] == 1
    assert properties["Timeout"] < 300


def test_no_route_has_an_authorizer_and_the_api_function_checks_tokens_of_the_pool(template: dict[str, Any]) -> None:
    # API Gateway's JWT authorizer answers a refusal with a body of its own; the function answers every 401.
    for logical_id, api in resources_of_type(template, "AWS::Serverless::HttpApi").items():
        assert "Auth" not in (api.get("Properties") or {}), logical_id
    routes = 0
    for logical_id, function in resources_of_type(template, "AWS::Serverless::Function").items():
        for name, event in (function["Properties"].get("Events") or {}).items():
            if event["Type"] == "HttpApi":
                routes += 1
                assert "Auth" not in event["Properties"], f"{logical_id}.{name}"
    assert routes == 3  # the API, its public document, the viewer's pages
    pool = "https://cognito-idp.${AWS::Region}.amazonaws.com/${UserPool}"
    environment = function_specs(template)["ApiFunction"].environment
    assert environment["JWT_ISSUER"] == {"Fn::Sub": pool}
    assert environment["JWT_AUDIENCE"] == {"Ref": "UserPoolClient"}
    assert environment["JWKS_URL"] == {"Fn::Sub": f"{pool}/.well-known/jwks.json"}
    client = template["Resources"]["UserPoolClient"]["Properties"]
    assert client["UserPoolId"] == {"Ref": "UserPool"}


# ---------------------------------------------------------------------------------------------- the values' bucket

VALUES_BUCKET_ARN = {"Fn::GetAtt": ["ValuesBucket", "Arn"]}
VALUES_OBJECTS_ARN = {"Fn::Sub": "${ValuesBucket.Arn}/executions/*"}


def test_the_values_bucket_is_encrypted_private_owned_by_the_stack_and_unversioned(template: dict[str, Any]) -> None:
    bucket = template["Resources"]["ValuesBucket"]
    properties = bucket["Properties"]

    encryption = properties["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert [rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] for rule in encryption] in (["AES256"], ["aws:kms"])
    assert properties["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    assert properties["OwnershipControls"] == {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}
    # Unversioned: an expired or deleted value is gone, not kept as a noncurrent version.
    assert "VersioningConfiguration" not in properties
    # Kept with the table whose items name its objects.
    assert bucket["DeletionPolicy"] == template["Resources"]["StepwiseTable"]["DeletionPolicy"] == "Retain"


def test_the_values_bucket_refuses_every_request_without_tls(template: dict[str, Any]) -> None:
    policies = [
        policy["Properties"]["PolicyDocument"]["Statement"]
        for policy in resources_of_type(template, "AWS::S3::BucketPolicy").values()
        if policy["Properties"]["Bucket"] == {"Ref": "ValuesBucket"}
    ]
    assert len(policies) == 1
    denials = [{k: v for k, v in statement.items() if k != "Sid"} for statement in policies[0]]
    assert {
        "Effect": "Deny",
        "Principal": "*",
        "Action": "s3:*",
        "Resource": [VALUES_BUCKET_ARN, {"Fn::Sub": "${ValuesBucket.Arn}/*"}],
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
    } in denials


def test_values_expire_with_the_execution_retention_never_before_an_item_that_names_them(
    template: dict[str, Any],
) -> None:
    # Given the one retention the functions' TTLs and the bucket's lifecycle both come from
    parameter = template["Parameters"]["ExecutionRetentionDays"]
    environment = template["Globals"]["Function"]["Environment"]["Variables"]
    assert environment["EXECUTION_RETENTION_DAYS"] == {"Ref": "ExecutionRetentionDays"}
    assert parameter["Default"] == FunctionSettings.model_fields["execution_retention_days"].default

    # Then 0 (executions kept forever) has no lifecycle rule, and any other retention its rule on executions/
    assert template["Conditions"]["KeepExecutionsForever"] == {"Fn::Equals": [{"Ref": "ExecutionRetentionDays"}, "0"]}
    condition, forever, lifecycle = template["Resources"]["ValuesBucket"]["Properties"]["LifecycleConfiguration"][
        "Fn::If"
    ]
    assert (condition, forever) == ("KeepExecutionsForever", {"Ref": "AWS::NoValue"})
    [rule] = lifecycle["Rules"]
    assert (rule["Status"], rule["Prefix"]) == ("Enabled", "executions/")
    assert rule["ExpirationInDays"] == {
        "Fn::FindInMap": ["ValuesLifecycle", {"Ref": "ExecutionRetentionDays"}, "ExpirationDays"]
    }
    # S3 counts from a value's writing, the table from the run's end: a value outlives the retention by the
    # longest a run lasts, the margin the store gives the items it writes mid-run.
    rows = template["Mappings"]["ValuesLifecycle"]
    assert {int(days) for days in rows} == {int(days) for days in parameter["AllowedValues"]} - {0}
    for days, row in rows.items():
        assert row == {"ExpirationDays": int(days) + _LONGEST_RUN_DAYS}, days


def _granted(template: dict[str, Any], function: str, prefix: str) -> set[tuple[str, str]]:
    """(action, resource) pairs a function's policies allow, for the actions starting with ``prefix``."""
    granted: set[tuple[str, str]] = set()
    for policy in template["Resources"][function]["Properties"].get("Policies", []):
        for statement in policy.get("Statement", []) if isinstance(policy, dict) else []:
            if statement.get("Effect") != "Allow":
                continue
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
            granted |= {
                (action, json.dumps(resource, sort_keys=True))
                for action in actions
                if action.startswith(prefix)
                for resource in resources
            }
    return granted


def test_the_values_are_read_and_written_by_the_api_and_the_node_runner_only(template: dict[str, Any]) -> None:
    objects, bucket = json.dumps(VALUES_OBJECTS_ARN, sort_keys=True), json.dumps(VALUES_BUCKET_ARN, sort_keys=True)
    # s3:ListBucket only makes S3 answer a missing value 404 (BlobNotFound) rather than 403; the API writes the
    # values a rerun copies from its source.
    assert _granted(template, "ApiFunction", "s3:") == {
        ("s3:GetObject", objects),
        ("s3:PutObject", objects),
        ("s3:ListBucket", bucket),
    }
    assert _granted(template, "NodeRunnerFunction", "s3:") == {
        ("s3:GetObject", objects),
        ("s3:PutObject", objects),
        ("s3:ListBucket", bucket),
    }
    assert _granted(template, "SchedulerFunction", "s3:") == set()
    specs = function_specs(template)
    for function in ("ApiFunction", "NodeRunnerFunction"):
        assert specs[function].environment["VALUES_BUCKET_NAME"] == {"Ref": "ValuesBucket"}, function


def test_nothing_is_allowed_every_s3_action_or_s3_on_every_resource(template: dict[str, Any]) -> None:
    for logical_id, statement in _statements(template):
        if statement["Effect"] != "Allow":
            continue
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        resources = statement.get("Resource", [])
        s3_actions = [action for action in actions if action.startswith("s3:")]
        assert "s3:*" not in s3_actions, logical_id
        assert not (s3_actions and "*" in (resources if isinstance(resources, list) else [resources])), logical_id
