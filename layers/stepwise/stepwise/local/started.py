"""What a running local stack is made of: shared by :mod:`stepwise.local.dev` (which builds it) and the banner."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from stepwise.local.auth import LocalUserPool
    from stepwise.local.demo import DemoSeed
    from stepwise.local.faults import FaultInjector
    from stepwise.local.gateway import LocalGateway
    from stepwise.local.persistence import Restored
    from stepwise.local.stack import Deployment
    from stepwise.local.state_directory import StateDirectory


@dataclass
class LocalStack:
    """What :func:`stepwise.local.dev.local_stack` started."""

    api_url: str
    aws_url: str
    gateway: LocalGateway
    users: LocalUserPool
    deployment: Deployment
    demo: DemoSeed
    demo_agents_url: str
    state: StateDirectory | None  # where its state is kept (None: nowhere)
    restored: Restored | None  # what the start found there
    faults: FaultInjector
