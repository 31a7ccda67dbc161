"""Chaos: many executions at once under random injected faults, then faults off; nothing stuck, nothing twice.

Over the local stack (``stepwise dev`` as a subprocess, real HTTP), with agents that are real HTTP servers: 60
executions of six workflows (an agent that answers at once, one that is slow, one that answers 503 half the time
and is retried by the node, a delay, an approval the test resumes, a longer mix), started side by side, some
canceled, some paused and resumed, at random moments, while the stack injects Lambda faults (service errors,
throttles, crashes before and after the handler, timeouts) and throttles AWS calls (DynamoDB, StartExecution,
SendTaskSuccess, ...). The test acts as a careful client: it retries a start with the same ``Idempotency-Key``,
and any call the API answers 5xx. Then faults go off, and:

- every execution is terminal within a deadline, as the API says and as its event log says: exactly one terminal
  event, the last one (so nothing overwrote it, and nothing came after it), the same end the API showed, and the
  events numbered 1, 2, 3, ... with no gap;
- no node run completed twice (per (nodeId, run) at most one ``node.completed``);
- a cancel answered 200 ends it CANCELED, and none ends CANCELED that the test did not cancel (a cancel whose 200
  was lost to a 503 counts); none FAILED, unless its flaky agent answered 503 to every attempt;
- every call out carried ``Idempotency-Key: <executionId>:<nodeId>:<run>`` of a node run in that execution's log,
  the same on every attempt and every repeat (no workflow loops: each node runs once per execution, so every call
  for one node of one execution is one node run).

The seed (``CHAOS_SEED`` to replay one) and the counts (executions by end state, faults injected by kind, calls
out, repeated calls, restarts by the reconciler) are printed, written to ``chaos-report.json`` in the test's tmp
directory, and put in every assertion's message.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import re
import threading
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.support.agent_server import AgentServer, RecordedRequest, Reply
from tests.support.faults import faults_off, set_faults
from tests.support.local_stack import TERMINAL, Stack

pytestmark = pytest.mark.slow

EXECUTIONS = 60
# At most this many executions are driven at once (each driver polls its execution): a 2-core machine copes.
DRIVERS = 20
# Starts are spread over this long, so faults meet every phase of the runs.
START_SPREAD_SECONDS = 8.0
# Faults go off this long after the test began (the starts are sent within START_SPREAD_SECONDS, and retried).
CHAOS_SECONDS = 16.0
# Once faults are off, every execution is terminal within this long (the reconciler's local grace is 10 s, its
# tick 3 s: a run lost under faults, or a start Step Functions throttled, is started again within about 15 s).
SETTLE_SECONDS = 50.0
POLL_SECONDS = 0.5
FAULTS = {
    "lambda-error": 0.04,
    "lambda-throttle": 0.04,
    "crash-before": 0.02,
    "crash-after": 0.03,
    "timeout": 0.02,
    "throttle": 0.03,
}
USER = "chaos"
FAULT_LINE = re.compile(r"^\d\d:\d\d:\d\d fault (\S+) (\S+) \((.+)\)$", re.MULTILINE)
FLAKY_GIVES_UP = "agent flaky answered HTTP 503"


# ------------------------------------------------------------------------------------------------ the client


@dataclass
class Client:
    """A careful client of the API: it retries what the API answered 5xx (or could not answer), counting each."""

    stack: Stack
    token: str
    retried: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def call(
        self,
        method: str,
        path: str,
        *,
        retry: tuple[int, ...] = (),
        tries: int = 12,
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> requests.Response:
        """The API's answer; a 5xx, a status in ``retry`` or no answer at all is tried again, up to ``tries``."""
        answer: requests.Response | None = None
        headers = {"authorization": f"Bearer {self.token}", **(headers or {})}
        for attempt in range(tries):
            try:
                answer = requests.request(method, self.stack.url + path, headers=headers, timeout=15, **kwargs)
            except requests.RequestException as error:
                self._count(f"{method} no answer ({type(error).__name__})")
            else:
                if answer.status_code < 500 and answer.status_code not in retry:
                    return answer
                self._count(f"{method} {answer.status_code}")
            time.sleep(min(2.0, 0.1 * 2**attempt) * random.random() + 0.05)
        assert answer is not None, f"{method} {path}: no answer after {tries} tries"
        return answer

    def _count(self, what: str) -> None:
        with self.lock:
            self.retried[what] += 1

    def execution(self, execution_id: str) -> dict[str, Any]:
        answer = self.call("GET", f"/api/workflows/execute/{execution_id}")
        assert answer.status_code == 200, answer.text
        data: dict[str, Any] = answer.json()["data"]
        return data

    def events(self, execution_id: str) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        while True:
            answer = self.call("GET", f"/api/workflows/execute/{execution_id}/events?after={len(events)}&limit=500")
            assert answer.status_code == 200, answer.text
            page = answer.json()["data"]["events"]
            if not page:
                return events
            events.extend(page)


