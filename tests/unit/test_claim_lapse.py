"""When a claim of a node run holds: until its invocation's deadline, or until a restart of the local stack."""

from __future__ import annotations

from datetime import timedelta

from stepwise.clock import iso, now
from stepwise.models.records import ActiveNode
from stepwise.service.claims import holds


def claimed(seconds_ago: float, seconds_left: float) -> ActiveNode:
    return ActiveNode(
        nodeId="ask",
        run=1,
        startedAt=iso(now() - timedelta(seconds=seconds_ago)),
        claim="c1",
        claimedAt=iso(now() - timedelta(seconds=seconds_ago)),
        claimUntil=iso(now() + timedelta(seconds=seconds_left)),
    )


def test_a_claim_holds_until_its_invocations_deadline() -> None:
    assert holds(claimed(10, 300))
    assert not holds(claimed(400, -5))


def test_a_claim_taken_before_the_stack_started_has_lapsed_though_its_deadline_is_ahead() -> None:
    started = iso(now() - timedelta(seconds=5))
    assert not holds(claimed(60, 270), lapsed_before=started)


def test_a_claim_taken_since_the_stack_started_holds() -> None:
    started = iso(now() - timedelta(seconds=60))
    assert holds(claimed(5, 320), lapsed_before=started)
