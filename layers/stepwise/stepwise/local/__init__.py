"""The local stand-ins: read ``template.yaml`` and run the project's handlers on moto.

Nothing here runs in Lambda: the layer leaves it out (``layers/stepwise/Makefile``), and no module the layer
ships imports it. It needs the dev dependencies (PyYAML, moto) that ``requirements-dev.txt`` installs.
"""
