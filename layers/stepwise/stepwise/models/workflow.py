"""Workflow definitions: ordered nodes, validated on write so a run never meets a malformed node.

Two layers of checks. The model's own validation (shape, node types, each config against its type, the
graph) runs on every read as well, since stored definitions are read back through it. Checks added later
that would refuse what was once stored live in :meth:`WorkflowDefinition.check_before_storing`, which only a
write runs: a definition stored before a check existed stays readable and runnable.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from stepwise.errors import InvalidWorkflow
from stepwise.interpolation import InterpolationError, placeholders
from stepwise.models.wording import pattern_in_words
from stepwise.nodes import REGISTRY, NodeType
from stepwise.nodes.base import RetryPolicy

MAX_NODES = 500
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
    # `config` is validated against the node type's model by WorkflowDefinition (for messages that name the
    # node); the document says the same as one variant per node type, so clients and fuzzers know the configs.
    schema["properties"]["type"]["enum"] = list(REGISTRY)
    schema["oneOf"] = [_node_variant(node_type) for node_type in REGISTRY.values()]


class NodeDefinition(BaseModel):
    """One node: ``type`` picks the node type, ``config`` is checked against that type's model."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_document_node_types)

    id: NodeId
    type: str
    name: str | None = Field(default=None, max_length=200)
    config: dict[str, Any] = Field(
        default_factory=dict,
        description="the node type's settings; its strings may hold ${placeholders}, which must be well formed",
    )
    next: str | None = Field(default=None, description="node id to continue at; default is the next in the list")
    timeoutSeconds: float | None = Field(default=None, gt=0, le=300, description="for nodes that call out")
    retry: RetryPolicy | None = Field(default=None, description="for nodes that call out")

    @model_validator(mode="before")
    @classmethod
    def _config_fields_belong_in_config(cls, data: Any) -> Any:
        # A field of the node's config written beside it ({"type": "delay", "seconds": 3}) gets a hint.
        if isinstance(data, dict) and (node_type := REGISTRY.get(str(data.get("type")))) is not None:
            for name in data:
                if name not in cls.model_fields and name in node_type.config_model.model_fields:
                    raise ValueError(f"'{name}' belongs in config, not on the node")
        return data


# Fields of a node written inside its config by mistake ({"config": {"timeoutSeconds": 5}}) get a hint.
_NODE_FIELDS = frozenset(NodeDefinition.model_fields) - {"config"}


def _describe(error: Mapping[str, Any]) -> str:
    location = ".".join(str(part) for part in error["loc"])
    message = str(error["msg"]).removeprefix("Value error, ")
    return f"{location}: {message}" if location else message


def _describe_config(error: Mapping[str, Any]) -> str:
    """A config error as ``config.<field>: <what to fix>``."""
    location = error["loc"]
    if error["type"] == "extra_forbidden" and len(location) == 1 and location[0] in _NODE_FIELDS:
        return f"config.{location[0]}: belongs on the node, not in config"
    return f"config.{_describe(error)}"


