"""Agent definitions: an AI agent's HTTP endpoint and how to talk to it."""

from __future__ import annotations

import ipaddress
from typing import Literal

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, field_validator

from stepwise.models.headers import HEADER_NAME_PATTERN, HEADER_VALUE_PATTERN, header_name_problem, header_value_problem

Protocol = Literal["json", "openai-chat"]
_FORBIDDEN_HEADERS = {"host", "content-length", "transfer-encoding", "connection"}


class AgentInput(BaseModel):
    """An agent as a user writes it. ``credential`` is write-only: kept in Secrets Manager, never returned."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    endpoint: AnyHttpUrl = Field(description="http or https URL the agent answers on")
    protocol: Protocol = "json"
    model: str | None = Field(default=None, max_length=200)
    headers: dict[str, str] = Field(
        default_factory=dict,
        description="sent with every call",
        json_schema_extra={
            "propertyNames": {"pattern": HEADER_NAME_PATTERN},
            "additionalProperties": {"type": "string", "pattern": HEADER_VALUE_PATTERN},
        },
    )
    credential: str | None = Field(
        default=None,
        min_length=1,
        max_length=8192,
        description="sent as 'Authorization: Bearer ...'; write-only",
        json_schema_extra={"pattern": HEADER_VALUE_PATTERN},
    )
    timeoutSeconds: float | None = Field(default=None, gt=0, le=300)

    @field_validator("headers")
    @classmethod
    def _headers_allowed(cls, headers: dict[str, str]) -> dict[str, str]:
        for name, value in headers.items():
            if name.lower() in _FORBIDDEN_HEADERS:
                raise ValueError(f"header '{name}' is set by the HTTP client and cannot be configured")
            problem = header_name_problem(name) or header_value_problem(name, value)
            if problem:
                raise ValueError(problem)
        return headers

    @field_validator("credential")
    @classmethod
    def _credential_sendable(cls, credential: str | None) -> str | None:
        # Checked here, not by a pattern: a pattern's message would show the credential.
        if credential is not None and header_value_problem("Authorization", credential):
            raise ValueError("has a line break, a control character or a character beyond ISO-8859-1")
        return credential

    @field_validator("endpoint")
    @classmethod
    def _endpoint_allowed(cls, endpoint: AnyHttpUrl) -> AnyHttpUrl:
        # Link-local and metadata addresses are refused at every call; a literal one is refused here already.
        host = (endpoint.host or "").strip("[]")
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return endpoint  # a name: checked when called, since what it resolves to may change
        if address.is_link_local or str(address) in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200"):
            raise ValueError(f"{host} is a link-local or cloud metadata address, which agents may not use")
        return endpoint


class AgentRecord(BaseModel):
    """An agent as stored: the definition without its credential, plus ownership."""

    id: str
    owner: str
    name: str
    endpoint: str
    protocol: Protocol
    model: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    credentialRef: str | None = None
    timeoutSeconds: float | None = None
    createdAt: str
    updatedAt: str


class AgentView(BaseModel):
    """An agent as the API shows it: ``hasCredential`` instead of the secret."""

    id: str
    name: str
    endpoint: str
    protocol: Protocol
    model: str | None
    headers: dict[str, str]
    hasCredential: bool
    timeoutSeconds: float | None
    owner: str
    createdAt: str
    updatedAt: str

    @classmethod
    def of(cls, record: AgentRecord) -> AgentView:
        """The public view of a stored agent."""
        return cls(**record.model_dump(exclude={"credentialRef"}), hasCredential=record.credentialRef is not None)
