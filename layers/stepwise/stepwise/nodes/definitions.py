"""Workflow definitions on write: the body a user sends, documented per node type, and the checks it must pass.

Both run on write only; a stored definition is read back by its shape (:mod:`stepwise.models.workflow`), so
a rule added here later never makes a stored workflow unreadable. :class:`WorkflowInput` is the body of a
create or an update (lengths, ranges, node ids; a config field written beside its node gets a hint).
:func:`check_definition`, which the workflow service runs before it stores a definition, checks it against
the node types: each node's config against its type's model, targets that exist, placeholders that parse,
what a node type refuses on write. A refusal names the node and field: ``nodes[2] (id 'ask'): config.prompt:
...``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, ValidationError, model_validator

from stepwise.errors import InvalidWorkflow
from stepwise.interpolation import InterpolationError, placeholders
from stepwise.models.wording import pattern_in_words
from stepwise.models.workflow import Concurrency, NodeDefinition, RetryPolicy, WorkflowDefinition
from stepwise.nodes import REGISTRY, NodeType
from stepwise.nodes.base import NodeConfig

MAX_NODES = 500
# A workflow's own concurrency limit (an owner's limit on running executions is a setting of the stack).
MAX_CONCURRENCY = 1_000
MAX_NODE_RUNS = 100_000
# The node runner gives a node's calls this long (its Lambda timeout, less a margin to record the result).
MAX_CALL_SECONDS = 300
NODE_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
NodeId = Annotated[str, Field(pattern=NODE_ID_PATTERN), pattern_in_words("1 to 64 letters, digits, '_' or '-'")]


def _node_variant(node_type: NodeType) -> dict[str, Any]:
    """The JSON schema of a node of one type: its config model's schema, and the node fields it refuses."""
    config = node_type.config_model.model_json_schema(by_alias=True)
    config.pop("title", None)
    properties: dict[str, Any] = {"type": {"const": node_type.name}, "config": config}
    if not node_type.calls_out:
        properties.update(timeoutSeconds={"type": "null"}, retry={"type": "null"})
    if node_type.branches:
        properties["next"] = {"type": "null"}
    variant = {"title": f"{node_type.name} node", "properties": properties}
    return {**variant, "required": ["config"]} if config.get("required") else variant


def _document_node_types(schema: dict[str, Any]) -> None:
    # `config` is checked against the node type's model by check_definition (for messages that name the node);
    # the document says the same as one variant per node type, so clients and fuzzers know the configs.
    schema["properties"]["type"]["enum"] = list(REGISTRY)
    schema["oneOf"] = [_node_variant(node_type) for node_type in REGISTRY.values()]


class RetryInput(RetryPolicy):
    """How often a node that calls out tries again after a transient failure."""

    model_config = ConfigDict(extra="forbid")

    maxAttempts: int = Field(default=3, ge=1, le=10)
    backoffSeconds: float = Field(default=1.0, ge=0, le=60)


class NodeInput(NodeDefinition):
    """One node: ``type`` picks the node type, ``config`` is checked against that type's model."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_document_node_types)

    id: NodeId
    type: str
    name: str | None = Field(default=None, max_length=200)
    config: dict[str, Any] = Field(
        default_factory=dict,
        description="the node type's settings; its strings may hold ${placeholders}, which must be well formed",
    )
    timeoutSeconds: float | None = Field(default=None, gt=0, le=300, description="for nodes that call out")
    retry: RetryInput | None = Field(default=None, description="for nodes that call out")

    @model_validator(mode="before")
    @classmethod
    def _config_fields_belong_in_config(cls, data: Any) -> Any:
        # A field of the node's config written beside it ({"type": "delay", "seconds": 3}) gets a hint.
        if isinstance(data, dict) and (node_type := REGISTRY.get(str(data.get("type")))) is not None:
            for name in data:
                if name not in cls.model_fields and name in node_type.config_model.model_fields:
                    raise ValueError(f"'{name}' belongs in config, not on the node")
        return data


class ConcurrencyInput(Concurrency):
    """At most ``limit`` runs of the workflow at once; ``onLimit``: a start over it waits (queue) or is a 429."""

    model_config = ConfigDict(extra="forbid")

    limit: int = Field(ge=1, le=MAX_CONCURRENCY, description="runs of this workflow that may run at once")
    onLimit: Literal["queue", "reject"] = Field(
        default="queue",
        description="a start over the limit waits, PENDING, and starts by itself in start order (queue), or is "
        "refused with a 429 and Retry-After (reject)",
    )


class WorkflowInput(WorkflowDefinition):
    """A workflow as a user writes it."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=2000)
    nodes: list[NodeInput] = Field(min_length=1, max_length=MAX_NODES)
    # Step Functions' history (25,000 events per Standard run) bounds the node runner's steps, not the node runs:
    # a step runs every instant node in a row (stepwise.service.runner.MAX_STEPS guards the steps). This bounds
    # what a runaway loop of instant nodes writes: its log, about 0.5 KB per node run.
    maxNodeRuns: int | None = Field(
        default=None, ge=1, le=MAX_NODE_RUNS, description="step limit; default 1,000, at most 100,000"
    )
    concurrency: ConcurrencyInput | None = Field(
        default=None, description="at most this many runs at once, and what a start over that does; default no limit"
    )


