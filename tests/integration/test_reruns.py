"""Rerun from any node: the API function answers in process (the ``api`` fixture), the real ASL runs under
moto, and agents answer over real HTTP from a server on 127.0.0.1. (``test_reruns_local_stack`` drives the same
through ``stepwise dev`` and the CLI.)
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.agent_server import AgentServer, Reply
from tests.support.builders import pending_execution, wait_for_state

ENDED = {"COMPLETED", "FAILED", "CANCELED"}


@pytest.fixture
def agents() -> Iterator[AgentServer]:
    with AgentServer() as server:
        yield server


def create_agent(api: Any, server: AgentServer, path: str) -> str:
    answer = api.post("/api/agents", json_body={"name": path.strip("/"), "endpoint": server.url + path})
    assert answer.status == 201, answer.body
    return str(answer.body["data"]["id"])


def create_workflow(api: Any, definition: dict[str, Any]) -> str:
    answer = api.post("/api/workflows", json_body=definition)
    assert answer.status == 201, answer.body
    return str(answer.body["data"]["id"])


def start(api: Any, workflow_id: str, variables: dict[str, Any] | None = None) -> str:
    answer = api.post(f"/api/workflows/execute/{workflow_id}", json_body={"variables": variables or {}})
    assert answer.status == 202, answer.body
    return str(answer.body["data"]["executionId"])


def rerun(api: Any, execution_id: str, body: dict[str, Any] | None = None, **kwargs: Any) -> Any:
    return api.post(f"/api/workflows/execute/{execution_id}/rerun", json_body=body or {}, **kwargs)


def rerun_id(api: Any, execution_id: str, body: dict[str, Any] | None = None) -> str:
    answer = rerun(api, execution_id, body)
    assert answer.status == 202, answer.body
    return str(answer.body["data"]["executionId"])


def events(api: Any, execution_id: str) -> list[dict[str, Any]]:
    answer = api.get(f"/api/workflows/execute/{execution_id}/events?limit=500")
    assert answer.status == 200, answer.body
    return list(answer.body["data"]["events"])


def agent_task(node_id: str, agent_id: str, prompt: str) -> dict[str, Any]:
    return {
        "id": node_id,
        "type": "agentTask",
        "config": {"agentId": agent_id, "prompt": prompt},
        "retry": {"maxAttempts": 1, "backoffSeconds": 0},
    }


def three_agents(api: Any, agents: AgentServer, third: str) -> dict[str, Any]:
    """prepare -> research (agent) -> write (the agent at ``third``) -> finish."""
    research = create_agent(api, agents, "/research")
    writer = create_agent(api, agents, third)
    return {
        "name": "article",
        "variables": {"topic": "engines"},
        "nodes": [
            {"id": "prepare", "type": "setVariables", "config": {"values": {"subject": "${topic} for kids"}}},
            agent_task("research", research, "Research ${subject}"),
            agent_task("write", writer, "Write about ${research.answer}"),
            {"id": "finish", "type": "setVariables", "config": {"values": {"done": True}}},
        ],
    }


def test_a_run_that_failed_at_its_third_node_goes_on_from_it_once_fixed_without_calling_earlier_agents_again(
    api: Any, agents: AgentServer
) -> None:
    # Given a run that fails at its third node: its agent answers 500
    agents.script("/research", Reply.echo_json())
    agents.script("/broken", Reply(status=500, json={"error": "down"}))
    agents.script("/fixed", Reply.echo_json())
    definition = three_agents(api, agents, "/broken")
    workflow_id = create_workflow(api, definition)
    source_id = start(api, workflow_id)
    source = wait_for_state(api, source_id, ENDED)
    assert source["state"] == "FAILED" and "'write'" in source["error"]
    source_events = events(api, source_id)

    # And the workflow is fixed with a PUT: the third node calls a working agent
    definition["nodes"][2] = agent_task("write", create_agent(api, agents, "/fixed"), "Write about ${research.answer}")
    assert api.put(f"/api/workflows/{workflow_id}", json_body=definition).status == 200

    # When it is rerun on the latest version (from the node that failed, the default)
    answer = rerun(api, source_id, {"version": "latest"})

    # Then a new execution began at the failed node, ran the fixed version and completed
    assert answer.status == 202, answer.body
    assert answer.body["data"]["rerunOf"] == source_id and answer.body["data"]["workflowId"] == workflow_id
    assert answer.body["message"] == f"Rerun of {source_id} from node 'write' (version 2) initiated successfully"
    rerun_id = answer.body["data"]["executionId"]
    assert rerun_id != source_id
    execution = wait_for_state(api, rerun_id, ENDED)
    assert execution["state"] == "COMPLETED", execution["error"]
    assert execution["workflowVersion"] == 2
    assert execution["rerunOf"] == {"executionId": source_id, "fromNode": "write"}
    assert execution["variables"]["write"]["answer"] == "echo: Write about echo: Research engines for kids"
    assert execution["variables"]["done"] is True

    # And the agent before the failed node was called once in all: the source's call is reused
    assert len([r for r in agents.requests if r.path == "/research"]) == 1
    assert len([r for r in agents.requests if r.path == "/fixed"]) == 1
    for node_id in ("prepare", "research"):
        reused, was = execution["nodeStates"][node_id], source["nodeStates"][node_id]
        assert reused["state"] == "COMPLETED" and reused["reused"] is True and reused["runs"] == 0
        assert (reused["startedAt"], reused["completedAt"], reused["output"]) == (
            was["startedAt"],
            was["completedAt"],
            was["output"],
        )
    for node_id in ("write", "finish"):
        assert execution["nodeStates"][node_id]["reused"] is False
        assert execution["nodeStates"][node_id]["runs"] == 1

    # And the events say so: the first group starts it as a rerun and reuses the two nodes
    happened = events(api, rerun_id)
    assert [e["type"] for e in happened[:3]] == ["execution.started", "node.reused", "node.reused"]
    assert happened[0]["rerunOf"] == {"executionId": source_id, "fromNode": "write"}
    assert [e["nodeId"] for e in happened[1:3]] == ["prepare", "research"]
    assert "write" not in happened[0]["variables"] and happened[0]["variables"]["subject"] == "engines for kids"
    assert any(line["message"].startswith("Node reused: ") for line in execution["logs"])

    # And the source is unchanged
    assert api.get(f"/api/workflows/execute/{source_id}").body["data"] == source
    assert events(api, source_id) == source_events


# a -> b -> c: each builds on the one before; the start's name is used by b only.
CHAIN = {
    "name": "chain",
    "variables": {"name": "Ada"},
    "nodes": [
        {"id": "a", "type": "setVariables", "config": {"values": {"x": 1, "note": "from a"}}},
        {"id": "b", "type": "setVariables", "config": {"values": {"y": "${x}-${name}", "note": "from b"}}},
        {"id": "c", "type": "setVariables", "config": {"values": {"z": "${y}!"}}},
    ],
}


def test_a_rerun_from_the_middle_of_a_completed_run_takes_the_variables_as_they_were_with_a_patch(api: Any) -> None:
    # Given a completed run of a -> b -> c
    source_id = start(api, create_workflow(api, CHAIN))
    source = wait_for_state(api, source_id, ENDED)
    assert source["variables"] == {"name": "Ada", "x": 1, "note": "from b", "y": "1-Ada", "z": "1-Ada!"}

    # When it is rerun from b with one variable changed
    execution_id = rerun_id(api, source_id, {"fromNode": "b", "variables": {"name": "Bob"}})

    # Then b and c ran on the variables as a left them, the patch over them; a was not run again
    execution = wait_for_state(api, execution_id, ENDED)
    assert execution["state"] == "COMPLETED", execution["error"]
    assert execution["variables"] == {"name": "Bob", "x": 1, "note": "from b", "y": "1-Bob", "z": "1-Bob!"}
    started = events(api, execution_id)[0]
    assert started["variables"] == {"name": "Bob", "x": 1, "note": "from a"}
    assert execution["workflowVersion"] == source["workflowVersion"]
    assert execution["rerunOf"] == {"executionId": source_id, "fromNode": "b"}
    states = execution["nodeStates"]
    assert (states["a"]["reused"], states["b"]["reused"], states["c"]["reused"]) == (True, False, False)
    assert states["a"]["output"] == source["nodeStates"]["a"]["output"] == {"x": 1, "note": "from a"}
    node_runs = [e["nodeId"] for e in events(api, execution_id) if e["type"] == "node.started"]
    assert node_runs == ["b", "c"]


def test_a_completed_run_is_rerun_from_its_beginning_by_default_reusing_nothing(api: Any) -> None:
    source_id = start(api, create_workflow(api, CHAIN))
    wait_for_state(api, source_id, ENDED)

    answer = rerun(api, source_id)

    assert answer.status == 202, answer.body
    assert "from node 'a'" in answer.body["message"]
    execution = wait_for_state(api, answer.body["data"]["executionId"], ENDED)
    assert execution["state"] == "COMPLETED"
    assert not any(state["reused"] for state in execution["nodeStates"].values())
    assert events(api, execution["id"])[0]["variables"] == {"name": "Ada"}


# tick runs three times (trail "x", "xx", "xxx"), then done.
LOOP = {
    "name": "loop",
    "variables": {"trail": ""},
    "nodes": [
        {"id": "tick", "type": "setVariables", "config": {"values": {"trail": "${trail}x"}}},
        {
            "id": "enough",
            "type": "condition",
            "config": {"left": "${trail}", "op": "eq", "right": "xxx", "then": "done", "else": "tick"},
        },
        {"id": "done", "type": "setVariables", "config": {"values": {"finished": True}}},
    ],
}


def test_a_rerun_from_a_node_in_a_loop_goes_on_from_its_latest_run(api: Any) -> None:
    source_id = start(api, create_workflow(api, LOOP))
    wait_for_state(api, source_id, ENDED)

    execution = wait_for_state(api, rerun_id(api, source_id, {"fromNode": "tick"}), ENDED)

    # Its latest run saw "xx": it runs once more, and the loop ends as before
    assert execution["state"] == "COMPLETED", execution["error"]
    assert events(api, execution["id"])[0]["variables"] == {"trail": "xx"}
    assert execution["variables"]["trail"] == "xxx"
    assert execution["nodeStates"]["tick"]["runs"] == 1
    # enough completed before that run and runs again after it: its own run replaces the reused one
    assert execution["nodeStates"]["enough"] | {"startedAt": None, "completedAt": None} == {
        "state": "COMPLETED",
        "startedAt": None,
        "completedAt": None,
        "error": None,
        "output": execution["nodeStates"]["enough"]["output"],
        "runs": 1,
        "reused": False,
    }


def test_a_rerun_is_an_ordinary_execution_that_is_canceled_and_rerun_again(api: Any, agents: AgentServer) -> None:
    # Given a run that failed at its third node, and a rerun of it that fails there again (then the agent hangs)
    agents.script("/research", Reply.echo_json())
    down = Reply(status=500, json={"error": "down"})
    agents.script("/broken", down, down, Reply(delay=30, json={"late": True}))
    source_id = start(api, create_workflow(api, three_agents(api, agents, "/broken")))
    assert wait_for_state(api, source_id, ENDED)["state"] == "FAILED"
    first = wait_for_state(api, rerun_id(api, source_id), ENDED)
    assert first["state"] == "FAILED"
    assert first["nodeStates"]["research"]["reused"] is True

    # When the rerun is rerun from where it failed: what it reused is reused again
    second_id = rerun_id(api, first["id"])
    second = wait_for_state(api, second_id, {"RUNNING"})
    assert second["rerunOf"] == {"executionId": first["id"], "fromNode": "write"}
    assert [second["nodeStates"][n]["reused"] for n in ("prepare", "research")] == [True, True]
    assert second["nodeStates"]["research"]["startedAt"] == first["nodeStates"]["research"]["startedAt"]

    # And it is canceled like any run while its agent is called
    assert api.delete(f"/api/workflows/execute/{second_id}").status == 200
    assert wait_for_state(api, second_id, ENDED)["state"] == "CANCELED"
    assert len([r for r in agents.requests if r.path == "/research"]) == 1

    # And a node it reused cannot begin a rerun of it: it never ran there
    answer = rerun(api, second_id, {"fromNode": "research"})
    assert answer.status == 400
    assert answer.body["error"] == (
        f"fromNode: node 'research' did not run in execution {second_id}, which reused it from {first['id']}: "
        f"rerun {first['id']} from it"
    )


def test_a_rerun_pauses_and_resumes_like_any_run(api: Any) -> None:
    definition = {
        "name": "waits",
        "nodes": [
            {"id": "a", "type": "setVariables", "config": {"values": {"x": 1}}},
            {"id": "wait", "type": "delay", "config": {"seconds": 1}},
            {"id": "b", "type": "setVariables", "config": {"values": {"y": "${x}"}}},
        ],
    }
    source_id = start(api, create_workflow(api, definition))
    assert wait_for_state(api, source_id, ENDED)["state"] == "COMPLETED"
    execution_id = rerun_id(api, source_id, {"fromNode": "wait", "variables": {"x": 2}})

    # A pause asked for during the delay is taken before b
    assert api.post(f"/api/workflows/execute/{execution_id}/pause").status == 200
    paused = wait_for_state(api, execution_id, {"PAUSED", *ENDED})
    assert paused["state"] == "PAUSED"
    assert paused["nodeStates"]["b"]["state"] == "PENDING" and paused["nodeStates"]["a"]["reused"] is True
    assert api.post(f"/api/workflows/execute/{execution_id}/resume").status == 200

    execution = wait_for_state(api, execution_id, ENDED)
    assert execution["state"] == "COMPLETED", execution["error"]
    assert execution["variables"] == {"x": 2, "y": 2}


# --- what is refused ------------------------------------------------------------------------------


def test_a_run_that_has_not_ended_cannot_be_rerun(api: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    execution_id = pending_execution(api, monkeypatch, CHAIN)

    answer = rerun(api, execution_id)

    assert answer.status == 409
    assert answer.body == {
        "success": False,
        "error": f"Execution {execution_id} is PENDING; only a COMPLETED, FAILED or CANCELED execution can be rerun "
        "(cancel it first, or wait for its end)",
    }


def test_only_the_owner_may_rerun_an_execution(api: Any) -> None:
    source_id = start(api, create_workflow(api, CHAIN))
    wait_for_state(api, source_id, ENDED)

    for user, groups in (("bob", None), ("root", ["admin"])):
        answer = rerun(api, source_id, user=user, groups=groups)
        assert answer.status == 403, answer.body
        assert answer.body["error"] == f"You do not have access to change execution {source_id}"


def test_an_unknown_execution_is_404(api: Any) -> None:
    unknown = "exe_01JAAAAAAAAAAAAAAAAAAAAAAA"
    assert rerun(api, unknown).body == {"success": False, "error": f"Execution {unknown} not found"}
    assert rerun(api, unknown).status == 404
    workflow_id = create_workflow(api, CHAIN)
    answer = rerun(api, workflow_id)
    assert (answer.status, answer.body["error"]) == (404, f"{workflow_id} is a workflow id, not an execution id")


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (
            {"fromNode": "nowhere"},
            "fromNode: node 'nowhere' is not in version 1 of workflow {wf}; its nodes are a, b, c",
        ),
        ({"fromNode": "c"}, "fromNode: execution {exe} never reached node 'c'; it cannot begin there"),
        ({"version": 7}, "version: workflow {wf} has no version 7; its versions are 1 to 1"),
        ({"version": "newest"}, "version"),
        ({"version": True}, "version"),
        ({"fromNode": "b", "variables": {"big": "x" * 200_000}}, "variables are 200010 bytes; the limit is 180000"),
        ({"from": "b"}, "from: Extra inputs are not permitted"),
    ],
)
def test_what_a_rerun_cannot_take_is_a_400_that_says_so(api: Any, body: dict[str, Any], error: str) -> None:
    # Given a run that failed at b: c was never reached
    definition = {**CHAIN, "nodes": [CHAIN["nodes"][0], {**CHAIN["nodes"][1], "config": {"values": {"y": "${no}"}}}]}
    definition["nodes"].append(CHAIN["nodes"][2])
    workflow_id = create_workflow(api, definition)
    source_id = start(api, workflow_id)
    assert wait_for_state(api, source_id, ENDED)["state"] == "FAILED"

    answer = rerun(api, source_id, body)

    assert answer.status == 400, answer.body
    assert error.format(wf=workflow_id, exe=source_id) in answer.body["error"]


def test_a_deleted_workflows_run_cannot_be_rerun(api: Any) -> None:
    workflow_id = create_workflow(api, CHAIN)
    source_id = start(api, workflow_id)
    wait_for_state(api, source_id, ENDED)
    assert api.delete(f"/api/workflows/{workflow_id}").status == 200

    answer = rerun(api, source_id)

    assert answer.status == 409
    assert answer.body["error"] == f"Execution {source_id} cannot be rerun: its workflow {workflow_id} was deleted"


# --- Idempotency-Key ---------------------------------------------------------------------------------


def test_a_rerun_retried_with_the_same_idempotency_key_is_the_same_rerun(api: Any) -> None:
    source_id = start(api, create_workflow(api, CHAIN))
    wait_for_state(api, source_id, ENDED)
    body = {"fromNode": "b", "variables": {"name": "Bob"}}

    first = rerun(api, source_id, body, headers={"Idempotency-Key": "fix-1"})
    again = rerun(api, source_id, body, headers={"Idempotency-Key": "fix-1"})
    other = rerun(api, source_id, body, headers={"Idempotency-Key": "fix-2"})
    changed = rerun(api, source_id, {**body, "fromNode": "c"}, headers={"Idempotency-Key": "fix-1"})

    assert first.status == again.status == other.status == 202
    assert again.body == first.body
    assert other.body["data"]["executionId"] != first.body["data"]["executionId"]
    assert (changed.status, changed.body["error"]) == (
        409,
        "Idempotency-Key was already used for a rerun with a different body; use a new key",
    )
    found = api.get("/api/executions?limit=100").body["data"]
    reruns = [row["id"] for row in found if row["rerunOf"]]
    assert sorted(reruns) == sorted([first.body["data"]["executionId"], other.body["data"]["executionId"]])


# --- values S3 keeps ---------------------------------------------------------------------------------


def test_big_values_kept_in_s3_are_carried_over_under_the_reruns_own_keys(api: Any, agents: AgentServer) -> None:
    from stepwise import wiring

    # Given a run whose first node fetched a value too big for the table (S3 keeps it), copied by the second,
    # that failed at its third
    agents.script("/big", Reply(json={"blob": "x" * 20_000, "id": 7}))
    agents.script("/write", Reply(status=500, json={"error": "down"}), Reply.echo_json())
    definition = {
        "name": "big",
        "nodes": [
            {"id": "fetch", "type": "httpRequest", "config": {"url": agents.url + "/big"}},
            {"id": "copy", "type": "setVariables", "config": {"values": {"blob": "${fetch.body.blob}"}}},
            agent_task("write", create_agent(api, agents, "/write"), "${blob}"),
        ],
    }
    source_id = start(api, create_workflow(api, definition))
    source = wait_for_state(api, source_id, ENDED)
    assert source["state"] == "FAILED"

    # When it is rerun from the node that failed
    execution = wait_for_state(api, rerun_id(api, source_id), ENDED)

    # Then the values are whole, in the rerun and to the node that reads them
    assert execution["state"] == "COMPLETED", execution["error"]
    assert execution["variables"]["fetch"]["body"]["blob"] == execution["variables"]["blob"] == "x" * 20_000
    assert [r.json["prompt"] for r in agents.requests if r.path == "/write"] == ["x" * 20_000] * 2
    assert len([r for r in agents.requests if r.path == "/big"]) == 1
    # And they are the rerun's own copies: kept under its key prefix, as its first event set them
    store, blobs = wiring.api().store, wiring.api().blobs
    kept = {item.name: item for item in store.variables(execution["id"])}
    for name in ("fetch", "blob"):
        ref = kept[name].ref
        assert ref is not None and ref.key.startswith(f"executions/{execution['id']}/0000000001/")
        assert blobs.get_json(ref.key) == source["variables"][name]
        assert kept[name].seq == 1
    started = events(api, execution["id"])[0]
    assert started["variables"]["blob"]["$ref"] == f"/api/workflows/execute/{execution['id']}/variables/blob?seq=1"
    assert api.get(started["variables"]["blob"]["$ref"]).body["data"] == "x" * 20_000
    # And a reused node's output is the source's, whose value its reference returns
    output = execution["nodeStates"]["fetch"]["output"]
    assert output == source["nodeStates"]["fetch"]["output"] and output["$ref"].startswith(
        f"/api/workflows/execute/{source_id}/variables/fetch?seq="
    )
    assert api.get(output["$ref"]).body["data"]["body"]["id"] == 7


def test_inline_values_past_a_starts_limit_go_to_s3_and_big_reused_outputs_become_references(api: Any) -> None:
    from stepwise import wiring

    # Given a run whose first node set 30 values of 7 KB each (kept inline: each is under the threshold), and
    # that failed at its second node on a variable nobody set
    values = {f"v{index:02d}": "${seed}" for index in range(30)}
    definition = {
        "name": "wide",
        "variables": {"seed": "y" * 7_000},
        "nodes": [
            {"id": "wide", "type": "setVariables", "config": {"values": values}},
            {"id": "use", "type": "setVariables", "config": {"values": {"done": "${missing}"}}},
        ],
    }
    source_id = start(api, create_workflow(api, definition))
    source = wait_for_state(api, source_id, ENDED)
    assert source["state"] == "FAILED" and "missing" in source["error"]

    # When it is rerun with the missing variable set
    execution = wait_for_state(api, rerun_id(api, source_id, {"variables": {"missing": "here"}}), ENDED)

    # Then it completed with every value whole; those past a start's limit of inline values are in S3
    assert execution["state"] == "COMPLETED", execution["error"]
    assert execution["variables"] == {**source["variables"], "missing": "here", "done": "here"}
    kept = [item for item in wiring.api().store.variables(execution["id"]) if item.ref]
    assert kept and all(item.ref.key.startswith(f"executions/{execution['id']}/") for item in kept)
    inline = events(api, execution["id"])[0]["variables"]
    assert sum(len(str(value)) for value in inline.values() if isinstance(value, str)) <= 180_000
    # And the reused node's 210 KB output is shown as references to the source's values
    output = execution["nodeStates"]["wide"]["output"]
    completed = next(e for e in events(api, source_id) if e["type"] == "node.completed")
    assert output["v00"] == {
        "$ref": f"/api/workflows/execute/{source_id}/variables/v00?seq={completed['seq']}",
        "bytes": 7_002,
    }
    assert api.get(output["v29"]["$ref"]).body["data"] == "y" * 7_000
