"""The local log's execution lines: one per state change, whoever writes it, read from moto's table."""

from __future__ import annotations

import io
import re
from typing import Any

from stepwise.local.execution_states import ExecutionStateLog, print_state_changes
from tests.support.builders import wait_for_state
from tests.support.streams import Writes

LINE = re.compile(r"^\d\d:\d\d:\d\d execution (exe_\w+) ([A-Z]+)(?:: (.*))?$")


def state_lines(out: io.StringIO) -> list[tuple[str, str, str | None]]:
    return [(m.group(1), m.group(2), m.group(3)) for line in out.getvalue().splitlines() if (m := LINE.match(line))]


def start(api: Any, nodes: list[dict[str, Any]]) -> str:
    created = api.post("/api/workflows", json_body={"name": "logged", "nodes": nodes})
    assert created.status == 201, created.body
    started = api.post(f"/api/workflows/execute/{created.body['data']['id']}")
    assert started.status == 202, started.body
    return str(started.body["data"]["executionId"])


def test_each_state_change_of_an_execution_is_one_line(aws: Any, api: Any) -> None:
    out = io.StringIO()
    with print_state_changes(aws.environment["TABLE_NAME"], aws.region, out):
        # Given an execution that waits between two nodes (RUNNING while it waits; instant nodes alone would go
        # from PENDING to COMPLETED in one step)
        execution_id = start(
            api,
            [
                {"id": "a", "type": "setVariables", "config": {"values": {"x": 1}}},
                {"id": "wait", "type": "delay", "config": {"seconds": 0}},
                {"id": "b", "type": "setVariables", "config": {"values": {"y": 2}}},
            ],
        )
        wait_for_state(api, execution_id, {"COMPLETED"})

    # Then the log holds its states in order, once each
    assert state_lines(out) == [
        (execution_id, "PENDING", None),
        (execution_id, "RUNNING", None),
        (execution_id, "COMPLETED", None),
    ]


def test_a_failed_execution_line_carries_its_error(aws: Any, api: Any) -> None:
    out = io.StringIO()
    with print_state_changes(aws.environment["TABLE_NAME"], aws.region, out):
        execution_id = start(
            api, [{"id": "a", "type": "setVariables", "config": {"values": {"x": "${missing.value}"}}}]
        )
        failed = wait_for_state(api, execution_id, {"FAILED"})

    assert state_lines(out)[-1] == (execution_id, "FAILED", failed["error"])


def test_nothing_is_printed_once_it_is_left(aws: Any, api: Any) -> None:
    out = io.StringIO()
    with print_state_changes(aws.environment["TABLE_NAME"], aws.region, out):
        pass

    wait_for_state(
        api, start(api, [{"id": "a", "type": "setVariables", "config": {"values": {"x": 1}}}]), {"COMPLETED"}
    )

    assert out.getvalue() == ""


class Attribute:
    def __init__(self, value: str) -> None:
        self.value = value


class Item:
    """moto's stored item, as the stream shard receives it."""

    def __init__(self, **attributes: str) -> None:
        self.attrs = {name: Attribute(value) for name, value in attributes.items()}


def test_each_line_is_written_whole() -> None:
    # The request log writes to the same stream from other threads: a line in two parts could be split.
    out = Writes()
    log = ExecutionStateLog(out)

    log.add(None, Item(PK="EXECUTION#exe_1", SK="EXECUTION", state="PENDING"))

    assert len(out.writes) == 1
    assert LINE.match(out.writes[0].removesuffix("\n")) and out.writes[0].endswith("\n")
