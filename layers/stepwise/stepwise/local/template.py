"""Read ``template.yaml`` so that tests and the local stack build what the deployment builds.

The template is the one description of the tables' keys, the functions' handlers and the state
machine's definition file. Tests and the local stack take them from here instead of retyping them
(STYLE rule 7), so a change to the template changes every local stand-in with it.

CloudFormation short tags (``!Ref X``, ``!GetAtt X.Y``, ``!Sub ...``) are read into their long
form (``{"Ref": "X"}``, ``{"Fn::GetAtt": ["X", "Y"]}``, ``{"Fn::Sub": ...}``); nothing is resolved.
"""

from __future__ import annotations

import copy
import hashlib
import importlib.util
import re
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NotRequired, TypedDict, cast

import yaml

TEMPLATE_FILE = "template.yaml"
# Lambda's defaults when neither the function nor Globals set them.
DEFAULT_TIMEOUT_SECONDS = 3
DEFAULT_MEMORY_MB = 128

LambdaHandler = Callable[[Any, Any], Any]

_PLACEHOLDER = re.compile(r"\$\{([A-Za-z0-9_.:-]+)\}")


class CloudFormationLoader(yaml.SafeLoader):
    """A YAML SafeLoader that also reads CloudFormation's short-form intrinsic tags."""


def _construct_intrinsic(loader: yaml.SafeLoader, tag_suffix: str, node: yaml.Node) -> dict[str, Any]:
    """Turn ``!Name value`` into ``{"Fn::Name": value}`` (``Ref`` and ``Condition`` keep their name)."""
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    elif isinstance(node, yaml.MappingNode):
        value = loader.construct_mapping(node, deep=True)
    else:  # pragma: no cover - yaml has no other node kinds
        message = f"unexpected node for !{tag_suffix}"
        raise yaml.constructor.ConstructorError(None, None, message, node.start_mark)
    if tag_suffix in ("Ref", "Condition"):
        return {tag_suffix: value}
    if tag_suffix == "GetAtt" and isinstance(value, str):
        # "!GetAtt Resource.Attribute.Maybe.Dotted": the logical id never holds a dot.
        resource, _, attribute = value.partition(".")
        return {"Fn::GetAtt": [resource, attribute]}
    return {f"Fn::{tag_suffix}": value}


CloudFormationLoader.add_multi_constructor("!", _construct_intrinsic)


def load_template(project_dir: Path) -> dict[str, Any]:
    """Parse ``<project_dir>/template.yaml`` with CloudFormation short tags in long form."""
    path = Path(project_dir) / TEMPLATE_FILE
    document = yaml.load(path.read_text(encoding="utf-8"), Loader=CloudFormationLoader)  # noqa: S506
    if not isinstance(document, dict) or not isinstance(document.get("Resources"), dict):
        raise ValueError(f"{path} is not a CloudFormation template with a Resources section")
    return cast(dict[str, Any], document)


def resources_of_type(template: Mapping[str, Any], resource_type: str) -> dict[str, dict[str, Any]]:
    """The template's resources of one type, by logical id, in template order."""
    resources: dict[str, dict[str, Any]] = template["Resources"]
    return {logical_id: r for logical_id, r in resources.items() if r.get("Type") == resource_type}


# ---------------------------------------------------------------------------------------------- tables


class TableSpec(TypedDict):
    """What ``create_table`` needs to build one of the template's tables, plus its TTL attribute.

    Pass it through :func:`create_table_kwargs` (which drops ``TimeToLiveAttribute``) to get the
    keyword arguments for boto3's ``create_table``.
    """

    KeySchema: list[dict[str, str]]
    AttributeDefinitions: list[dict[str, str]]
    BillingMode: str
    GlobalSecondaryIndexes: NotRequired[list[dict[str, Any]]]
    LocalSecondaryIndexes: NotRequired[list[dict[str, Any]]]
    ProvisionedThroughput: NotRequired[dict[str, int]]
    TimeToLiveAttribute: str | None


