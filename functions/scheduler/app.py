"""The scheduler function: EventBridge Scheduler delivers a schedule's tick here (see the schedules issue)."""

from __future__ import annotations

from typing import Any


def lambda_handler(event: dict[str, Any], context: Any) -> None:
    raise NotImplementedError("scheduled runs are not built yet")