# ------------------------------------------------------------------------------------------------ the plan


@dataclass
class Plan:
    """What the test does to one execution, drawn from the seed."""

    index: int
    workflow: str
    start_at: float
    cancel_after: float | None = None
    pause_after: float | None = None
    resume_hold: float = 0.0


@dataclass
class Driven:
    """What happened to one execution, as the client saw it."""

    plan: Plan
    execution_id: str = ""
    cancel_asked: bool = False  # a cancel was sent (answered 200, or 5xx then 409: it was made, the answer lost)
    canceled: bool = False  # a cancel was answered 200
    paused: bool = False  # a pause was answered 200
    resumes: int = 0  # resumes answered 200
    seen_terminal: str | None = None
    problems: list[str] = field(default_factory=list)
    refusals: list[str] = field(default_factory=list)  # the API's answers to its changes other than 200, last ones

    def refused(self, what: str, answer: requests.Response) -> None:
        self.refusals = [*self.refusals[-4:], f"{what} {answer.status_code}: {answer.text[:300]}"]


def draw_plans(rng: random.Random) -> list[Plan]:
    kinds = ["calls", "slow", "flaky", "delay", "approval", "mix"]
    plans = []
    for index in range(EXECUTIONS):
        plan = Plan(index, kinds[index % len(kinds)], start_at=rng.uniform(0, START_SPREAD_SECONDS))
        roll = rng.random()
        if roll < 0.25:
            plan.cancel_after = rng.uniform(0, 4)  # at a random moment: before it started, mid-call, mid-delay, paused
        elif roll < 0.5:
            plan.pause_after = rng.uniform(0, 3)
        plan.resume_hold = rng.uniform(0, 1.0)
        plans.append(plan)
    return plans


def drive(client: Client, workflows: dict[str, str], plan: Plan, seed: int, began: float, stop_at: float) -> Driven:
    """Start the plan's execution at its time, cancel or pause it when due, resume it whenever it is PAUSED, and
    follow it until it is terminal (or ``stop_at``)."""
    driven = Driven(plan)
    time.sleep(max(0.0, began + plan.start_at - time.monotonic()))
    key = f"chaos-{seed}-{plan.index}"
    started = client.call(
        "POST",
        f"/api/workflows/execute/{workflows[plan.workflow]}",
        retry=(409,),  # "a start with this Idempotency-Key is in progress; retry in a moment"
        headers={"Idempotency-Key": key},
        json={"variables": {"i": plan.index}},
    )
    if started.status_code != 202:
        driven.problems.append(f"start answered {started.status_code}: {started.text}")
        return driven
    driven.execution_id = started.json()["data"]["executionId"]
    path = f"/api/workflows/execute/{driven.execution_id}"
    since = time.monotonic()
    paused_since: float | None = None
    while time.monotonic() < stop_at:
        execution = client.execution(driven.execution_id)
        state = execution["state"]
        if state in TERMINAL:
            driven.seen_terminal = state
            return driven
        elapsed = time.monotonic() - since
        if plan.cancel_after is not None and elapsed >= plan.cancel_after and not driven.canceled:
            driven.cancel_asked = True
            answer = client.call("DELETE", path)
            if answer.status_code == 200:
                driven.canceled = True
            elif answer.status_code != 409:  # 409: it ended first
                driven.problems.append(f"cancel answered {answer.status_code}: {answer.text}")
            plan.cancel_after = None
            continue
        if plan.pause_after is not None and elapsed >= plan.pause_after:
            answer = client.call("POST", f"{path}/pause")
            if answer.status_code == 200:
                driven.paused = True
            elif answer.status_code != 409:  # 409: paused at its approval already, or ended
                driven.problems.append(f"pause answered {answer.status_code}: {answer.text}")
            plan.pause_after = None
            continue
        if state == "PAUSED":
            paused_since = paused_since or time.monotonic()
            if time.monotonic() - paused_since >= plan.resume_hold:
                answer = client.call("POST", f"{path}/resume")
                if answer.status_code == 200:
                    driven.resumes += 1
                else:
                    driven.refused("resume", answer)
                    if answer.status_code != 409:
                        driven.problems.append(f"resume answered {answer.status_code}: {answer.text}")
                # A 409 ("is pausing; resume it in a moment", "no longer waits", resumed by an earlier try whose
                # answer was lost): if it is still PAUSED half a second on, resume it again.
                paused_since, plan.resume_hold = None, 0.5
                continue
        else:
            paused_since = None
        time.sleep(POLL_SECONDS * random.uniform(0.6, 1.4))
    driven.problems.append(f"still {state} after the deadline: {json.dumps(execution)[:2000]}")
    driven.problems += driven.refusals
    return driven


