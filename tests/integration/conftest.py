"""Fixtures of the tests that drive ``stepwise dev`` over real HTTP (see :mod:`tests.support.local_stack`)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.local_stack import Stack, running_stack


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A fresh local stack for the test module (it takes a few seconds to start)."""
    with running_stack(tmp_path_factory.mktemp("dev")) as running:
        yield running