class WorkflowUpdate(WorkflowInput):
    """A PUT body: a definition, or a workflow as GET returned it (its read-only fields are ignored)."""

    id: str | None = None
    version: int | None = None
    owner: str | None = None
    createdAt: str | None = None
    updatedAt: str | None = None

    def definition(self, workflow_id: str) -> WorkflowInput:
        """The definition part; an ``id`` that names another workflow is a mistake worth a 400."""
        if self.id is not None and self.id != workflow_id:
            raise InvalidWorkflow(f"id: the body is workflow {self.id}, the URL names {workflow_id}")
        return WorkflowInput.model_validate(self.model_dump(include=set(WorkflowInput.model_fields)))


def check_definition(definition: WorkflowDefinition) -> None:
    """Refuse, with ``InvalidWorkflow`` naming the node and field, a definition that must not be stored.

    First the graph, node by node: unique ids, known node types, each config against its type's model, the
    call settings only on nodes that call out (and within the node runner's time), ``next`` and branch
    targets that exist. Then what a run would only fail on when it got there: a ``next`` on a node that picks
    the next node itself (a condition: ``then``/``else``), a placeholder that cannot parse anywhere in a
    node's config, what the node type's config refuses on write (:meth:`NodeConfig.check_before_storing`).
    """
    ids = [node.id for node in definition.nodes]
    configs = [_checked_config(_where(index, node), node, ids, index) for index, node in enumerate(definition.nodes)]
    for index, (node, config) in enumerate(zip(definition.nodes, configs, strict=True)):
        _check_runnable(_where(index, node), node, config)


def _where(index: int, node: NodeDefinition) -> str:
    return f"nodes[{index}] (id '{node.id}')"


def _checked_config(where: str, node: NodeDefinition, ids: list[str], index: int) -> NodeConfig:
    """The node's config, validated by its type's model, once the node's place in the graph is checked."""
    if ids.index(node.id) < index:
        raise InvalidWorkflow(f"{where}: duplicate node id '{node.id}'")
    node_type = REGISTRY.get(node.type)
    if node_type is None:
        raise InvalidWorkflow(f"{where}: unknown node type '{node.type}'; known types: {', '.join(REGISTRY)}")
    try:
        config = node_type.config_model.model_validate(node.config)
    except ValidationError as error:
        details = "; ".join(_describe_config(e) for e in error.errors(include_url=False))
        raise InvalidWorkflow(f"{where}: {details}") from None
    if (node.timeoutSeconds is not None or node.retry is not None) and not node_type.calls_out:
        raise InvalidWorkflow(f"{where}: timeoutSeconds and retry apply only to nodes that call out")
    attempts = node.retry.maxAttempts if node.retry else 3
    if node.timeoutSeconds and node.timeoutSeconds * attempts > MAX_CALL_SECONDS:
        raise InvalidWorkflow(
            f"{where}: timeoutSeconds times retry.maxAttempts is {node.timeoutSeconds * attempts:g} s; "
            f"a node's calls must fit in {MAX_CALL_SECONDS} s"
        )
    for field, target in [("next", node.next)] + [("config", t) for t in node_type.targets(config)]:
        if target is not None and target not in ids:
            raise InvalidWorkflow(f"{where}: {field} points to node '{target}', which does not exist")
    return config


def _check_runnable(where: str, node: NodeDefinition, config: NodeConfig) -> None:
    """Refuse what a run of the node would only fail on when it got there."""
    if REGISTRY[node.type].branches and node.next is not None:
        raise InvalidWorkflow(
            f"{where}: next: a {node.type} node continues at config.then or config.else and never at "
            f"next; name '{node.next}' in then or else instead"
        )
    for field, text in _strings(node.config, "config"):
        try:
            placeholders(text)
        except InterpolationError as error:
            raise InvalidWorkflow(f"{where}: {field}: {error.message}") from None
    try:
        config.check_before_storing()
    except ValueError as error:
        raise InvalidWorkflow(f"{where}: config.{error}") from None


# Fields of a node written inside its config by mistake ({"config": {"timeoutSeconds": 5}}) get a hint.
_NODE_FIELDS = frozenset(NodeInput.model_fields) - {"config"}


def _describe_config(error: Mapping[str, Any]) -> str:
    """A config error as ``config.<field>: <what to fix>``."""
    location = error["loc"]
    if error["type"] == "extra_forbidden" and len(location) == 1 and location[0] in _NODE_FIELDS:
        return f"config.{location[0]}: belongs on the node, not in config"
    where = ".".join(str(part) for part in location)
    message = str(error["msg"]).removeprefix("Value error, ")
    return f"config.{where}: {message}" if where else f"config.{message}"


def _strings(value: Any, field: str) -> Iterator[tuple[str, str]]:
    """Every string in ``value`` (dict values and list items, as interpolation walks it), with its field."""
    if isinstance(value, str):
        yield field, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(item, f"{field}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _strings(item, f"{field}[{index}]")
