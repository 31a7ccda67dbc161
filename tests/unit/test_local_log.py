"""What the local stack's log leaves out of moto's own logging."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from moto.stepfunctions.parser.asl.component.program import program

from stepwise.local.dev import MOTO_PROGRAM_LOGGER, StoppedMidState

ENDED = "Stepfunctions computation ended with exception '%s'."


@pytest.fixture
def filtered() -> Iterator[logging.Logger]:
    logger = logging.getLogger(MOTO_PROGRAM_LOGGER)
    only = StoppedMidState()
    logger.addFilter(only)
    yield logger
    logger.removeFilter(only)


def test_the_filter_is_on_the_logger_moto_ends_an_execution_with() -> None:
    assert program.LOG.name == MOTO_PROGRAM_LOGGER


def test_an_execution_stopped_mid_state_leaves_no_line_but_other_errors_do(
    filtered: logging.Logger, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger=MOTO_PROGRAM_LOGGER):
        filtered.error(ENDED, "IndexError(pop from empty list)")  # a cancel while a state was evaluated
        filtered.error(ENDED, "ValueError(No such state Missing.)")

    assert [record.getMessage() for record in caplog.records] == [
        "Stepfunctions computation ended with exception 'ValueError(No such state Missing.)'."
    ]
