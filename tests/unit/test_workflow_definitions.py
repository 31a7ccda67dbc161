"""Workflow definitions on write: what a run would fail on is refused before it is stored, naming node and field.

The checks of :func:`stepwise.nodes.definitions.check_definition` run on write only (a stored definition is read
back by its shape, and one stored before a check existed must stay readable); the node types' configs are
documented (README, OpenAPI) as the models validate them.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from stepwise import wiring
from stepwise.api.resolver import create_resolver, openapi_document
from stepwise.errors import InvalidWorkflow
from stepwise.models.agent import AgentInput
from stepwise.models.workflow import WorkflowDefinition
from stepwise.nodes import REGISTRY
from stepwise.nodes.definitions import WorkflowInput, check_definition

README = Path(__file__).resolve().parents[2] / "README.md"
ENDS = {"id": "end", "type": "setVariables", "config": {"values": {"done": True}}}


def definition(*nodes: dict[str, Any]) -> WorkflowInput:
    return WorkflowInput.model_validate({"name": "w", "nodes": [*nodes, ENDS]})


def refusal(*nodes: dict[str, Any]) -> str:
    with pytest.raises(InvalidWorkflow) as refused:
        check_definition(definition(*nodes))
    return refused.value.message


@pytest.mark.parametrize(
    ("node", "expected"),
    [
        (
            {"id": "ask", "type": "agentTask", "config": {"agentId": "ag_1", "prompt": "Summarize ${a.b"}},
            "nodes[0] (id 'ask'): config.prompt: unclosed placeholder '${a.b' at position 10",
        ),
        (
            {"id": "set", "type": "setVariables", "config": {"values": {"x": {"list": ["ok", "${a..b}"]}}}},
            "nodes[0] (id 'set'): config.values.x.list[1]: malformed placeholder '${a..b}' at position 0: "
            "expected a name after '.' at position 3",
        ),
        (
            {"id": "call", "type": "httpRequest", "config": {"url": "https://e.com", "headers": {"X-Id": "${}"}}},
            "nodes[0] (id 'call'): config.headers.X-Id: empty placeholder '${}' at position 0",
        ),
        (
            {"id": "ok", "type": "approval", "config": {"message": "Ship ${order[}?"}},
            "nodes[0] (id 'ok'): config.message: malformed placeholder '${order[}' at position 5: "
            "expected an index [N] or a quoted key after '[' at position 13",
        ),
        (
            {
                "id": "big",
                "type": "condition",
                "config": {"left": 1, "op": "eq", "right": "${x", "then": "end", "else": "end"},
            },
            "nodes[0] (id 'big'): config.right: unclosed placeholder '${x' at position 0",
        ),
    ],
)
def test_a_placeholder_that_cannot_parse_is_refused_naming_the_node_and_field(
    node: dict[str, Any], expected: str
) -> None:
    assert refusal(node) == expected


def test_well_formed_and_escaped_placeholders_pass() -> None:
    # The control: the same fields, every placeholder well formed, `$${` a literal.
    check_definition(
        definition(
            {"id": "ask", "type": "agentTask", "config": {"agentId": "ag_1", "prompt": "Summarize ${a.b} for $${you"}},
            {"id": "set", "type": "setVariables", "config": {"values": {"x": {"list": ["ok", '${a["c d"][0]}']}}}},
        )
    )


def test_a_next_on_a_condition_is_refused_with_then_or_else_named() -> None:
    condition = {
        "id": "big",
        "type": "condition",
        "config": {"left": 1, "op": "eq", "right": 1, "then": "end", "else": "end"},
    }

    assert refusal({**condition, "next": "end"}) == (
        "nodes[0] (id 'big'): next: a condition node continues at config.then or config.else and never at next; "
        "name 'end' in then or else instead"
    )


@pytest.mark.parametrize("left", ["a..b", "${a.b", 5])
def test_an_exists_condition_on_a_path_that_cannot_parse_is_refused(left: Any) -> None:
    condition = {
        "id": "has",
        "type": "condition",
        "config": {"left": left, "op": "exists", "then": "end", "else": "end"},
    }

    assert refusal(condition).startswith("nodes[0] (id 'has'): config.left: ")


@pytest.mark.parametrize("left", ["user.email", "${user.email}", ' ${user["e mail"]} '])
def test_an_exists_condition_on_a_path_passes(left: str) -> None:
    condition = {
        "id": "has",
        "type": "condition",
        "config": {"left": left, "op": "exists", "then": "end", "else": "end"},
    }

    check_definition(definition(condition))


CONDITION = {
    "id": "big",
    "type": "condition",
    "config": {"left": 1, "op": "eq", "right": 1, "then": "end", "else": "end"},
}


@pytest.mark.parametrize(
    "stored",
    [
        # a check of the node types: a placeholder that cannot parse, a next on a condition, a config its
        # type refuses, an unknown node type
        {"name": "w", "nodes": [{"id": "ask", "type": "agentTask", "config": {"agentId": "ag_1", "prompt": "${a.b"}}]},
        {"name": "w", "nodes": [{**CONDITION, "next": "end"}, ENDS]},
        {"name": "w", "nodes": [{"id": "wait", "type": "delay", "config": {"seconds": -1, "unit": "s"}}]},
        {"name": "w", "nodes": [{"id": "beam", "type": "teleport"}]},
        # a rule of the body's shape: lengths, ranges, node ids, fields it does not know
        {"name": "w" * 300, "maxNodeRuns": 500_000, "nodes": [{**ENDS, "id": "a b", "retry": {"maxAttempts": 50}}]},
        {"name": "", "nodes": [{**ENDS, "timeoutSeconds": 900, "label": "old"}], "tags": ["old"]},
    ],
)
def test_a_definition_stored_before_a_check_existed_still_reads(stored: dict[str, Any]) -> None:
    # Given a stored definition that today's write refuses
    with pytest.raises((ValidationError, InvalidWorkflow)):
        check_definition(WorkflowInput.model_validate(stored))

    # When it is read back as the store reads it, nothing of the write applies
    read = WorkflowDefinition.model_validate(stored)

    assert [node.id for node in read.nodes] == [node["id"] for node in stored["nodes"]]


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"X Trace": "1"}, "config.headers: header name 'X Trace' should be letters, digits or !#$%&'*+-.^_`|~ only"),
        ({"X-Price": "5 €"}, "config.headers: the value of header 'X-Price' has a line break, a control character"),
    ],
)
def test_an_http_request_header_that_cannot_be_sent_is_refused(headers: dict[str, str], expected: str) -> None:
    call = {"id": "call", "type": "httpRequest", "config": {"url": "https://e.com", "headers": headers}}

    assert refusal(call).startswith(f"nodes[0] (id 'call'): {expected}")


def test_an_http_request_header_value_with_a_placeholder_is_checked_when_sent() -> None:
    # What a placeholder becomes is known only at run time; the name is never interpolated.
    call = {"id": "call", "type": "httpRequest", "config": {"url": "https://e.com", "headers": {"X-Who": "é ${user}"}}}

    check_definition(definition(call))


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("headers", {"X Team": "docs"}, "header name 'X Team' should be"),
        ("headers", {"X-Team": "€"}, "the value of header 'X-Team' has a line break"),
        ("headers", {"X-Team": "docs\n"}, "the value of header 'X-Team' has a line break"),
        ("headers", {"X-Team\n": "docs"}, "header name 'X-Team\n' should be"),
        ("credential", "sk-\u20ac", "has a line break, a control character or a character beyond ISO-8859-1"),
    ],
)
def test_an_agent_header_or_credential_that_cannot_be_sent_is_refused(field: str, value: Any, expected: str) -> None:
    with pytest.raises(ValidationError) as refused:
        AgentInput.model_validate({"name": "a", "endpoint": "https://e.com", field: value})

    message = str(refused.value.errors()[0]["msg"])
    assert expected in message
    assert "sk-" not in message  # a credential is never shown back


# ------------------------------------------------------------------ the docs say what validation does


def readme_node_table() -> dict[str, list[str]]:
    """The README's node types table: type → its config fields as written (`name?` when optional)."""
    rows = re.findall(r"^\| `(\w+)` \| ([^|]+) \|", README.read_text(), flags=re.MULTILINE)
    return {node_type: re.findall(r"`([\w?]+)`", fields) for node_type, fields in rows if node_type in REGISTRY}


