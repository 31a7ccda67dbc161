"""A log stream for tests that look at how the local stack writes its log."""

from __future__ import annotations

import io


class Writes(io.StringIO):
    """A text stream that keeps each ``write()`` apart, to check a line goes out in one write."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[str] = []

    def write(self, text: str) -> int:
        self.writes.append(text)
        return super().write(text)