class WorkflowDefinition(BaseModel):
    """A workflow as a user writes it."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=2000)
    variables: dict[str, Any] = Field(default_factory=dict, description="default variables of every run")
    nodes: list[NodeDefinition] = Field(min_length=1, max_length=MAX_NODES)
    output: list[str] | None = Field(default=None, description="variables that make the output; default all")
    # A node run costs 7 to 20 Step Functions history events (a delay or an approval the most): 1,200 runs
    # stay under a Standard execution's limit of 25,000.
    maxNodeRuns: int | None = Field(default=None, ge=1, le=1_200, description="step limit; default 1,000")

    @model_validator(mode="after")
    def _check_graph(self) -> WorkflowDefinition:
        ids = [node.id for node in self.nodes]
        seen: set[str] = set()
        for index, node in enumerate(self.nodes):
            where = f"nodes[{index}] (id '{node.id}')"
            if node.id in seen:
                raise ValueError(f"{where}: duplicate node id '{node.id}'")
            seen.add(node.id)
            node_type = REGISTRY.get(node.type)
            if node_type is None:
                raise ValueError(f"{where}: unknown node type '{node.type}'; known types: {', '.join(REGISTRY)}")
            try:
                config = node_type.config_model.model_validate(node.config)
            except ValidationError as error:
                details = "; ".join(_describe_config(e) for e in error.errors(include_url=False))
                raise ValueError(f"{where}: {details}") from None
            if (node.timeoutSeconds is not None or node.retry is not None) and not node_type.calls_out:
                raise ValueError(f"{where}: timeoutSeconds and retry apply only to nodes that call out")
            attempts = node.retry.maxAttempts if node.retry else 3
            if node.timeoutSeconds and node.timeoutSeconds * attempts > MAX_CALL_SECONDS:
                raise ValueError(
                    f"{where}: timeoutSeconds times retry.maxAttempts is {node.timeoutSeconds * attempts:g} s; "
                    f"a node's calls must fit in {MAX_CALL_SECONDS} s"
                )
            for field, target in [("next", node.next)] + [("config", t) for t in node_type.targets(config)]:
                if target is not None and target not in ids:
                    raise ValueError(f"{where}: {field} points to node '{target}', which does not exist")
        return self

    def check_before_storing(self) -> None:
        """Refuse, on write, what a run would only fail on when it got there (``InvalidWorkflow``, naming the node).

        A ``next`` on a node that picks the next node itself (a condition: ``then``/``else``); a placeholder
        that cannot parse anywhere in a node's config; what the node type's config refuses on write
        (:meth:`~stepwise.nodes.base.NodeConfig.check_before_storing`).
        """
        for index, node in enumerate(self.nodes):
            where = f"nodes[{index}] (id '{node.id}')"
            node_type = REGISTRY[node.type]
            if node_type.branches and node.next is not None:
                raise InvalidWorkflow(
                    f"{where}: next: a {node.type} node continues at config.then or config.else and never at "
                    f"next; name '{node.next}' in then or else instead"
                )
            for field, text in _strings(node.config, "config"):
                try:
                    placeholders(text)
                except InterpolationError as error:
                    raise InvalidWorkflow(f"{where}: {field}: {error.message}") from None
            config = node_type.config_model.model_validate(node.config)
            try:
                config.check_before_storing()
            except ValueError as error:
                raise InvalidWorkflow(f"{where}: config.{error}") from None

    def node(self, node_id: str) -> NodeDefinition:
        """The node with that id (the definition was validated, so ids are unique)."""
        return next(node for node in self.nodes if node.id == node_id)

    def following(self, node_id: str) -> str | None:
        """The node after ``node_id``: its ``next``, else the next in list order, else None (the end)."""
        for index, node in enumerate(self.nodes):
            if node.id == node_id:
                if node.next:
                    return node.next
                return self.nodes[index + 1].id if index + 1 < len(self.nodes) else None
        return None

    def agent_ids(self) -> list[str]:
        """The agents its agentTask nodes call, each once, in the order the nodes first name them."""
        named = (node.config.get("agentId") for node in self.nodes if node.type == "agentTask")
        return list(dict.fromkeys(str(agent_id) for agent_id in named if agent_id))

    def output_of(self, variables: dict[str, Any]) -> Any:
        """An execution's output: the variables named by ``output``, else all of them (a view, not stored)."""
        if self.output is None:
            return variables
        return {name: variables.get(name) for name in self.output}


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


class WorkflowView(WorkflowDefinition):
    """A stored workflow as the API shows it."""

    id: str
    version: int
    owner: str
    createdAt: str
    updatedAt: str

    def definition_json(self) -> dict[str, Any]:
        """Just the definition part, as JSON-ready data."""
        return self.model_dump(mode="json", include=set(WorkflowDefinition.model_fields), by_alias=True)


class WorkflowUpdate(WorkflowDefinition):
    """A PUT body: a definition, or a workflow as GET returned it (its read-only fields are ignored)."""

    id: str | None = None
    version: int | None = None
    owner: str | None = None
    createdAt: str | None = None
    updatedAt: str | None = None

    def definition(self, workflow_id: str) -> WorkflowDefinition:
        """The definition part; an ``id`` that names another workflow is a mistake worth a 400."""
        if self.id is not None and self.id != workflow_id:
            raise InvalidWorkflow(f"id: the body is workflow {self.id}, the URL names {workflow_id}")
        return WorkflowDefinition.model_validate(self.model_dump(include=set(WorkflowDefinition.model_fields)))


class StartExecutionRequest(BaseModel):
    """The optional body of a start: variables merged over the workflow's defaults."""

    model_config = ConfigDict(extra="forbid")

    variables: dict[str, Any] = Field(default_factory=dict)
