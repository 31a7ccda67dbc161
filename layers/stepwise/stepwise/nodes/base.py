"""What every node type shares: the context a node runs in and the outcome it reports."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from stepwise.models.execution import LogLevel
from stepwise.models.wording import pattern_in_words
from stepwise.models.workflow import RetryPolicy

if TYPE_CHECKING:
    from stepwise.models.agent import AgentRecord


class NodeConfig(BaseModel):
    """Base of every node type's config model: unknown keys are a mistake worth a 400."""

    model_config = ConfigDict(extra="forbid")

    def check_before_storing(self) -> None:
        """Refuse, on write only, what a run of this node would fail on: ``ValueError("<field>: <why>")``.

        Not a validator: the node runner validates a stored config with this model each time it runs the
        node, and a workflow stored before a check existed must still run.
        """


# The name of a variable a node stores its result in.
VariableName = Annotated[
    str,
    Field(pattern=r"^[A-Za-z_][A-Za-z0-9_-]*$"),
    pattern_in_words("a letter or '_' followed by letters, digits, '_' or '-'"),
]


class NodeFailed(Exception):
    """A node could not do its work; the message is what the user reads in ``error`` and the logs."""


@dataclass(frozen=True)
class CallDefaults:
    """What a call out gets unless its node or agent says otherwise (from the node runner's settings)."""

    timeout_seconds: float
    max_response_bytes: int
    allow_private_endpoints: bool


@dataclass
class NodeContext:
    """What a running node may see and do."""

    execution_id: str
    node_id: str
    run: int
    owner: str
    variables: Mapping[str, Any]
    calls: CallDefaults
    timeout_seconds: float | None
    retry: RetryPolicy | None
    log: Callable[[LogLevel, str], None]
    should_stop: Callable[[], bool]
    load_agent: Callable[[str], AgentRecord | None]
    read_secret: Callable[[str], str]

    @property
    def idempotency_key(self) -> str:
        """``<executionId>:<nodeId>:<run>``: the same for every attempt of this node run, and for the run made
        again after its invocation stopped (see the README, "What an agent can rely on")."""
        return f"{self.execution_id}:{self.node_id}:{self.run}"


@dataclass(frozen=True)
class Wait:
    """The node waits in the state machine: ``delay`` (a Wait state) or ``approval`` (a task token)."""

    kind: Literal["delay", "approval"]
    seconds: int = 0


@dataclass
class Outcome:
    """What a node produced: its output, the variables it sets, and where to go next."""

    output: Any = None
    set_variables: dict[str, Any] = field(default_factory=dict)
    next_node: str | None = None
    wait: Wait | None = None