# ------------------------------------------------------------------------------------------------ the checks


def check_log(driven: Driven, events: list[dict[str, Any]]) -> list[str]:
    """What is wrong with one execution's event log (nothing: an empty list)."""
    problems = []
    seqs = [event["seq"] for event in events]
    if seqs != list(range(1, len(events) + 1)):
        problems.append(f"events not numbered 1..{len(events)}: {seqs}")
    terminal = [index for index, event in enumerate(events) if event["type"] in TERMINAL_EVENTS]
    if len(terminal) != 1 or terminal[0] != len(events) - 1:
        types = [event["type"] for event in events]
        problems.append(f"terminal events at {terminal} of {len(events)} (exactly one, the last, expected): {types}")
    completed = Counter((event["nodeId"], event["run"]) for event in events if event["type"] == "node.completed")
    twice = {f"{node}#{run}": count for (node, run), count in completed.items() if count > 1}
    if twice:
        problems.append(f"node runs completed more than once: {twice}")
    state = TERMINAL_EVENTS.get(events[-1]["type"]) if events else None
    if driven.seen_terminal and state != driven.seen_terminal:
        problems.append(f"the API said {driven.seen_terminal}, the log ends {events[-1]['type'] if events else None}")
    if driven.canceled and state != "CANCELED":
        problems.append(f"a cancel was answered 200, yet it ended {state}")
    if state == "CANCELED" and not driven.cancel_asked:
        problems.append("nobody canceled it, yet it ended CANCELED")
    if state == "FAILED":
        error = next(event.get("error", "") for event in reversed(events) if event["type"] == "execution.failed")
        if not (driven.plan.workflow == "flaky" and FLAKY_GIVES_UP in error):
            problems.append(f"FAILED, and not as its workflow may: {error}")
    return problems


TERMINAL_EVENTS = {"execution.completed": "COMPLETED", "execution.failed": "FAILED", "execution.canceled": "CANCELED"}


