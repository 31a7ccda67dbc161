"""The local stack's stand-in for a schedule: work done every few seconds on a daemon thread."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator

log = logging.getLogger(__name__)


@contextlib.contextmanager
def repeating(work: Callable[[], object], interval: float, name: str) -> Iterator[None]:
    """Call ``work`` every ``interval`` seconds while the context is open; the thread stops (and is joined) on exit.

    A failed call is logged and the next one tries again (moto stopping under it, for one).
    """
    stop = threading.Event()

    def run() -> None:
        while not stop.wait(interval):
            try:
                work()
            except Exception:
                log.exception("%s: failed; trying again in %s s", name, interval)

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=max(5.0, interval * 2))
