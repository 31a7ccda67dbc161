"""The CLI below the network: its parser, what it reads from the user, and what the watch view shows.

The API is a stand-in (``ScriptedApi``) that answers from a script, so nothing here opens a socket; the
same commands over real HTTP are in tests/integration/test_local_stack.py.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from stepwise.cli import commands, watch
from stepwise.cli.api import Api, unreachable
from stepwise.cli.commands import browser_at_hand, cmd_execution_watch, cmd_open, file_command
from stepwise.cli.inputs import UsageError, apply_settings, parse_value, parse_variables, since
from stepwise.cli.main import api_address, build_parser
from stepwise.cli.output import EXIT_CANCELED, EXIT_FAILED, EXIT_OK

WORKFLOW_ID = "wf_01J00000000000000000000000"
EXECUTION_ID = "exe_01J00000000000000000000000"


class ScriptedApi(Api):
    """Answers each GET path with the next answer scripted for it (the last one repeats)."""

    def __init__(self, answers: dict[str, list[Any]]) -> None:
        super().__init__("http://api.invalid", "token")
        self.answers = answers
        self.sent: list[tuple[str, str, Any]] = []
        self.params: list[tuple[str, dict[str, str] | None]] = []

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        self.sent.append((method, path, kwargs.get("json_body")))
        self.params.append((path, kwargs.get("params")))
        queue = self.answers[f"{method} {path}"]
        return queue.pop(0) if len(queue) > 1 else queue[0]


def envelope(data: Any) -> dict[str, Any]:
    return {"success": True, "data": data}


def execution(state: str, **fields: Any) -> dict[str, Any]:
    return {"id": EXECUTION_ID, "workflowId": WORKFLOW_ID, "state": state, "nodeStates": {}, "logs": [], **fields}


# ------------------------------------------------------------------------------------------ --var


@pytest.mark.parametrize(
    ("typed", "value"),
    [
        ("5", 5),
        ("-2", -2),
        ("3.14", 3.14),
        ("true", True),
        ("null", None),
        ('"quoted"', "quoted"),
        ('{"a": 1}', {"a": 1}),
        ('{"a":1}', {"a": 1}),  # an object's spacing is not what the user meant
        ("[1, 2]", [1, 2]),
        # not read back exactly as typed: kept as the text
        ("1e3", "1e3"),
        ("1.0", "1.0"),
        ("1.50", "1.50"),
        ("007", "007"),
        ("+5", "+5"),
        ("-0", "-0"),
        (" 5", " 5"),
        ("NaN", "NaN"),
        ("Infinity", "Infinity"),
        ("abc", "abc"),
        ("", ""),
    ],
)
def test_a_var_value_is_json_only_when_it_reads_back_as_typed(typed: str, value: Any) -> None:
    assert parse_value(typed) == value
    assert type(parse_value(typed)) is type(value)


def test_vars_override_the_var_file_key_by_key(tmp_path: Path) -> None:
    var_file = tmp_path / "vars.yaml"
    var_file.write_text("id: 7\nname: Ada\n")

    variables = parse_variables(["id=1e3", "n=5", "eq=a=b"], str(var_file))

    assert variables == {"id": "1e3", "name": "Ada", "n": 5, "eq": "a=b"}


@pytest.mark.parametrize("pair", ["novalue", "=5"])
def test_a_var_without_key_and_value_is_a_usage_error(pair: str) -> None:
    with pytest.raises(UsageError, match="expected key=value"):
        parse_variables([pair], None)


# ------------------------------------------------------------------------------------------ --set


def test_set_changes_fields_of_the_document_nested_ones_too() -> None:
    document = {"name": "flow", "variables": {"keep": 1}}

    changed = apply_settings(document, ["variables.base=http://127.0.0.1:4000", "timeoutSeconds=30"], "f.yaml")

    assert changed == {
        "name": "flow",
        "variables": {"keep": 1, "base": "http://127.0.0.1:4000"},
        "timeoutSeconds": 30,
    }


@pytest.mark.parametrize(
    ("document", "pair", "problem"),
    [
        ({"name": "x"}, "name.first=Ada", "name in f.yaml is not an object"),
        ({"name": "x"}, "name", "expected field=value"),
        ({"name": "x"}, "a..b=1", "expected field=value"),
        (["not", "an", "object"], "name=x", "needs f.yaml to hold an object"),
    ],
)
def test_a_set_that_cannot_apply_is_a_usage_error(document: Any, pair: str, problem: str) -> None:
    with pytest.raises(UsageError, match=problem):
        apply_settings(document, [pair], "f.yaml")


# ---------------------------------------------------------------------------------------- parser


def test_execution_watch_takes_an_execution_id() -> None:
    args = build_parser().parse_args(["execution", "watch", EXECUTION_ID])

    assert args.func is cmd_execution_watch
    assert args.id == EXECUTION_ID
    assert args.needs_token


@pytest.mark.parametrize(("noun", "flag"), [("workflow", "-q"), ("agent", "--quiet")])
def test_create_has_a_quiet_mode(noun: str, flag: str) -> None:
    assert build_parser().parse_args([noun, "create", flag, "f.yaml"]).quiet
    assert not build_parser().parse_args([noun, "create", "f.yaml"]).quiet


def test_quiet_create_prints_only_the_new_id(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    definition = tmp_path / "agent.yaml"
    definition.write_text("name: agent\nprotocol: json\n")
    api = ScriptedApi({"POST /api/agents": [envelope({"id": "ag_01J", "name": "agent"})]})
    args = build_parser().parse_args(["agent", "create", "-q", str(definition), "--set", "endpoint=http://a/json"])

    assert file_command("POST", "/api/agents")(args, api) == EXIT_OK

    assert capsys.readouterr().out == "ag_01J\n"
    assert api.sent == [("POST", "/api/agents", {"name": "agent", "protocol": "json", "endpoint": "http://a/json"})]


# ------------------------------------------------------------------------------ where the API is


@pytest.mark.parametrize(
    ("argv", "environment", "expected"),
    [
        (["--url", "http://127.0.0.1:4000"], {"STEPWISE_URL": "http://x"}, ("http://127.0.0.1:4000", "from --url")),
        ([], {"STEPWISE_URL": "http://127.0.0.1:4000"}, ("http://127.0.0.1:4000", "from STEPWISE_URL")),
        ([], {}, ("http://127.0.0.1:3000", "the default")),
    ],
)
def test_the_api_url_comes_from_url_then_stepwise_url_then_the_default(
    argv: list[str], environment: dict[str, str], expected: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("STEPWISE_URL", raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)

    assert api_address(build_parser().parse_args(["workflow", "list", *argv])) == expected


def test_the_unreachable_hint_says_where_the_url_came_from_and_how_to_change_it() -> None:
    hint = unreachable("http://127.0.0.1:3000", "the default")

    assert hint.startswith("cannot reach http://127.0.0.1:3000 (the default): is `make dev` running?")
    assert "--url" in hint
    assert "STEPWISE_URL" in hint


# ---------------------------------------------------------------------------------- the watch view


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(0.0, "0 ms"), (0.001, "1 ms"), (0.85, "850 ms"), (1.004, "1.0 s"), (59.9, "59.9 s"), (125, "2 min 05 s")],
)
def test_durations_read_at_a_glance(seconds: float, shown: str) -> None:
    assert watch.format_duration(seconds) == shown


def test_durations_of_hours_read_at_a_glance() -> None:
    assert watch.format_duration(3 * 3600 + 7 * 60 + 12) == "3 h 07 min"
    assert watch.format_duration(None) == ""


def test_a_nodes_time_is_its_real_duration_waits_included() -> None:
    # a 1 s delay, then a node still running for 2.5 s
    record = execution(
        "RUNNING",
        nodeStates={
            "pause": {
                "state": "COMPLETED",
                "startedAt": "2030-01-01T12:00:00.000Z",
                "completedAt": "2030-01-01T12:00:01.004Z",
            },
            "call": {"state": "RUNNING", "startedAt": "2030-01-01T12:00:01.100Z", "completedAt": None},
            "later": {"state": "PENDING", "startedAt": None, "completedAt": None},
        },
        logs=[
            {"nodeId": "pause", "message": "waiting 1 s"},
            {"nodeId": "pause", "message": "Node completed in 1004 ms"},
        ],
    )
    now = datetime(2030, 1, 1, 12, 0, 3, 600_000, tzinfo=UTC)

    rows = watch.node_rows(record, {"pause": "delay", "call": "agentTask"}, now)

    assert [(r.node_id, r.node_type, r.state, r.duration, r.last_log) for r in rows] == [
        ("pause", "delay", "COMPLETED", "1.0 s", "Node completed in 1004 ms"),
        ("call", "agentTask", "RUNNING", "2.5 s", ""),
        ("later", "", "PENDING", "", ""),
    ]


def test_change_lines_show_each_change_once_and_the_end_last() -> None:
    seen: dict[str, str] = {}
    running = execution("RUNNING", nodeStates={"a": {"state": "RUNNING", "startedAt": "2030-01-01T12:00:00.000Z"}})
    ended = execution(
        "COMPLETED",
        nodeStates={
            "a": {
                "state": "COMPLETED",
                "startedAt": "2030-01-01T12:00:00.000Z",
                "completedAt": "2030-01-01T12:00:02.000Z",
            }
        },
    )

    first = watch.change_lines(seen, running, {"a": "delay"})
    again = watch.change_lines(seen, running, {"a": "delay"})
    last = watch.change_lines(seen, ended, {"a": "delay"})

    assert [line[9:] for line in first] == [f"execution {EXECUTION_ID} RUNNING", "  node a [delay] RUNNING"]
    assert again == []
    assert [line[9:] for line in last] == ["  node a [delay] COMPLETED (2.0 s)", f"execution {EXECUTION_ID} COMPLETED"]


AT = "2030-01-01T12:00:00.000Z"


def events_page(last_seq: int, *events: dict[str, Any], state: str = "RUNNING") -> dict[str, Any]:
    return envelope({"events": list(events), "lastSeq": last_seq, "state": state})


def happened(seq: int, kind: str, **fields: Any) -> dict[str, Any]:
    return {"seq": seq, "type": kind, "at": fields.pop("at", AT), **fields}


@pytest.mark.parametrize(
    ("final", "last", "code", "stdout", "stderr"),
    [
        (
            execution("COMPLETED", output={"answer": 42}),
            happened(4, "execution.completed"),
            EXIT_OK,
            {"answer": 42},
            "COMPLETED",
        ),
        (
            execution("FAILED", error="Node 'a' (delay) failed: boom"),
            happened(4, "execution.failed", error="Node 'a' (delay) failed: boom"),
            EXIT_FAILED,
            None,
            "failed: Node 'a'",
        ),
        (
            execution("CANCELED"),
            happened(4, "execution.canceled", by={"sub": "u-1", "name": "Alice"}),
            EXIT_CANCELED,
            None,
            "was canceled by Alice",
        ),
    ],
)
def test_execution_watch_follows_any_execution_by_its_events_to_its_end(
    final: dict[str, Any],
    last: dict[str, Any],
    code: int,
    stdout: Any,
    stderr: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given an execution this CLI did not start: only its id is known
    api = ScriptedApi(
        {
            f"GET /api/workflows/execute/{EXECUTION_ID}": [envelope(execution("RUNNING")), envelope(final)],
            f"GET /api/workflows/execute/{EXECUTION_ID}/events": [
                events_page(2, happened(1, "execution.started"), happened(2, "execution.running")),
                events_page(3, happened(3, "node.started", nodeId="a", run=1)),
                events_page(4, last, state=final["state"]),
            ],
            f"GET /api/workflows/{WORKFLOW_ID}": [envelope({"id": WORKFLOW_ID, "nodes": []})],
        }
    )
    args = build_parser().parse_args(["execution", "watch", EXECUTION_ID])

    # When it is watched
    result = args.func(args, api)

    # Then its workflow is learnt from the execution, and the exit code and output say how it ended
    assert ("GET", f"/api/workflows/{WORKFLOW_ID}", None) in api.sent
    assert result == code
    out, err = capsys.readouterr()
    assert (json.loads(out) if out else None) == stdout
    assert stderr in err
    # and it followed the events by their cursor, waiting for each next one, reading the execution only twice
    cursors = [params for path, params in api.params if path.endswith("/events")]
    assert [(p or {}).get("after") for p in cursors] == ["0", "2", "3"]
    assert [(p or {}).get("waitSeconds") for p in cursors] == [
        "0",
        str(watch.WATCH_WAIT_SECONDS),
        str(watch.WATCH_WAIT_SECONDS),
    ]
    assert [path for path, _ in api.params].count(f"/api/workflows/execute/{EXECUTION_ID}") == 2


def test_the_view_folds_each_event_in_and_a_superseded_run_changes_nothing() -> None:
    first = execution(
        "RUNNING", startedByName="Alice", nodeStates={"a": {"state": "PENDING"}, "b": {"state": "PENDING"}}
    )
    events = [
        happened(3, "node.started", nodeId="a", run=1, at="2030-01-01T12:00:00.000Z"),
        happened(4, "log", nodeId="a", run=1, level="info", message="calling agent helper (json)"),
        happened(5, "node.started", nodeId="a", run=2, at="2030-01-01T12:00:05.000Z"),
        happened(6, "node.failed", nodeId="a", run=1, error="superseded by a retry of the same step; result discarded"),
        happened(7, "node.completed", nodeId="a", run=2, startedAt="2030-01-01T12:00:05.000Z", durationMs=1000),
        happened(8, "node.skipped", nodeId="b"),
        happened(9, "execution.canceled", by={"sub": "u-2", "name": "Bob"}),
    ]

    view = watch.followed(first, events, {"a": "agentTask"})

    assert view["nodeStates"]["a"]["state"] == "COMPLETED"
    assert view["nodeStates"]["a"]["startedAt"] == "2030-01-01T12:00:05.000Z"
    assert view["nodeStates"]["b"]["state"] == "SKIPPED"
    assert (view["state"], view["canceledBy"]) == ("CANCELED", "Bob")
    assert first["state"] == "RUNNING"  # the view first read is left as it was
    rows = {row.node_id: row for row in watch.node_rows(view, {"a": "agentTask"})}
    assert rows["a"].last_log == "Node completed in 1000 ms"
    lines = watch.change_lines({}, view, {"a": "agentTask"})
    assert lines[-1].endswith(f"execution {EXECUTION_ID} CANCELED by Bob")


# --------------------------------------------------------------------------------- execution list


class ListingApi(Api):
    """Answers every GET with pages of three rows, and records the query each page was asked with."""

    def __init__(self) -> None:
        super().__init__("http://api.invalid", "token")
        self.queries: list[dict[str, str]] = []

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        assert (method, path) == ("GET", "/api/executions")
        self.queries.append(dict(kwargs["params"]))
        page = len(self.queries)
        return {"data": [{"id": f"exe_{page}{n}"} for n in range(3)], "nextCursor": f"after-{page}"}


def test_execution_list_asks_for_the_filters_given_and_no_more_rows_than_its_limit(
    capsys: pytest.CaptureFixture[str],
) -> None:
    api = ListingApi()
    argv = ["execution", "list", "--workflow", WORKFLOW_ID, "--state", "FAILED", "--since", "2h", "--limit", "5"]
    args = build_parser().parse_args([*argv, "--json"])

    args.func(args, api)

    first, second = api.queries
    assert set(first) == {"workflowId", "state", "from", "limit"}
    assert (first["workflowId"], first["state"], first["limit"]) == (WORKFLOW_ID, "FAILED", "5")
    assert datetime.fromisoformat(first["from"]) < datetime.now(UTC)
    assert (second["cursor"], second["limit"]) == ("after-1", "2")
    assert [row["id"] for row in json.loads(capsys.readouterr().out)] == [
        "exe_10",
        "exe_11",
        "exe_12",
        "exe_20",
        "exe_21",
    ]


@pytest.mark.parametrize(
    ("typed", "ago"), [("90s", {"seconds": 90}), ("30m", {"minutes": 30}), ("1h", {"hours": 1}), ("7d", {"days": 7})]
)
def test_since_is_that_long_before_now(typed: str, ago: dict[str, int]) -> None:
    now = datetime(2030, 1, 8, 12, 0, tzinfo=UTC)

    assert datetime.fromisoformat(since(typed, now)) == now - timedelta(**ago)


@pytest.mark.parametrize("typed", ["1", "h", "yesterday", "1.5h", "-1h"])
def test_a_since_without_number_and_unit_is_a_usage_error(typed: str) -> None:
    with pytest.raises(UsageError, match="a number and a unit"):
        since(typed)


def test_since_and_from_do_not_go_together(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["execution", "list", "--since", "1h", "--from", "2030-01-01"])

    assert "not allowed with argument" in capsys.readouterr().err


def test_agent_delete_passes_force() -> None:
    sent: list[Any] = []

    class Recorder(Api):
        def request(self, method: str, path: str, **kwargs: Any) -> Any:
            sent.append((method, path, kwargs.get("params")))
            return {"success": True, "message": "deleted"}

    for argv, params in (([], None), (["--force"], {"force": "true"})):
        args = build_parser().parse_args(["agent", "delete", "ag_1", *argv])
        args.func(args, Recorder("http://api.invalid", "token"))
        assert sent.pop() == ("DELETE", "/api/agents/ag_1", params)


# ------------------------------------------------------------------------------------------ open


class Terminal:
    """A stand-in for a terminal's stdin or stdout."""

    def isatty(self) -> bool:
        return True


