"""What the CLI prints on stdout (results) and the exit codes it ends with."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_CANCELED = 3
EXIT_API = 4
EXIT_INTERRUPTED = 130


def print_json(value: Any) -> None:
    """One resource, as indented JSON on stdout."""
    print(json.dumps(value, indent=2, ensure_ascii=False))


def print_rows(rows: Sequence[dict[str, Any]], columns: Sequence[str], as_json: bool) -> None:
    """A listing: aligned columns (or a JSON array with ``--json``) on stdout."""
    if as_json:
        print_json(list(rows))
        return
    cells = [[str(row.get(c) if row.get(c) is not None else "-") for c in columns] for row in rows]
    widths = [max([len(c), *(len(line[i]) for line in cells)]) for i, c in enumerate(columns)]
    for line in [list(columns), *cells]:
        print("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip())