def check_calls(
    requests_seen: list[RecordedRequest], logs: dict[str, list[dict[str, Any]]]
) -> tuple[list[str], dict[str, int]]:
    """What is wrong with the calls out (every one keyed by a node run of its execution, one key per node run), and
    how many calls were repeats of an earlier one (by path)."""
    problems = []
    by_node: dict[tuple[str, str], set[str]] = defaultdict(set)
    runs_of_key: dict[str, set[tuple[str, str]]] = defaultdict(set)
    by_key: Counter[str] = Counter()
    repeats: Counter[str] = Counter()
    for request in requests_seen:
        key = request.header("Idempotency-Key")
        body = request.json if isinstance(request.json, dict) else {}
        execution_id, node_id = str(body.get("executionId")), str(body.get("nodeId"))
        if key is None:
            problems.append(f"a call without Idempotency-Key: {request.path} {body}")
            continue
        runs = {
            event["run"]
            for event in logs.get(execution_id, [])
            if event["type"] == "node.started" and event.get("nodeId") == node_id
        }
        if key not in {f"{execution_id}:{node_id}:{run}" for run in runs}:
            problems.append(f"key {key} names no run of node {node_id} in {execution_id}'s log (runs {sorted(runs)})")
        by_node[(execution_id, node_id)].add(key)
        runs_of_key[key].add((execution_id, node_id))
        if by_key[key]:
            repeats[request.path] += 1
        by_key[key] += 1
    for key, node_runs in runs_of_key.items():
        if len(node_runs) > 1:
            problems.append(f"key {key} was sent for more than one node run: {sorted(node_runs)}")
    for (execution_id, node_id), keys in by_node.items():
        if len(keys) > 1:
            problems.append(f"node {node_id} of {execution_id} (one run) was called with keys {sorted(keys)}")
    return problems, dict(repeats)


def step_functions_runs(stack: Stack, execution_id: str) -> list[str]:
    """What Step Functions says of an execution's runs (their status, and the last states each entered): for a
    report on an execution that did not end."""
    import boto3

    sfn = boto3.client(
        "stepfunctions",
        endpoint_url=f"http://127.0.0.1:{stack.aws_port}",
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )
    seen = []
    for machine in sfn.list_state_machines()["stateMachines"]:
        for run in sfn.list_executions(stateMachineArn=machine["stateMachineArn"])["executions"]:
            if not run["name"].startswith(execution_id):
                continue
            history = sfn.get_execution_history(executionArn=run["executionArn"], reverseOrder=True, maxResults=12)
            last = [
                event["type"] + ":" + event.get("stateEnteredEventDetails", {}).get("name", "")
                for event in history["events"]
            ]
            seen.append(f"run {run['name']} {run['status']}; its last events, newest first: {last}")
    return seen or ["no Step Functions run"]


def injected_faults(output: str) -> dict[str, int]:
    """Faults injected by every process of the stack, by kind (``throttle`` by operation too), from its log."""
    counts: Counter[str] = Counter()
    for kind, what, _role in FAULT_LINE.findall(output):
        counts[kind] += 1
        if kind == "throttle":
            counts[f"throttle {what}"] += 1
    return dict(sorted(counts.items()))


# ------------------------------------------------------------------------------------------------ the test


def create(client: Client, path: str, body: dict[str, Any]) -> str:
    answer = client.call("POST", path, json=body)
    assert answer.status_code == 201, answer.text
    return str(answer.json()["data"]["id"])


def workflows_of(client: Client, agent_url: str) -> dict[str, str]:
    agents = {
        name: create(client, "/api/agents", {"name": name, "endpoint": f"{agent_url}/{name}", "protocol": "json"})
        for name in ("fast", "slow", "flaky")
    }

    def setting(node_id: str) -> dict[str, Any]:
        return {"id": node_id, "type": "setVariables", "config": {"values": {node_id: "${i}"}}}

    def asking(node_id: str, agent: str, **extra: Any) -> dict[str, Any]:
        config = {"agentId": agents[agent], "prompt": f"{node_id} ${{i}}"}
        return {"id": node_id, "type": "agentTask", "config": config, **extra}

    wait = {"id": "wait", "type": "delay", "config": {"seconds": 1}}
    approve = {"id": "approve", "type": "approval", "config": {"timeoutSeconds": 300, "message": "go on?"}}
    shapes = {
        "calls": [setting("first"), asking("ask", "fast"), setting("last")],
        "slow": [setting("first"), asking("ask", "slow"), setting("last")],
        "flaky": [
            setting("first"),
            asking("ask", "flaky", retry={"maxAttempts": 4, "backoffSeconds": 0}),
            setting("last"),
        ],
        "delay": [setting("first"), wait, setting("last")],
        "approval": [setting("first"), approve, setting("last")],
        "mix": [setting("first"), asking("ask", "fast"), wait, asking("again", "slow"), setting("last")],
    }
    return {
        name: create(client, "/api/workflows", {"name": f"chaos {name}", "variables": {"i": 0}, "nodes": nodes})
        for name, nodes in shapes.items()
    }


