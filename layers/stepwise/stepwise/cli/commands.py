"""What each command does: one function per command, or a small factory for commands alike."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import Any

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
    execution_id = str(started["executionId"])
    if not args.watch:
        print(execution_id)
        return EXIT_OK
    print(f"stepwise: started execution {execution_id}", file=sys.stderr)
    return follow(api, execution_id)


def cmd_execution_watch(args: argparse.Namespace, api: Api) -> int:
    """Watch any execution, however it was started (CLI, curl, schedule), with the view of ``run --watch``."""
    return follow(api, args.id)
