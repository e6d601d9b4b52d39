"""One log format for everything the service prints: uvicorn's lines and mlrepo's alike.

``log_config(kind)`` is a ``logging.config.dictConfig`` dictionary (uvicorn applies it at start):
``text`` is ``2026-01-02T03:04:05Z INFO    uvicorn.error: message``; ``json`` is one object a line
(``time``, ``level``, ``logger``, ``message``, and ``exc_info`` for an exception), for a log
collector. The level is ``MLREPO_LOG_LEVEL`` (default INFO).
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any, Literal

import orjson

TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def _utc(seconds: float | None) -> time.struct_time:
    return time.gmtime(seconds)


class TextFormatter(logging.Formatter):
    converter = staticmethod(_utc)  # UTC, as the Z says

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT, TIME_FORMAT)


class JsonFormatter(logging.Formatter):
    """A line of JSON per record (ten lines of code rather than another dependency)."""

    converter = staticmethod(_utc)

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record, TIME_FORMAT),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        return orjson.dumps(entry).decode()


def log_config(kind: Literal["text", "json"] = "text") -> dict[str, Any]:
    level = os.environ.get("MLREPO_LOG_LEVEL", "INFO").upper()
    formatter = TextFormatter if kind == "text" else JsonFormatter
    handler = {
        "class": "logging.StreamHandler",
        "formatter": "default",
        "stream": "ext://sys.stderr",
    }
    logger = {"handlers": ["default"], "level": level, "propagate": False}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"default": {"()": formatter}},
        "handlers": {"default": handler},
        "loggers": {
            name: dict(logger) for name in ("mlrepo", "uvicorn", "uvicorn.error", "uvicorn.access")
        },
    }
