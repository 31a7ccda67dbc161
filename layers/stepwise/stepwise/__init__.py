"""stepwise: a serverless workflow execution service.

One shared package, shipped as a Lambda layer and imported by the same name by the Lambda handlers, the
local stack, the CLI and the tests. Layers, top to bottom: ``wiring`` (the composition root: each
function's ``settings``, and what is built from them), ``api`` (the HTTP API's Routers), ``service`` (use
cases), ``nodes`` (one module per node type), ``store`` / ``stepfunctions`` / ``secrets`` / ``schedules``
(one adapter per AWS service), ``models`` (pydantic), ``errors``. A module imports only from the layers
below it (``tests/unit/test_imports.py`` checks that no import circles back).
"""

__version__ = "0.1.0"
