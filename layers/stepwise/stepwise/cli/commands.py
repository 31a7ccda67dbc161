"""What each command does: one function per command, or a small factory for commands alike."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import quote

from stepwise import ids
from stepwise.cli.api import Api, ApiError
from stepwise.cli.inputs import UsageError, apply_settings, load_document, parse_variables, since
from stepwise.cli.output import EXIT_OK, print_json, print_rows
from stepwise.cli.watch import follow

Command = Callable[[argparse.Namespace, Api], int]


def cmd_token(args: argparse.Namespace, api: Api) -> int:
    """Print a token for a local user (local stack only)."""
    try:
        body = api.request("POST", "/local/token", json_body={"user": args.user, "admin": args.admin}, auth=False)
    except ApiError as error:
        raise ApiError(f"{error}; `stepwise token` works only against the local stack (make dev)") from error
    print(body["token"])
    return EXIT_OK


def cmd_dev(args: argparse.Namespace, api: Api) -> int:
    """Run the local stack in the foreground."""
    from stepwise.local.dev import serve

    return serve(args.port, args.aws_port, state_dir=args.state_dir, fresh=args.fresh, faults=args.faults)


def file_command(method: str, path: str) -> Command:
    """A command that sends the JSON or YAML document in FILE and prints the resource it answers.

    ``--set field=value`` changes the document before it is sent (a URL that depends on where the
    service runs, say). With ``--quiet`` (where the command has it) only the resource's id is printed,
    for scripts: ``WF=$(stepwise workflow create -q flow.yaml)``.
    """

    def command(args: argparse.Namespace, api: Api) -> int:
        document = apply_settings(load_document(args.file), args.set or [], args.file)
        resource = api.data(method, path.format(**vars(args)), json_body=document)
        if getattr(args, "quiet", False):
            print(resource["id"])
        else:
            print_json(resource)
        return EXIT_OK

    return command


def get_command(path: str) -> Command:
    """A command that prints the ``data`` of ``GET path`` (``{id}`` is the ID argument)."""

    def command(args: argparse.Namespace, api: Api) -> int:
        print_json(api.data("GET", path.format(**vars(args))))
        return EXIT_OK

    return command


def list_command(path: str, columns: Sequence[str]) -> Command:
    """A command that prints every row of a listing."""

    def command(args: argparse.Namespace, api: Api) -> int:
        print_rows(api.all_pages(path.format(**vars(args))), columns, args.json)
        return EXIT_OK

    return command


def message_command(method: str, path: str) -> Command:
    """A command that prints the API's ``message`` for ``method path`` (``--force`` passes force=true)."""

    def command(args: argparse.Namespace, api: Api) -> int:
        params = {"force": "true"} if getattr(args, "force", False) else None
        print(api.message(method, path.format(**vars(args)), params=params))
        return EXIT_OK

    return command


def execution_list_command(columns: Sequence[str]) -> Command:
    """``execution list``: your executions across workflows, newest first, narrowed by the options given."""

    def command(args: argparse.Namespace, api: Api) -> int:
        if args.limit < 1:
            raise UsageError(f"--limit {args.limit}: list at least 1")
        started_from = since(args.since) if args.since else getattr(args, "from")
        chosen = {
            "workflowId": args.workflow,
            "state": args.state,
            "startedBy": args.started_by,
            "from": started_from,
            "to": args.to,
            "owner": args.owner,
        }
        params = {name: value for name, value in chosen.items() if value}
        print_rows(api.all_pages("/api/executions", params, most=args.limit), columns, args.json)
        return EXIT_OK

    return command


def cmd_schedule_create(args: argparse.Namespace, api: Api) -> int:
    """Create a schedule that starts the workflow on a timetable."""
    body: dict[str, Any] = {
        "expression": args.expression,
        "variables": parse_variables(args.var or [], args.var_file),
        "enabled": not args.disabled,
    }
    if args.timezone:
        body["timezone"] = args.timezone
    if args.description:
        body["description"] = args.description
    print_json(api.data("POST", f"/api/workflows/{args.workflow_id}/schedules", json_body=body))
    return EXIT_OK