def opening(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The links ``open`` hands to a browser, recorded instead of opened."""
    opened: list[str] = []
    monkeypatch.setattr("webbrowser.open", lambda link: opened.append(link) or True)
    return opened


@pytest.mark.parametrize(
    ("resource_id", "page", "api_path"),
    [
        (EXECUTION_ID, f"/ui/executions/{EXECUTION_ID}", f"/api/workflows/execute/{EXECUTION_ID}"),
        (WORKFLOW_ID, f"/ui/workflows/{WORKFLOW_ID}", f"/api/workflows/{WORKFLOW_ID}"),
    ],
)
def test_open_prints_the_viewers_link_with_the_token_once_the_api_knows_the_id(
    resource_id: str, page: str, api_path: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    opened = opening(monkeypatch)
    api = ScriptedApi({f"GET {api_path}": [envelope({"id": resource_id})]})

    code = cmd_open(build_parser().parse_args(["open", resource_id]), api)

    assert code == EXIT_OK
    assert capsys.readouterr().out == f"http://api.invalid{page}#token=token\n"
    assert api.sent == [("GET", api_path, None)]
    assert opened == []  # printed for a script (stdout is not a terminal here), never opened


def test_open_takes_only_an_execution_or_a_workflow_id() -> None:
    with pytest.raises(UsageError, match="neither an execution id"):
        cmd_open(build_parser().parse_args(["open", "ag_01J00000000000000000000000"]), ScriptedApi({}))


def test_open_opens_a_browser_at_a_desktops_terminal_unless_told_not_to(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    opened = opening(monkeypatch)
    monkeypatch.setattr(commands, "browser_at_hand", lambda: True)
    api = ScriptedApi({f"GET /api/workflows/{WORKFLOW_ID}": [envelope({"id": WORKFLOW_ID})]})

    cmd_open(build_parser().parse_args(["open", WORKFLOW_ID, "--no-browser"]), api)
    assert opened == []
    cmd_open(build_parser().parse_args(["open", WORKFLOW_ID]), api)
    assert opened == [f"http://api.invalid/ui/workflows/{WORKFLOW_ID}#token=token"]
    assert "the link holds your token" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("platform", "display", "at_hand"),
    [("linux", None, False), ("linux", ":0", True), ("darwin", None, True), ("win32", None, True)],
)
def test_a_browser_is_at_hand_at_a_terminal_of_a_desktop(
    platform: str, display: str | None, at_hand: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Without a display Python's webbrowser would start a text browser in the terminal.
    monkeypatch.setattr("sys.stdin", Terminal())
    monkeypatch.setattr("sys.stdout", Terminal())
    monkeypatch.setattr("sys.platform", platform)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    if display:
        monkeypatch.setenv("DISPLAY", display)
    else:
        monkeypatch.delenv("DISPLAY", raising=False)

    assert browser_at_hand() is at_hand


def test_a_browser_is_never_at_hand_for_a_script(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", Terminal())
    monkeypatch.setattr("sys.platform", "darwin")

    assert browser_at_hand() is False  # stdout is pytest's capture, as it would be a pipe