def script_agents(agent: AgentServer) -> None:
    echo = Reply.echo_json()
    agent.script("/fast", echo)
    agent.script("/slow", dataclasses.replace(echo, delay=1.5))
    # Half the calls to the flaky agent answer 503 (the node retries them), in the order they arrive.
    agent.script("/flaky", *[Reply(503, json={"error": "busy"}), echo] * 400)


def test_chaos(stack: Stack, tmp_path: Path) -> None:
    seed = int(os.environ.get("CHAOS_SEED") or random.SystemRandom().randrange(1, 10**6))
    print(f"\nchaos: CHAOS_SEED={seed} (set it to replay this run's plan and fault draws)")
    rng = random.Random(seed)
    plans = draw_plans(rng)
    client = Client(stack, stack.token(USER))
    report: dict[str, Any] = {"seed": seed, "faults": FAULTS}

    with AgentServer() as agent:
        script_agents(agent)
        workflows = workflows_of(client, agent.url)
        began = time.monotonic()
        stop_at = began + CHAOS_SECONDS + SETTLE_SECONDS  # faults go off at CHAOS_SECONDS
        set_faults(stack.url, FAULTS, seed=seed)
        try:
            with ThreadPoolExecutor(DRIVERS) as pool:
                futures = [pool.submit(drive, client, workflows, plan, seed, began, stop_at) for plan in plans]
                time.sleep(max(0.0, began + CHAOS_SECONDS - time.monotonic()))
                faults_off(stack.url)
                faults_went_off = time.monotonic() - began
                driven = [future.result() for future in futures]
        finally:
            faults_off(stack.url)
        took = time.monotonic() - began
        calls = agent.requests

    logs = {each.execution_id: client.events(each.execution_id) for each in driven if each.execution_id}
    problems = {f"#{each.plan.index} {each.execution_id}": list(each.problems) for each in driven}
    for each in driven:
        if each.execution_id:
            problems[f"#{each.plan.index} {each.execution_id}"] += check_log(each, logs[each.execution_id])
        if each.execution_id and each.seen_terminal is None:
            problems[f"#{each.plan.index} {each.execution_id}"] += step_functions_runs(stack, each.execution_id)
    call_problems, repeats = check_calls(calls, logs)

    ends = Counter(
        TERMINAL_EVENTS.get(events[-1]["type"], "NOT ENDED") if events else "NONE" for events in logs.values()
    )
    report.update(
        {
            "executions": len(driven),
            "byEndState": dict(sorted(ends.items())),
            "canceled": sum(each.canceled for each in driven),
            "pausedAndResumed": sum(each.paused for each in driven),
            "resumes": sum(each.resumes for each in driven),
            "faultsInjected": injected_faults(stack.output()),
            "callsOut": len(calls),
            "distinctKeys": len({request.header("Idempotency-Key") for request in calls}),
            "repeatedCalls": repeats,
            "restartsByReconciler": sum(
                1 for events in logs.values() for event in events if event["type"] == "execution.restarted"
            ),
            "nodeRunsTakenOver": sum(
                1
                for events in logs.values()
                for event in events
                if event["type"] == "log" and "is made again" in event.get("message", "")
            ),
            "apiAnswersRetried": dict(sorted(client.retried.items())),
            "faultsOffAfterSeconds": round(faults_went_off, 1),
            "allTerminalAfterSeconds": round(took, 1),
            "allTerminalAfterFaultsOffSeconds": round(took - faults_went_off, 1),
        }
    )
    text = json.dumps(report, indent=2)
    (tmp_path / "chaos-report.json").write_text(text + "\n")
    print(f"chaos: report ({tmp_path / 'chaos-report.json'}):\n{text}")

    found = {name: each for name, each in problems.items() if each}
    (tmp_path / "chaos-problems.json").write_text(json.dumps({"executions": found, "calls": call_problems}, indent=2))
    message = f"CHAOS_SEED={seed}\n{text}\n"
    assert len(driven) >= 50, message
    assert not found, message + json.dumps(found, indent=2)[:20_000]
    assert not call_problems, message + "\n".join(call_problems[:50])
    assert report["faultsInjected"], message + "no fault was injected"