def switch_command(enabled: bool) -> Command:
    """A command that enables or disables a schedule."""

    def command(args: argparse.Namespace, api: Api) -> int:
        path = f"/api/workflows/{args.workflow_id}/schedules/{args.schedule_id}"
        print_json(api.data("PATCH", path, json_body={"enabled": enabled}))
        return EXIT_OK

    return command


def cmd_run(args: argparse.Namespace, api: Api) -> int:
    """Start an execution; with --watch, follow it to the end."""
    variables = parse_variables(args.var or [], args.var_file)
    headers = {"idempotency-key": args.idempotency_key} if args.idempotency_key else None
    started = api.data(
        "POST", f"/api/workflows/execute/{args.workflow_id}", json_body={"variables": variables}, headers=headers
    )
    return _started(api, str(started["executionId"]), args.watch)


def _started(api: Api, execution_id: str, watch: bool, detail: str = "") -> int:
    """Print a new execution's id, or (``watch``) follow it to its end."""
    if not watch:
        print(execution_id)
        return EXIT_OK
    print(f"stepwise: started execution {execution_id}{detail}", file=sys.stderr)
    return follow(api, execution_id)


def cmd_execution_rerun(args: argparse.Namespace, api: Api) -> int:
    """Rerun an ended execution from a node, keeping what ran before it; with --watch, follow the rerun."""
    body: dict[str, Any] = {"variables": parse_variables(args.var or [], args.var_file)}
    if args.from_node:
        body["fromNode"] = args.from_node
    if args.latest:
        body["version"] = "latest"
    elif args.version is not None:
        body["version"] = args.version
    headers = {"idempotency-key": args.idempotency_key} if args.idempotency_key else None
    started = api.data("POST", f"/api/workflows/execute/{args.id}/rerun", json_body=body, headers=headers)
    return _started(api, str(started["executionId"]), args.watch, f", a rerun of {args.id}")


def cmd_execution_watch(args: argparse.Namespace, api: Api) -> int:
    """Watch any execution, however it was started (CLI, curl, schedule), with the view of ``run --watch``."""
    return follow(api, args.id)


# What `stepwise open` takes: each kind of id, the viewer's page for it, and the API path that reads it.
VIEWER_PAGES: dict[ids.Kind, tuple[str, str]] = {
    "exe": ("executions", "/api/workflows/execute/{id}"),
    "wf": ("workflows", "/api/workflows/{id}"),
}


def viewer_link(url: str, resource_id: str, token: str) -> str:
    """The viewer's page of an execution or a workflow, with ``token`` in the fragment (which no server sees)."""
    for kind, (page, _) in VIEWER_PAGES.items():
        if ids.is_id(resource_id, kind):
            return f"{url.rstrip('/')}/ui/{page}/{resource_id}#token={quote(token, safe='')}"
    raise UsageError(f"{resource_id!r} is neither an execution id (exe_...) nor a workflow id (wf_...)")


def browser_at_hand() -> bool:
    """Whether ``open`` should start a browser: only for someone at a terminal of a desktop session."""
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        return False  # a script (or a test) wants the link, not a window
    if sys.platform in ("darwin", "win32"):
        return True
    # Without a display, Python's webbrowser falls back to a text browser that would take over the terminal.
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def cmd_open(args: argparse.Namespace, api: Api) -> int:
    """Print the viewer's link to an execution or a workflow, with the CLI's token; open it where a browser is."""
    link = viewer_link(api.url, args.id, api.token or "")
    # An unknown id or a refused token is said here (exit 4) rather than by the page.
    api.data("GET", VIEWER_PAGES["exe" if ids.is_id(args.id, "exe") else "wf"][1].format(id=args.id))
    print(link)
    if not args.no_browser and browser_at_hand():
        import webbrowser

        if webbrowser.open(link):
            print("stepwise: opened in your browser (the link holds your token: share it with no one)", file=sys.stderr)
    return EXIT_OK
