"""The current data as a time window of the service's prediction log.

Reads the prediction store (``mlrepo.prediction_store``: SQLAlchemy Core, any URL the service
accepts): the logged inputs become the current frame and the logged classes its predictions.
Times are UTC; a time given without an offset is read as UTC.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pandas as pd

from mlrepo.errors import DataError, MlrepoError
from mlrepo.monitor.sources import Current

UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")


@dataclass(frozen=True)
class Window:
    """Predictions logged at ``since`` or later and before ``until`` (both UTC)."""

    since: datetime
    until: datetime

    def describe(self) -> str:
        return f"{_iso(self.since)} to {_iso(self.until)}"


def parse_window(
    since: str | None, until: str | None, last: str | None, now: datetime | None = None
) -> Window:
    """``--since T [--until T]`` or ``--last 24h`` (s, m, h, d, w) up to ``now``."""
    now = now or datetime.now(UTC)
    if last is not None:
        if since is not None:
            raise MlrepoError("give --since or --last, not both")
        match = DURATION.match(last)
        if match is None:
            raise MlrepoError(
                f"--last '{last}': expected a number and a unit (s, m, h, d, w), e.g. 24h or 7d"
            )
        length = timedelta(**{UNITS[match.group(2)]: float(match.group(1))})
        if length <= timedelta(0):
            raise MlrepoError(f"--last '{last}': the window must be longer than zero")
        end = parse_time(until, "--until") if until is not None else now
        return Window(end - length, end)
    if since is None:
        raise MlrepoError("a log window needs --since TIME or --last DURATION")
    window = Window(parse_time(since, "--since"), parse_time(until, "--until") if until else now)
    if window.since >= window.until:
        raise MlrepoError(
            f"the window is empty: --since {_iso(window.since)} is not before --until "
            f"{_iso(window.until)}"
        )
    return window


def parse_time(text: str, option: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise MlrepoError(
            f"{option} '{text}': not an ISO 8601 time; e.g. 2026-11-01T00:00 (UTC) or "
            "2026-11-01T00:00+01:00"
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def default_url() -> str:
    """``DATABASE_URL``, else the service's default SQLite file."""
    from mlrepo.prediction_store import LogSettings

    return os.environ.get("DATABASE_URL") or LogSettings().url


def read_window(url: str, window: Window) -> Current:
    """The inputs and predicted classes logged in ``window``; an empty window is an error."""
    from mlrepo.prediction_store import read_rows, safe_url  # SQLAlchemy: on use

    rows = read_rows(
        url,
        ["inputs", "predicted_class", "model_version"],
        since=window.since,
        until=window.until,
        missing="no such database file. Fix: pass the service's prediction log with "
        "--database-url URL (or set DATABASE_URL)",
        fix="check --database-url (or DATABASE_URL) points at the service's database",
    )
    safe = safe_url(url)
    if not rows:
        raise DataError(
            f"{safe}: no predictions logged from {window.describe()} (UTC). Fix: widen the "
            "window (e.g. --last 7d), or check --database-url points at the service's log"
        )
    frame = pd.DataFrame.from_records([row.inputs for row in rows])
    predicted = pd.Series([row.predicted_class for row in rows], dtype=object)
    versions = Counter(row.model_version for row in rows)
    return Current(
        frame,
        f"prediction log {safe}, {window.describe()} (UTC)",
        predicted=predicted,
        details={"model_versions": dict(sorted(versions.items())), "window": window.describe()},
    )


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