def table_specs(template: Mapping[str, Any]) -> dict[str, TableSpec]:
    """Map each ``AWS::DynamoDB::Table``'s logical id to the key schema the template gives it."""
    specs: dict[str, TableSpec] = {}
    for logical_id, resource in resources_of_type(template, "AWS::DynamoDB::Table").items():
        props: dict[str, Any] = copy.deepcopy(resource.get("Properties", {}))
        ttl = props.get("TimeToLiveSpecification") or {}
        spec: TableSpec = {
            "KeySchema": props["KeySchema"],
            "AttributeDefinitions": props["AttributeDefinitions"],
            "BillingMode": props.get("BillingMode", "PROVISIONED"),
            "TimeToLiveAttribute": ttl.get("AttributeName") if ttl.get("Enabled") else None,
        }
        if "ProvisionedThroughput" in props:
            spec["ProvisionedThroughput"] = props["ProvisionedThroughput"]
        if props.get("GlobalSecondaryIndexes"):
            spec["GlobalSecondaryIndexes"] = _indexes(props["GlobalSecondaryIndexes"])
        if props.get("LocalSecondaryIndexes"):
            spec["LocalSecondaryIndexes"] = _indexes(props["LocalSecondaryIndexes"])
        specs[logical_id] = spec
    return specs


def _indexes(indexes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    # Only what create_table accepts; contributor insights, warm throughput and the like stay out.
    allowed = ("IndexName", "KeySchema", "Projection", "ProvisionedThroughput")
    return [{k: v for k, v in index.items() if k in allowed} for index in indexes]


def create_table_kwargs(spec: TableSpec, table_name: str) -> dict[str, Any]:
    """The keyword arguments for boto3 ``create_table`` that build ``spec`` under ``table_name``."""
    kwargs: dict[str, Any] = {k: copy.deepcopy(v) for k, v in spec.items() if k != "TimeToLiveAttribute"}
    kwargs["TableName"] = table_name
    return kwargs


def create_tables(dynamodb_client: Any, template: Mapping[str, Any], table_names: Mapping[str, str]) -> None:
    """Create each named table (logical id -> table name) as the template defines it, TTL included."""
    specs = table_specs(template)
    for logical_id, table_name in table_names.items():
        spec = specs[logical_id]
        dynamodb_client.create_table(**create_table_kwargs(spec, table_name))
        if spec["TimeToLiveAttribute"]:
            dynamodb_client.update_time_to_live(
                TableName=table_name,
                TimeToLiveSpecification={"AttributeName": spec["TimeToLiveAttribute"], "Enabled": True},
            )


# ---------------------------------------------------------------------------------------------- functions


@dataclass(frozen=True)
class FunctionSpec:
    """One ``AWS::Serverless::Function`` as deployed: its own properties merged over ``Globals``."""

    logical_id: str
    code_uri: str
    handler: str
    timeout: int
    memory: int
    environment_keys: tuple[str, ...]
    # The template's raw values (intrinsics still as dicts); the local stack resolves them itself.
    environment: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)


def function_specs(template: Mapping[str, Any]) -> dict[str, FunctionSpec]:
    """Map each ``AWS::Serverless::Function``'s logical id to its handler, limits and environment."""
    globals_: dict[str, Any] = (template.get("Globals") or {}).get("Function") or {}
    global_env: dict[str, Any] = (globals_.get("Environment") or {}).get("Variables") or {}
    specs: dict[str, FunctionSpec] = {}
    for logical_id, resource in resources_of_type(template, "AWS::Serverless::Function").items():
        props: dict[str, Any] = resource.get("Properties", {})

        def prop(name: str, default: Any, props: dict[str, Any] = props) -> Any:
            return props.get(name, globals_.get(name, default))

        own_env: dict[str, Any] = (props.get("Environment") or {}).get("Variables") or {}
        environment = {**global_env, **own_env}  # SAM merges the maps; the function's value wins
        code_uri = prop("CodeUri", None)
        handler = prop("Handler", None)
        if not isinstance(code_uri, str) or not isinstance(handler, str):
            raise ValueError(f"{logical_id}: CodeUri and Handler must be plain strings for the local stack")
        specs[logical_id] = FunctionSpec(
            logical_id=logical_id,
            code_uri=code_uri,
            handler=handler,
            timeout=int(prop("Timeout", DEFAULT_TIMEOUT_SECONDS)),
            memory=int(prop("MemorySize", DEFAULT_MEMORY_MB)),
            environment_keys=tuple(sorted(environment)),
            environment=environment,
        )
    return specs


