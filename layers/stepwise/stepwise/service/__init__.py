"""Use cases: every rule of the product, called by the thin Lambda handlers."""
