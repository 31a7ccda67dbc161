"""stepwise: a serverless workflow execution service.

One shared package, shipped as a Lambda layer and imported by the same name by the Lambda handlers, the
local stack, the CLI and the tests. Layers, top to bottom: ``service`` (use cases), ``nodes`` (one module
per node type), ``store`` / ``stepfunctions`` / ``secrets`` / ``schedules`` (one adapter per AWS service),
``models`` (pydantic), ``errors``, ``settings``.
"""

__version__ = "0.1.0"
