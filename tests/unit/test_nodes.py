"""Node types run directly (the lowest layer that can catch their bugs), where no network is needed.

The calls of agentTask and httpRequest, against a real HTTP server, are in tests/integration/test_node_calls.py.
"""

from __future__ import annotations

from typing import Any

import pytest

from stepwise.nodes import REGISTRY
from tests.support.nodes import node_context, run_node


def test_an_approval_shows_its_interpolated_message() -> None:
    ctx, lines = node_context({"draft": "v2 notes"})
    kind = REGISTRY["approval"]
    config = kind.config_model.model_validate({"message": "Publish ${draft}?"})

    kind.run(config, ctx)
    assert kind.finish is not None
    outcome = kind.finish(config, ctx, {"approvedBy": "alice", "approvedAt": "t"})

    assert any("Publish v2 notes?" in line for line in lines)
    assert outcome.output["message"] == "Publish v2 notes?"


@pytest.mark.parametrize(
    ("left", "right", "expected"),
    [({"a": 1}, "a", True), ({"a": 1}, ["a"], False), ([["x"]], ["x"], True), ("abc", "b", True)],
)
def test_contains_never_crashes_on_unhashable_values(left: Any, right: Any, expected: bool) -> None:
    ctx, _ = node_context({"l": left, "r": right})
    outcome = run_node("condition", {"left": "${l}", "op": "contains", "right": "${r}", "then": "a", "else": "b"}, ctx)
    assert outcome.output["result"] is expected
