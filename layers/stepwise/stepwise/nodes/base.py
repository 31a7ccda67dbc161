"""What every node type shares: the context a node runs in and the outcome it reports."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from stepwise.models.execution import LogLevel
from stepwise.models.wording import pattern_in_words

if TYPE_CHECKING:
    from stepwise.models.agent import AgentRecord


class NodeConfig(BaseModel):
    """Base of every node type's config model: unknown keys are a mistake worth a 400."""

    model_config = ConfigDict(extra="forbid")

    def check_before_storing(self) -> None:
        """Refuse, on write only, what a run of this node would fail on: ``ValueError("<field>: <why>")``.

        Not a validator: stored definitions are validated on every read, and one stored before a check
        existed must stay readable.
        """


# The name of a variable a node stores its result in.
VariableName = Annotated[
    str,
    Field(pattern=r"^[A-Za-z_][A-Za-z0-9_-]*$"),
    pattern_in_words("a letter or '_' followed by letters, digits, '_' or '-'"),
]


# What HTTP lets a header carry (RFC 9110): a name is a token; a value is text on one line whose characters
# fit in one byte each (ISO-8859-1), since it is sent as bytes. Anything else fails the call, every time.
# (The patterns are for the OpenAPI document too, hence ^...$; Python checks them with fullmatch.)
HEADER_NAME_PATTERN = r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$"
HEADER_VALUE_PATTERN = r"^[\t\x20-\x7e\x80-\xff]*$"
_HEADER_NAME = re.compile(HEADER_NAME_PATTERN)
_HEADER_VALUE = re.compile(HEADER_VALUE_PATTERN)


def header_name_problem(name: str) -> str | None:
    """Why ``name`` cannot be an HTTP header's name, or None when it can."""
    if _HEADER_NAME.fullmatch(name):
        return None
    return f"header name '{name}' should be letters, digits or !#$%&'*+-.^_`|~ only"


def header_value_problem(name: str, value: str) -> str | None:
    """Why ``value`` cannot be sent as header ``name`` (the value itself is never shown: it may be a secret)."""
    if _HEADER_VALUE.fullmatch(value):
        return None
    return f"the value of header '{name}' has a line break, a control character or a character beyond ISO-8859-1"


class RetryPolicy(BaseModel):
    """How often a node that calls out tries again after a transient failure."""

    model_config = ConfigDict(extra="forbid")

    maxAttempts: int = Field(default=3, ge=1, le=10)
    backoffSeconds: float = Field(default=1.0, ge=0, le=60)


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
    owner: str
    variables: Mapping[str, Any]
    calls: CallDefaults
    timeout_seconds: float | None
    retry: RetryPolicy | None
    log: Callable[[LogLevel, str], None]
    should_stop: Callable[[], bool]
    load_agent: Callable[[str], AgentRecord | None]
    read_secret: Callable[[str], str]


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
