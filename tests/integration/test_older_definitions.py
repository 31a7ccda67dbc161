"""A workflow stored under an older, looser rule still reads and runs (moto): the write checks run on write only.

The workflow is written the way an older version of the service would have stored it, through the store and
not the service; today's API refuses the same definition.
"""

from __future__ import annotations

from typing import Any

from stepwise import ids
from stepwise.models.workflow import WorkflowView
from tests.support.builders import wait_for_state

# What today's write refuses and a run never needs: a `next` on a condition (it continues at then or else),
# a placeholder that cannot parse in `right`, which an `exists` never reads, and a name past 200 characters.
LOOSER = {
    "name": "an old workflow " + "o" * 200,
    "variables": {"user": "Ada"},
    "nodes": [
        {
            "id": "check",
            "type": "condition",
            "config": {"left": "${user}", "op": "exists", "right": "${unused", "then": "greet", "else": "greet"},
            "next": "greet",
        },
        {"id": "greet", "type": "setVariables", "config": {"values": {"greeting": "Hello ${user}"}}},
    ],
}


def store_as_an_older_version_did(definition: dict[str, Any], owner: str) -> str:
    from stepwise import wiring

    workflow_id = ids.new_id("wf")
    stored = "2024-01-01T00:00:00.000Z"
    view = WorkflowView.model_validate(
        {**definition, "id": workflow_id, "version": 1, "owner": owner, "createdAt": stored, "updatedAt": stored}
    )
    wiring.api().store.put_new_workflow(view)
    return workflow_id


def test_today_s_write_refuses_the_older_definition(api: Any) -> None:
    answer = api.post("/api/workflows", json_body=LOOSER)

    assert answer.status == 400
    assert api.get("/api/workflows").body["data"] == []


def test_a_workflow_stored_under_a_looser_rule_still_reads_and_runs(api: Any) -> None:
    # Given a workflow stored before today's checks existed
    workflow_id = store_as_an_older_version_did(LOOSER, owner="alice")

    # When it is read over the API
    read = api.get(f"/api/workflows/{workflow_id}")
    # Then it reads as stored
    assert read.status == 200, read.body
    assert read.body["data"]["nodes"][0]["next"] == "greet"
    assert read.body["data"]["nodes"][0]["config"]["right"] == "${unused"
    assert read.body["data"]["name"] == LOOSER["name"]

    # And when it is run, it runs to the end
    started = api.post(f"/api/workflows/execute/{workflow_id}")
    assert started.status == 202, started.body
    execution = wait_for_state(api, started.body["data"]["executionId"], {"COMPLETED", "FAILED"})
    assert execution["state"] == "COMPLETED", execution.get("error")
    assert execution["variables"]["greeting"] == "Hello Ada"
    assert {node: state["state"] for node, state in execution["nodeStates"].items()} == {
        "check": "COMPLETED",
        "greet": "COMPLETED",
    }
