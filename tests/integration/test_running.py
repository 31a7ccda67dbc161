"""Running workflows end to end: the API starts them, the real ASL runs under moto, the node runner runs the
nodes, and agents answer over real HTTP from a server on 127.0.0.1.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.agent_server import AgentServer, Reply
from tests.support.builders import wait_for_state, wait_until


@pytest.fixture
def agent_server() -> Iterator[AgentServer]:
    with AgentServer() as server:
        yield server


def create_agent(api: Any, server: AgentServer, path: str = "/agent", **fields: Any) -> str:
    body = {"name": "helper", "endpoint": f"{server.url}{path}", "protocol": "json", **fields}
    answer = api.post("/api/agents", json_body=body)
    assert answer.status == 201, answer.body
    return str(answer.body["data"]["id"])


def run(api: Any, definition: dict[str, Any], variables: dict[str, Any] | None = None) -> str:
    created = api.post("/api/workflows", json_body=definition)
    assert created.status == 201, created.body
    started = api.post(f"/api/workflows/execute/{created.body['data']['id']}", json_body={"variables": variables or {}})
    assert started.status == 202, started.body
    return str(started.body["data"]["executionId"])


def test_a_multi_node_workflow_with_an_agent_completes_with_its_answer(api: Any, agent_server: AgentServer) -> None:
    # Given an agent (with a credential) that echoes the prompt it receives
    agent_server.script("/agent", Reply.echo_json())
    agent_id = create_agent(api, agent_server, credential="sk-local-secret", headers={"X-Team": "docs"})
    definition = {
        "name": "summarize",
        "variables": {"user": {"name": "Ada"}},
        "nodes": [
            {"id": "prepare", "type": "setVariables", "config": {"values": {"topic": "engines for ${user.name}"}}},
            {
                "id": "ask",
                "type": "agentTask",
                "config": {"agentId": agent_id, "prompt": "Summarize ${topic}", "outputVariable": "summary"},
            },
            {"id": "finish", "type": "setVariables", "config": {"values": {"done": True}}},
        ],
        "output": ["summary", "done"],
    }

    # When it runs
    execution = wait_for_state(api, run(api, definition), {"COMPLETED", "FAILED"})

    # Then the agent got the interpolated prompt, the variables and the credential, and its answer is stored
    assert execution["state"] == "COMPLETED", execution["error"]
    request = agent_server.requests[0]
    assert request.method == "POST"
    assert request.json["prompt"] == "Summarize engines for Ada"
    assert request.json["variables"]["topic"] == "engines for Ada"
    assert request.json["executionId"] == execution["id"] and request.json["nodeId"] == "ask"
    assert request.header("Authorization") == "Bearer sk-local-secret"
    assert request.header("X-Team") == "docs"
    assert execution["variables"]["summary"]["answer"] == "echo: Summarize engines for Ada"
    assert execution["output"] == {"summary": execution["variables"]["summary"], "done": True}
    assert [execution["nodeStates"][n]["state"] for n in ("prepare", "ask", "finish")] == ["COMPLETED"] * 3
    assert execution["nodeStates"]["ask"]["output"]["answer"] == "echo: Summarize engines for Ada"
    messages = [line["message"] for line in execution["logs"] if line["nodeId"] == "ask"]
    assert any("calling agent helper" in m for m in messages)
    assert "sk-local-secret" not in str(execution)


def test_an_openai_chat_agent_stores_the_first_choice(api: Any, agent_server: AgentServer) -> None:
    agent_server.script("/chat", Reply.openai_echo())
    agent_id = create_agent(api, agent_server, path="/chat", protocol="openai-chat", model="gpt-test")
    definition = {
        "name": "chat",
        "nodes": [{"id": "ask", "type": "agentTask", "config": {"agentId": agent_id, "prompt": "Hi ${who}"}}],
    }

    execution = wait_for_state(api, run(api, definition, {"who": "there"}), {"COMPLETED", "FAILED"})

    assert execution["state"] == "COMPLETED", execution["error"]
    assert execution["variables"]["ask"] == "echo: Hi there"
    sent = agent_server.requests[0].json
    assert sent["model"] == "gpt-test"
    assert sent["messages"] == [{"role": "user", "content": "Hi there"}]


def test_a_failing_agent_fails_the_execution_with_that_nodes_error(api: Any, agent_server: AgentServer) -> None:
    agent_server.script("/agent", Reply(status=503, json={"error": "overloaded"}))
    agent_id = create_agent(api, agent_server)
    definition = {
        "name": "fails",
        "nodes": [
            {
                "id": "ask",
                "type": "agentTask",
                "config": {"agentId": agent_id, "prompt": "x"},
                "retry": {"maxAttempts": 2, "backoffSeconds": 0},
            },
            {"id": "after", "type": "setVariables", "config": {"values": {"reached": True}}},
        ],
    }

    execution = wait_for_state(api, run(api, definition), {"COMPLETED", "FAILED"})

    assert execution["state"] == "FAILED"
    assert execution["error"].startswith("Node 'ask' (agentTask) failed:")
    assert "503" in execution["error"]
    assert execution["nodeStates"]["ask"]["state"] == "FAILED"
    assert execution["nodeStates"]["after"]["state"] == "SKIPPED"
    assert "reached" not in execution["variables"]
    assert len(agent_server.requests) == 2
    attempts = [line for line in execution["logs"] if "attempt" in line["message"]]
    assert len(attempts) >= 2


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (Reply.garbage(), "not JSON"),
        (Reply.huge(3 * 1024 * 1024), "more than"),
    ],
)
def test_an_agent_answering_garbage_or_too_much_fails_the_node_cleanly(
    api: Any, agent_server: AgentServer, reply: Reply, expected: str
) -> None:
    agent_server.script("/agent", reply)
    agent_id = create_agent(api, agent_server)
    definition = {
        "name": "g",
        "nodes": [{"id": "ask", "type": "agentTask", "config": {"agentId": agent_id, "prompt": "x"}}],
    }

    execution = wait_for_state(api, run(api, definition), {"COMPLETED", "FAILED"})

    assert execution["state"] == "FAILED"
    assert expected in execution["error"]


def test_a_condition_skips_the_branch_not_taken(api: Any) -> None:
    definition = {
        "name": "branch",
        "nodes": [
            {
                "id": "check",
                "type": "condition",
                "config": {"left": "${score}", "op": "gte", "right": 50, "then": "pass", "else": "fail"},
            },
            {"id": "fail", "type": "setVariables", "config": {"values": {"result": "failed"}}, "next": "end"},
            {"id": "pass", "type": "setVariables", "config": {"values": {"result": "passed"}}},
            {"id": "end", "type": "setVariables", "config": {"values": {"finished": True}}},
        ],
    }

    execution = wait_for_state(api, run(api, definition, {"score": 72}), {"COMPLETED", "FAILED"})

    assert execution["state"] == "COMPLETED", execution["error"]
    assert execution["variables"]["result"] == "passed"
    states = {node: view["state"] for node, view in execution["nodeStates"].items()}
    assert states == {"check": "COMPLETED", "fail": "SKIPPED", "pass": "COMPLETED", "end": "COMPLETED"}
    assert execution["nodeStates"]["check"]["output"] == {"result": True, "next": "pass"}


def test_a_delay_waits_in_the_state_machine(api: Any) -> None:
    definition = {
        "name": "wait",
        "nodes": [
            {"id": "pause", "type": "delay", "config": {"seconds": 1}},
            {"id": "after", "type": "setVariables", "config": {"values": {"after": "${now}"}}},
        ],
    }
    execution_id = run(api, definition, {"now": "later"})

    waiting = wait_until(
        lambda: (
            (e := api.get(f"/api/workflows/execute/{execution_id}").body["data"])["nodeStates"]["pause"]["state"]
            == "RUNNING"
            and e
        ),
        message="the delay node to be RUNNING",
    )
    assert waiting["state"] == "RUNNING"
    execution = wait_for_state(api, execution_id, {"COMPLETED", "FAILED"})

    assert execution["state"] == "COMPLETED", execution["error"]
    assert execution["nodeStates"]["pause"]["output"] == {"waitedSeconds": 1}
    assert execution["variables"]["after"] == "later"
    # the node's duration counts its wait, in its times and in its last log line alike
    completed = [line["message"] for line in execution["logs"] if line["nodeId"] == "pause"][-1]
    assert int(completed.removeprefix("Node completed in ").removesuffix(" ms")) >= 900


def test_an_approval_pauses_until_resumed(api: Any) -> None:
    definition = {
        "name": "approve",
        "nodes": [
            {"id": "review", "type": "approval", "config": {"message": "ship it?"}},
            {"id": "ship", "type": "setVariables", "config": {"values": {"shipped": True}}},
        ],
    }
    execution_id = run(api, definition)

    paused = wait_for_state(api, execution_id, {"PAUSED", "FAILED"})
    assert paused["state"] == "PAUSED"
    assert paused["nodeStates"]["review"]["state"] == "RUNNING"
    assert paused["nodeStates"]["ship"]["state"] == "PENDING"
    # Another user cannot approve
    assert api.post(f"/api/workflows/execute/{execution_id}/resume", user="mallory").status == 403

    resumed = api.post(f"/api/workflows/execute/{execution_id}/resume")
    assert resumed.status == 200
    assert resumed.body == {"success": True, "message": f"Execution {execution_id} approved and resumed"}

    execution = wait_for_state(api, execution_id, {"COMPLETED", "FAILED"})
    assert execution["state"] == "COMPLETED", execution["error"]
    assert execution["nodeStates"]["review"]["output"]["approvedBy"] == "alice"
    assert execution["nodeStates"]["review"]["output"]["approvedByName"] == "alice"
    assert execution["variables"]["shipped"] is True
    again = api.post(f"/api/workflows/execute/{execution_id}/resume")
    assert again.status == 409


def test_an_approval_nobody_gives_times_out_and_fails(api: Any) -> None:
    definition = {
        "name": "approve",
        "nodes": [
            {"id": "review", "type": "approval", "config": {"timeoutSeconds": 1}},
            {"id": "ship", "type": "setVariables", "config": {"values": {"shipped": True}}},
        ],
    }

    execution = wait_for_state(api, run(api, definition), {"COMPLETED", "FAILED"})

    assert execution["state"] == "FAILED"
    assert execution["error"] == "Node 'review' (approval) failed: nobody approved within 1 s"
    assert execution["nodeStates"]["review"]["state"] == "FAILED"
    assert execution["nodeStates"]["ship"]["state"] == "SKIPPED"


def test_pause_takes_effect_at_the_next_node_boundary_and_resume_goes_on(api: Any, agent_server: AgentServer) -> None:
    agent_server.script("/agent", Reply(json={"ok": True}, delay=1.0))
    agent_id = create_agent(api, agent_server)
    definition = {
        "name": "pausable",
        "nodes": [
            {"id": "slow", "type": "agentTask", "config": {"agentId": agent_id, "prompt": "x"}},
            {"id": "next", "type": "setVariables", "config": {"values": {"after": 1}}},
        ],
    }
    execution_id = run(api, definition)
    agent_server.wait_for_requests(1, timeout=15)

    asked = api.post(f"/api/workflows/execute/{execution_id}/pause")
    assert asked.status == 200
    paused = wait_for_state(api, execution_id, {"PAUSED", "COMPLETED", "FAILED"})
    assert paused["state"] == "PAUSED"
    assert paused["nodeStates"]["slow"]["state"] == "COMPLETED"
    assert paused["nodeStates"]["next"]["state"] == "PENDING"
    assert api.post(f"/api/workflows/execute/{execution_id}/pause").status == 409

    assert api.post(f"/api/workflows/execute/{execution_id}/resume").status == 200
    execution = wait_for_state(api, execution_id, {"COMPLETED", "FAILED"})
    assert execution["state"] == "COMPLETED"
    assert execution["variables"]["after"] == 1


def test_cancel_during_a_slow_agent_call_stops_the_run(
    api: Any, agent_server: AgentServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from stepwise.service import runner

    # Given an agent that takes 10 s to answer, and a node after it that calls the agent again
    agent_server.script("/agent", Reply(json={"late": True}, delay=10.0))
    agent_id = create_agent(api, agent_server)
    definition = {
        "name": "cancelable",
        "nodes": [
            {"id": "slow", "type": "agentTask", "config": {"agentId": agent_id, "prompt": "x"}},
            {"id": "later", "type": "agentTask", "config": {"agentId": agent_id, "prompt": "y"}},
        ],
    }
    steps: list[tuple[float, str]] = []
    original_step = runner.step

    def watched_step(*args: Any, **kwargs: Any) -> Any:
        answer = original_step(*args, **kwargs)
        steps.append((time.monotonic(), answer["status"]))
        return answer

    monkeypatch.setattr(runner, "step", watched_step)
    execution_id = run(api, definition)
    agent_server.wait_for_requests(1, timeout=15)

    # When it is canceled while the agent call is in flight
    began = time.monotonic()
    answer = api.delete(f"/api/workflows/execute/{execution_id}")

    # Then it is CANCELED at once, the node in flight is marked canceled and nothing after it runs
    assert answer.status == 200
    execution = api.get(f"/api/workflows/execute/{execution_id}").body["data"]
    assert execution["state"] == "CANCELED"
    assert execution["nodeStates"]["slow"]["state"] == "FAILED"
    assert execution["nodeStates"]["slow"]["error"] == "canceled"
    assert execution["nodeStates"]["later"]["state"] == "SKIPPED"
    assert any("result discarded" in line["message"] for line in execution["logs"])
    # The node runner notices within its poll interval: its step ends, with the run, without the agent's answer
    ended = wait_until(lambda: [at for at, status in steps if status == "ended"], timeout=5, message="the step to end")
    assert ended[0] - began < 5
    final = api.get(f"/api/workflows/execute/{execution_id}").body["data"]
    assert final["state"] == "CANCELED"
    assert "late" not in str(final["variables"])
    assert len(agent_server.requests) == 1
    # and the cancel stays the last event: the runner appended nothing after it
    events = api.get(f"/api/workflows/execute/{execution_id}/events?limit=500").body["data"]["events"]
    assert events[-1]["type"] == "execution.canceled"


def test_cancel_of_a_paused_execution_is_final(api: Any, aws: Any) -> None:
    import boto3

    definition = {"name": "approve", "nodes": [{"id": "review", "type": "approval", "config": {}}]}
    execution_id = run(api, definition)
    wait_for_state(api, execution_id, {"PAUSED"})

    assert api.delete(f"/api/workflows/execute/{execution_id}").status == 200

    # The parked task is failed by the cancel, so the state machine runs its failure path to the end,
    # through the node runner, which must leave CANCELED alone
    arn = aws.state_machine_arn.replace(":stateMachine:", ":execution:") + f":{execution_id}"
    sfn = boto3.client("stepfunctions")
    wait_until(lambda: sfn.describe_execution(executionArn=arn)["status"] != "RUNNING", message="the run to end")
    assert api.post(f"/api/workflows/execute/{execution_id}/resume").status == 409
    execution = api.get(f"/api/workflows/execute/{execution_id}").body["data"]
    assert execution["state"] == "CANCELED"
    assert execution["error"] is None
    assert execution["nodeStates"]["review"]["state"] == "FAILED"
    assert execution["nodeStates"]["review"]["error"] == "canceled"


def test_the_step_limit_stops_a_loop(api: Any) -> None:
    definition = {
        "name": "loop",
        "maxNodeRuns": 6,
        "nodes": [
            {"id": "tick", "type": "setVariables", "config": {"values": {"spins": "${spins}"}}},
            {
                "id": "again",
                "type": "condition",
                "config": {"left": 1, "op": "eq", "right": 1, "then": "tick", "else": "tick"},
            },
        ],
    }

    execution = wait_for_state(api, run(api, definition, {"spins": 0}), {"COMPLETED", "FAILED"})

    assert execution["state"] == "FAILED"
    assert "step limit reached: 6 node runs" in execution["error"]


def test_an_unknown_variable_fails_the_node_naming_the_path(api: Any) -> None:
    definition = {
        "name": "typo",
        "nodes": [{"id": "use", "type": "setVariables", "config": {"values": {"x": "${user.emial}"}}}],
    }

    execution = wait_for_state(api, run(api, definition, {"user": {"email": "a@b.c"}}), {"COMPLETED", "FAILED"})

    assert execution["state"] == "FAILED"
    assert "${user.emial}" in execution["error"]


def test_an_http_request_node_stores_status_headers_and_parsed_body(api: Any, agent_server: AgentServer) -> None:
    agent_server.script("/orders/42", Reply(json={"id": 42, "total": 99.5}, headers={"X-Trace": "t-1"}))
    definition = {
        "name": "fetch",
        "nodes": [
            {
                "id": "fetch",
                "type": "httpRequest",
                "config": {"method": "GET", "url": agent_server.url + "/orders/${orderId}", "outputVariable": "order"},
            },
            {
                "id": "check",
                "type": "condition",
                "config": {"left": "${order.body.total}", "op": "gt", "right": 50, "then": "big", "else": "small"},
            },
            {"id": "small", "type": "setVariables", "config": {"values": {"size": "small"}}, "next": "big"},
            {"id": "big", "type": "setVariables", "config": {"values": {"size": "${order.body.id}"}}},
        ],
    }

    execution = wait_for_state(api, run(api, definition, {"orderId": 42}), {"COMPLETED", "FAILED"})

    assert execution["state"] == "COMPLETED", execution["error"]
    order = execution["variables"]["order"]
    assert order["status"] == 200
    assert order["body"] == {"id": 42, "total": 99.5}
    assert order["headers"]["X-Trace"] == "t-1"
    assert execution["variables"]["size"] == 42


def test_calls_to_the_cloud_metadata_address_are_refused(api: Any) -> None:
    definition = {
        "name": "ssrf",
        "nodes": [
            {"id": "steal", "type": "httpRequest", "config": {"url": "http://169.254.169.254/latest/meta-data/"}}
        ],
    }

    execution = wait_for_state(api, run(api, definition), {"COMPLETED", "FAILED"})

    assert execution["state"] == "FAILED"
    assert "refusing" in execution["error"]


def test_a_big_node_output_is_kept_whole_and_the_next_node_reads_it(api: Any, agent_server: AgentServer) -> None:
    agent_server.script("/big", Reply(json={"blob": "x" * 200_000, "id": 7}))
    definition = {
        "name": "big",
        "nodes": [
            {"id": "fetch", "type": "httpRequest", "config": {"url": agent_server.url + "/big"}},
            {
                "id": "after",
                "type": "setVariables",
                "config": {"values": {"id": "${fetch.body.id}", "copy": "${fetch.body.blob}"}},
            },
        ],
    }

    execution = wait_for_state(api, run(api, definition), {"COMPLETED", "FAILED"})

    # No truncation: the value is whole, in the variables and to the next node
    assert execution["state"] == "COMPLETED", execution["error"]
    assert execution["variables"]["fetch"]["body"]["blob"] == "x" * 200_000
    assert execution["variables"]["copy"] == "x" * 200_000
    assert execution["variables"]["id"] == 7
    # The node's output is the value it set: shown as a reference to the route that returns it whole
    output = execution["nodeStates"]["fetch"]["output"]
    assert output["bytes"] > 200_000 and "/variables/fetch?seq=" in output["$ref"]
    assert api.get(output["$ref"]).body["data"]["body"]["blob"] == "x" * 200_000


def fat_workflow(nodes: int) -> dict[str, Any]:
    """Each node sets a 1 MB variable of its own (ten copies of a 100 KB one)."""
    return {
        "name": f"{nodes} fat nodes",
        "variables": {"seed": "x" * 100_000},
        "nodes": [
            {"id": f"s{i}", "type": "setVariables", "config": {"values": {f"v{i}": "${seed}" * 10}}}
            for i in range(nodes)
        ],
    }


def test_variables_up_to_the_documented_limit_complete(api: Any) -> None:
    # Four 1 MB values and the 100 KB seed: 4,100,010 bytes of variables, under the 4 MiB limit (and the output
    # is all of them)
    definition = fat_workflow(4)

    execution = wait_for_state(api, run(api, definition), {"COMPLETED", "FAILED"})

    assert execution["state"] == "COMPLETED", execution["error"]
    assert len(execution["output"]) == 5
    # The view stays within Lambda's 6 MB answer: what does not fit inline is a reference to its route
    shown = execution["variables"]
    assert sum(1 for value in shown.values() if isinstance(value, dict) and "$ref" in value) >= 1
    for name, value in shown.items():
        whole = api.get(value["$ref"]).body["data"] if isinstance(value, dict) else value
        assert whole == "x" * (100_000 if name == "seed" else 1_000_000), name


def test_variables_past_the_limit_fail_the_node_that_grows_them(api: Any) -> None:
    definition = fat_workflow(5)

    execution = wait_for_state(api, run(api, definition), {"COMPLETED", "FAILED"})

    assert execution["state"] == "FAILED"
    assert execution["error"] == (
        "Node 's4' (setVariables) failed: variables would grow to 5100012 bytes; an execution's variables are "
        "at most 4194304 (MAX_VARIABLES_TOTAL_BYTES)"
    )
    assert execution["nodeStates"]["s4"]["state"] == "FAILED"
    assert execution["nodeStates"]["s3"]["state"] == "COMPLETED"


def test_a_node_output_past_the_limit_fails_the_node_naming_the_limit_and_the_size(api: Any) -> None:
    definition = {
        "name": "doubles",
        "variables": {"part": "x" * 100_000},
        "nodes": [{"id": "both", "type": "setVariables", "config": {"values": {"whole": "${part}" * 12}}}],
    }

    execution = wait_for_state(api, run(api, definition), {"COMPLETED", "FAILED"})

    assert execution["error"] == (
        "Node 'both' (setVariables) failed: its value of 'whole' is 1200002 bytes; a node's output is at most "
        "1048576 (MAX_OUTPUT_BYTES)"
    )


def test_a_slow_calls_log_lines_show_while_it_waits(api: Any, agent_server: AgentServer) -> None:
    agent_server.script("/agent", Reply(json={"ok": True}, delay=3.0))
    agent_id = create_agent(api, agent_server)
    definition = {
        "name": "slow",
        "nodes": [{"id": "ask", "type": "agentTask", "config": {"agentId": agent_id, "prompt": "x"}}],
    }
    execution_id = run(api, definition)

    def progress() -> Any:
        execution = api.get(f"/api/workflows/execute/{execution_id}").body["data"]
        lines = [line["message"] for line in execution["logs"] if line["nodeId"] == "ask"]
        return execution["state"] == "RUNNING" and any("attempt 1 of" in line for line in lines) and lines

    lines = wait_until(progress, timeout=10, message="the call's attempt to show while it runs")
    assert any(line.startswith("Node started") for line in lines)
    execution = wait_for_state(api, execution_id, {"COMPLETED", "FAILED"})
    messages = [line["message"] for line in execution["logs"]]
    assert messages.count("Node started: agentTask, run 1") == 1
    assert any(m.startswith("Node completed") for m in messages)


def test_a_1_mb_agent_answer_is_read_whole_by_the_next_node(api: Any, agent_server: AgentServer) -> None:
    # Given an agent that answers 1 MB of JSON, and a second node whose prompt is all of it
    answer = {"text": "y" * 1_000_000}
    agent_server.script("/big", Reply(json=answer))
    agent_server.script("/echo", Reply(json={"ok": True}))
    big = create_agent(api, agent_server, path="/big")
    echo = create_agent(api, agent_server, path="/echo")
    definition = {
        "name": "big answer",
        "nodes": [
            {"id": "ask", "type": "agentTask", "config": {"agentId": big, "prompt": "write a lot"}},
            {"id": "use", "type": "agentTask", "config": {"agentId": echo, "prompt": "${ask.text}"}},
        ],
    }

    execution = wait_for_state(api, run(api, definition), {"COMPLETED", "FAILED"})

    # Then the next node got it whole, in its prompt and in the variables sent along
    assert execution["state"] == "COMPLETED", execution["error"]
    sent = agent_server.requests[1].json
    assert sent["prompt"] == answer["text"]
    assert sent["variables"]["ask"] == answer
    # It is kept whole in S3: the log references it, and its route returns it
    events = api.get(f"/api/workflows/execute/{execution['id']}/events").body["data"]["events"]
    completed = next(e for e in events if e["type"] == "node.completed" and e["nodeId"] == "ask")
    assert completed["variables"]["ask"]["bytes"] == 1_000_011
    assert api.get(completed["variables"]["ask"]["$ref"]).body["data"] == answer
    assert execution["variables"]["ask"] == answer  # within the view's budget: shown inline
