"""The HTTP API: one Router per resource, included by the one resolver (:mod:`stepwise.api.resolver`)."""
