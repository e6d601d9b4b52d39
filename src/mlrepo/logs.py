"""One configured logger for every stage: stage name, timings and row counts."""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

LOGGER_NAME = "mlrepo"


def setup_logging(stage: str) -> logging.Logger:
    """Configure the ``mlrepo`` logger once for a stage process and return it.

    ``MLREPO_LOG_LEVEL`` (default INFO) sets the level; logs go to stderr and never into a
    tracked output, so their timestamps do not touch reproducibility.
    """
    logger = logging.getLogger(LOGGER_NAME)
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)-7s [%(stage)s] %(message)s", "%H:%M:%S")
        )
        logger.addHandler(handler)
        logger.propagate = False
    logger.setLevel(os.environ.get("MLREPO_LOG_LEVEL", "INFO").upper())
    for existing in logger.handlers:
        existing.addFilter(_StageFilter(stage))
    return logger


def get_logger() -> logging.Logger:
    return logging.getLogger(LOGGER_NAME)


class _StageFilter(logging.Filter):
    def __init__(self, stage: str) -> None:
        super().__init__()
        self.stage = stage

    def filter(self, record: logging.LogRecord) -> bool:
        record.stage = getattr(record, "stage", self.stage)
        return True


@contextmanager
def timed(what: str) -> Iterator[None]:
    """Log how long the block took."""
    start = time.perf_counter()
    yield
    get_logger().info("%s took %.2f s", what, time.perf_counter() - start)
