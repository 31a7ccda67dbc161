"""Outgoing HTTP calls: the one place stepwise talks to the outside world.

Every call to an agent's endpoint and every ``httpRequest`` node goes through :func:`call`, which adds
what a bare ``requests.request`` lacks:

* a destination guard (:func:`check_destination`), applied before every attempt and every redirect hop,
  that refuses link-local, cloud-metadata, unspecified, multicast and reserved addresses always, and
  private networks unless the :class:`CallPolicy` allows them; the same rule is applied again to the
  address each connection actually reaches, before anything is sent, so DNS rebinding cannot get round
  it (no proxy is ever used: the sessions ignore proxy environment variables);
* redirects followed by hand, so that each hop is checked by the guard and credentials are not carried
  to another origin;
* retries with exponential backoff and full jitter on connection errors, timeouts, HTTP 429 and 5xx,
  honouring ``Retry-After``;
* a response-size limit enforced while streaming, and a total per-attempt deadline, so that a huge or
  dribbling answer cannot exhaust memory or hang a workflow node;
* cooperative stopping (``should_stop``) between attempts, during backoff and between body chunks;
* logging through a callback that never sees header values, query strings or bodies.

Failures raise :class:`OutboundError` (or its subclasses :class:`BlockedDestination` and
:class:`CallStopped`); an HTTP 4xx other than 429 is *returned* so the caller can decide what it means.

Where each part lives: ``guard`` (which addresses may be called), ``connections`` (the pooled sessions
whose connections judge the address they reached), ``client`` (``call``: attempts, retries, redirects),
``redirects``, ``retries`` (backoff and Retry-After), ``body`` (reading an answer within its limits),
``answers`` (``CallPolicy`` and ``HttpAnswer``), ``errors`` and ``display`` (how URLs are shown).
"""

from __future__ import annotations

from stepwise.outbound.answers import CallPolicy, HttpAnswer
from stepwise.outbound.client import call
from stepwise.outbound.display import display_url
from stepwise.outbound.errors import BlockedDestination, CallStopped, OutboundError
from stepwise.outbound.guard import check_destination, classify_address

__all__ = [
    "BlockedDestination",
    "CallPolicy",
    "CallStopped",
    "HttpAnswer",
    "OutboundError",
    "call",
    "check_destination",
    "classify_address",
    "display_url",
]
