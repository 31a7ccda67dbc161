"""Which distributions the Lambda layer installs: requirements.txt's, resolved, minus the runtime's AWS SDK.

``make -f layers/stepwise/Makefile`` (what ``sam build`` runs for the layer) resolves requirements.txt for
Lambda's platform with ``pip install --dry-run --report``, then installs exactly the pins this prints,
``--no-deps``. The Lambda Python runtime ships boto3 and botocore; a copy in the layer (aws-xray-sdk, behind
Powertools' tracer, asks for botocore) would add about 30 MB and shadow the runtime's. Adding a line to
requirements.txt is all it takes to ship another dependency, with its own dependencies.

    python layer_dependencies.py <pip report.json>   # prints name==version, one a line
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

# The AWS SDK the Lambda Python runtime provides. What it depends on stays when something of ours asks for
# it too, at the version the tests ran: jmespath (Powertools), urllib3 (requests), python-dateutil and six
# (croniter).
RUNTIME_PROVIDED = frozenset({"boto3", "botocore", "s3transfer"})


def canonical(name: str) -> str:
    """A distribution's name as PEP 503 compares them (``Python_Dateutil`` == ``python-dateutil``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def layer_pins(report: Mapping[str, Any], runtime_provided: Iterable[str] = RUNTIME_PROVIDED) -> list[str]:
    """``name==version`` for every distribution pip would install, except those the runtime provides."""
    provided = {canonical(name) for name in runtime_provided}
    pins = []
    for item in report["install"]:
        metadata = item["metadata"]
        if canonical(metadata["name"]) not in provided:
            pins.append(f"{metadata['name']}=={metadata['version']}")
    return sorted(pins, key=str.lower)


if __name__ == "__main__":
    print("\n".join(layer_pins(json.loads(Path(sys.argv[1]).read_text(encoding="utf-8")))))