def validated_fields(node_type: str) -> list[str]:
    fields = REGISTRY[node_type].config_model.model_fields
    return [f"{field.alias or name}{'' if field.is_required() else '?'}" for name, field in fields.items()]


@pytest.mark.parametrize("node_type", list(REGISTRY))
def test_the_readme_lists_each_node_types_config_as_validated(node_type: str) -> None:
    assert readme_node_table()[node_type] == validated_fields(node_type)


def test_an_http_request_without_a_method_is_a_get_as_documented() -> None:
    node = {"id": "call", "type": "httpRequest", "config": {"url": "https://e.com"}}
    document = openapi_document(create_resolver(wiring.api))
    variants = document["components"]["schemas"]["NodeInput"]["oneOf"]
    http = next(v for v in variants if v["properties"]["type"] == {"const": "httpRequest"})["properties"]["config"]

    assert REGISTRY["httpRequest"].config_model.model_validate(node["config"]).method == "GET"
    assert "method" not in http["required"]
    assert http["properties"]["method"]["default"] == "GET"
    assert "`method?`" in README.read_text() and "`method` defaults to `GET`" in README.read_text()


def test_the_document_describes_each_node_types_config() -> None:
    document = openapi_document(create_resolver(wiring.api))
    node = document["components"]["schemas"]["NodeInput"]

    assert node["properties"]["type"]["enum"] == list(REGISTRY)
    assert [variant["properties"]["type"]["const"] for variant in node["oneOf"]] == list(REGISTRY)
    for variant in node["oneOf"]:
        config = variant["properties"]["config"]
        assert sorted(config["properties"]) == sorted(
            field.rstrip("?") for field in validated_fields(variant["properties"]["type"]["const"])
        )


def test_max_node_runs_goes_up_to_a_hundred_thousand() -> None:
    # Instant nodes run many to a step: Step Functions' history bounds the steps (runner.MAX_STEPS), not the runs
    assert WorkflowInput.model_validate({"name": "w", "nodes": [ENDS], "maxNodeRuns": 100_000}).maxNodeRuns == 100_000
    with pytest.raises(ValidationError, match="less than or equal to 100000"):
        WorkflowInput.model_validate({"name": "w", "nodes": [ENDS], "maxNodeRuns": 100_001})
