"""The local stand-ins: read ``template.yaml`` and run the project's handlers on moto, in one process.

Nothing here runs in Lambda (the layer ships it, but no handler imports it); it needs the dev
dependencies (PyYAML, moto) that ``requirements-dev.txt`` installs.
"""
