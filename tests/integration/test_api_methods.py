"""A path the API has, asked with a method it does not take: a 405 that names the methods it does."""

from __future__ import annotations

from typing import Any

import pytest

WORKFLOW = "wf_" + "0" * 26
EXECUTION = "exe_" + "0" * 26


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("PATCH", f"/api/workflows/{WORKFLOW}", "GET, PUT, DELETE"),
        ("POST", "/api/agents/ag_1", "GET, PUT, DELETE"),
        ("DELETE", "/api/workflows", "GET, POST"),
        ("GET", f"/api/workflows/execute/{EXECUTION}/pause", "POST"),
        # Two paths of the document share this shape, told apart by the kind of id: a workflow's start (POST),
        # an execution (GET, DELETE); an id of neither kind could be either.
        ("PUT", f"/api/workflows/execute/{EXECUTION}", "GET, DELETE"),
        ("PUT", f"/api/workflows/execute/{WORKFLOW}", "POST"),
        ("PUT", "/api/workflows/execute/42", "GET, POST, DELETE"),
    ],
)
def test_a_method_the_path_does_not_take_is_a_405_naming_those_it_does(
    api: Any, method: str, path: str, allowed: str
) -> None:
    answer = api.request(method, path)

    assert answer.status == 405
    assert answer.body == {"success": False, "error": f"{method} is not a method of {path}; it takes {allowed}"}
    assert answer.headers["allow"] == allowed


def test_the_public_document_is_get_only_for_anyone(api: Any) -> None:
    answer = api.post("/api/openapi.json", user=None)

    assert (answer.status, answer.headers["allow"]) == (405, "GET")


def test_a_stranger_gets_a_401_before_the_methods_of_a_private_path(api: Any) -> None:
    answer = api.request("PATCH", f"/api/workflows/{WORKFLOW}", user=None)

    assert answer.status == 401
    assert "allow" not in answer.headers


def test_a_path_the_api_does_not_have_is_still_a_404(api: Any) -> None:
    answer = api.get("/api/nothing/here")

    assert answer.body == {"success": False, "error": "No route GET /api/nothing/here"}
    assert answer.status == 404
