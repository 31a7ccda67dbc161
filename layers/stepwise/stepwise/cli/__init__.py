"""``stepwise``: the command line for the stepwise API, local (``make dev``) or deployed.

Every command but ``dev`` talks HTTP to ``--url`` (default ``$STEPWISE_URL``, else the local stack at
http://127.0.0.1:3000) and, except ``token``, sends ``--token`` (default ``$STEPWISE_TOKEN``) as the bearer
token. ``stepwise token --user NAME`` asks the local stack for a token (it exists only there)::

    export STEPWISE_TOKEN=$(stepwise token --user demo)
    stepwise run wf_0000000000000000000000DEM0 --watch

Results go to stdout (JSON for one resource, aligned columns for lists, ``--json`` for raw lists);
messages, progress and errors go to stderr. Exit codes: 0 success (``run --watch``: COMPLETED),
1 FAILED, 2 usage error, 3 CANCELED, 4 the API refused the request or could not be reached,
130 interrupted (``run --watch`` and ``execution watch`` share them). rich, PyYAML and requests are
imported only by the commands that use them, so ``stepwise --help`` stays fast.

The package: ``api`` (the HTTP helper), ``inputs`` (documents and ``--var`` values), ``output`` (what goes
to stdout, exit codes), ``watch`` (the live view of an execution), ``commands`` and ``main`` (the parser).
"""

from __future__ import annotations

from stepwise.cli.main import main

__all__ = ["main"]