_handlers: dict[tuple[str, str], LambdaHandler] = {}
_handlers_lock = threading.Lock()


def load_handler(project_dir: Path, spec: FunctionSpec) -> LambdaHandler:
    """Import the function's handler file the way Lambda does and return the handler (cached).

    ``Handler: app.lambda_handler`` with ``CodeUri: functions/api/`` loads
    ``functions/api/app.py`` by file location under a module name of its own, so three ``app.py``
    files never collide and ``sys.path`` is left alone. A handler file imports the ``stepwise``
    package, never a sibling module (there is none on ``sys.path``, as there would be in Lambda).
    """
    module_path, _, function_name = spec.handler.rpartition(".")
    if not module_path or not function_name:
        raise ValueError(f"{spec.logical_id}: handler {spec.handler!r} is not 'module.function'")
    path = (Path(project_dir) / spec.code_uri / f"{module_path.replace('.', '/')}.py").resolve()
    key = (str(path), function_name)
    with _handlers_lock:
        cached = _handlers.get(key)
        if cached is not None:
            return cached
        digest = hashlib.sha256(str(path).encode()).hexdigest()[:12]
        module_name = f"_stepwise_handler_{spec.logical_id}_{digest}"
        module_spec = importlib.util.spec_from_file_location(module_name, path)
        if module_spec is None or module_spec.loader is None:
            raise ImportError(f"{spec.logical_id}: cannot load {path}")
        module = importlib.util.module_from_spec(module_spec)
        # Registered before running it, as an import would: pydantic and dataclasses look it up.
        sys.modules[module_name] = module
        try:
            module_spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[module_name]
            raise
        handler = getattr(module, function_name, None)
        if not callable(handler):
            raise AttributeError(f"{spec.logical_id}: {path} defines no callable {function_name!r}")
        _handlers[key] = handler
        return cast(LambdaHandler, handler)


# ---------------------------------------------------------------------------------------------- state machine


def _state_machine_properties(template: Mapping[str, Any], logical_id: str) -> dict[str, Any]:
    resource = template["Resources"].get(logical_id)
    if resource is None or resource.get("Type") != "AWS::Serverless::StateMachine":
        raise KeyError(f"{logical_id} is not an AWS::Serverless::StateMachine in the template")
    return cast(dict[str, Any], resource.get("Properties", {}))


def definition_placeholders(text: str) -> set[str]:
    """The ``${Name}`` placeholders in a state machine definition's text."""
    return set(_PLACEHOLDER.findall(text))


def state_machine_definition(
    project_dir: Path,
    template: Mapping[str, Any],
    substitutions: Mapping[str, str],
    logical_id: str = "ExecutionStateMachine",
) -> str:
    """The state machine's ASL text (its ``DefinitionUri`` file) with ``${Name}`` placeholders filled.

    ``substitutions`` plays the part of ``DefinitionSubstitutions`` with real values (a moto
    function's ARN, say). Raises ``ValueError`` naming every placeholder left without a value.
    """
    uri = _state_machine_properties(template, logical_id).get("DefinitionUri")
    if not isinstance(uri, str):
        raise ValueError(f"{logical_id}: DefinitionUri must be a local file path")
    text = (Path(project_dir) / uri).read_text(encoding="utf-8")
    missing = sorted(definition_placeholders(text) - set(substitutions))
    if missing:
        raise ValueError(f"{logical_id}: no value for {', '.join(missing)} in {uri}")
    return _PLACEHOLDER.sub(lambda match: substitutions[match.group(1)], text)
