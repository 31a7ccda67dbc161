"""The viewer's files: one page, one script and one stylesheet, plain, served by the API (:mod:`stepwise.api.pages`).

No build step and nothing from a CDN: the files here are what the browser gets. The page names each of the
other two with a hash of its content (``../viewer.js?v=<hash>``), so a browser may keep them for a year and
still never runs an old script after an upgrade: a new content is a new address.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache
from importlib.resources import files

PAGE = "viewer.html"
# The files the page loads, by name, with their content types.
ASSETS = {"viewer.js": "text/javascript; charset=utf-8", "viewer.css": "text/css; charset=utf-8"}


@dataclass(frozen=True)
class Asset:
    """One of the page's files: its text, its content type, and the hash of its content the page names it by."""

    text: str
    content_type: str
    version: str


def _read(name: str) -> str:
    return (files(__name__) / name).read_text(encoding="utf-8")


@cache
def asset(name: str) -> Asset:
    """The file ``name`` (one of :data:`ASSETS`), read once per container."""
    text = _read(name)
    return Asset(text, ASSETS[name], hashlib.sha256(text.encode()).hexdigest()[:16])


@cache
def page() -> str:
    """The page's HTML, each file it loads named by its hash (``{{viewer.js}}`` in the file)."""
    html = _read(PAGE)
    for name in ASSETS:
        html = html.replace("{{" + name + "}}", asset(name).version)
    return html
