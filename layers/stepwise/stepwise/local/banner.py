"""What ``stepwise dev`` prints once the stack is up: where everything is and how to start the demo."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from stepwise.local.api_server import DEFAULT_PORT
from stepwise.local.demo import DEMO_USER
from stepwise.local.gateway import LOCAL_FAULTS_PATH, LOCAL_TOKEN_PATH

if TYPE_CHECKING:
    from stepwise.local.started import LocalStack


def _cli_command() -> str:
    # How the user can call the CLI: the venv's script, relative to where they stand when it is below.
    script = Path(sys.executable).parent / "stepwise"
    if not script.exists():
        return "stepwise"
    with contextlib.suppress(ValueError):
        return str(script.relative_to(Path.cwd()))
    return str(script)


def _shown(path: Path) -> str:
    with contextlib.suppress(ValueError):
        return str(path.relative_to(Path.cwd())) or "."
    return str(path)


def state_line(stack: LocalStack) -> str:
    """Where the stack keeps its state, and whether this start resumed it."""
    if stack.state is None:
        return "nowhere: everything goes when it stops"
    where = _shown(stack.state.path)
    restored = stack.restored
    if restored is None or not restored.anything:
        return f"{where} (new; kept across restarts, `stepwise dev --fresh` starts empty)"
    replayed = f", {restored.calls + restored.backends} writes replayed" if restored.calls + restored.backends else ""
    refused = f", {restored.failed_calls} refused" if restored.failed_calls else ""
    return f"{where} (resumed in {restored.seconds:.1f} s{replayed}{refused}; `stepwise dev --fresh` starts empty)"


def banner(stack: LocalStack, seconds: float) -> str:
    """The lines printed once the stack is up."""
    demo = stack.demo
    cli = _cli_command()
    if stack.api_url != f"http://127.0.0.1:{DEFAULT_PORT}":
        # The CLI's default URL is the default port: say where this stack is.
        cli = f"STEPWISE_URL={stack.api_url} {cli}"
    token_curl = f"curl -s -X POST {stack.api_url}{LOCAL_TOKEN_PATH} -H 'accept: text/plain' -d '{{\"user\":\"demo\"}}'"
    start_curl = (
        f"curl -s -X POST {stack.api_url}/api/workflows/execute/{demo.workflow_id} "
        '-H "Authorization: Bearer $STEPWISE_TOKEN"'
    )
    table = stack.deployment.environment["TABLE_NAME"]
    return "\n".join(
        [
            f"stepwise dev: ready in {seconds:.1f} s (Ctrl-C stops it)",
            f"  API         {stack.api_url}   (OpenAPI: {stack.api_url}/api/openapi.json)",
            f"  AWS         {stack.aws_url}   (aws --endpoint-url {stack.aws_url} --region {stack.deployment.region} "
            f"dynamodb scan --table-name {table}; any credentials)",
            f"  token       export STEPWISE_TOKEN=$({cli} token --user demo)",
            f"              or: export STEPWISE_TOKEN=$({token_curl})",
            f"  demo        workflow {demo.workflow_id} of user {DEMO_USER}",
            f"              agents {demo.json_agent_id} (json), {demo.chat_agent_id} (openai-chat) "
            f"at {stack.demo_agents_url}",
            f"  state       {state_line(stack)}",
            f"  faults      {stack.faults.plan().describe()}   (change: curl -X PUT {stack.api_url}{LOCAL_FAULTS_PATH} "
            "-d 'crash-after=0.1,throttle=0.1')",
            f"  see it      {cli} open {demo.workflow_id}   (the viewer: its runs, each live, with your token)",
            f"  run it      {start_curl}",
            f"              or: {cli} run {demo.workflow_id} --watch",
        ]
    )
