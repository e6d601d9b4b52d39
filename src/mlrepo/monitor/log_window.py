"""The current data as a time window of the service's prediction log.

Reads the table ``mlrepo.serve.prediction_log`` defines (SQLAlchemy Core, any URL the service
accepts): the logged inputs become the current frame and the logged classes its predictions.
Times are UTC; a time given without an offset is read as UTC.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

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
    from mlrepo.serve.prediction_log import LogSettings

    return os.environ.get("DATABASE_URL") or LogSettings().url


def read_window(url: str, window: Window) -> Current:
    """The inputs and predicted classes logged in ``window``; an empty window is an error."""
    from sqlalchemy import make_url, select
    from sqlalchemy.exc import SQLAlchemyError

    from mlrepo.serve.prediction_log import LogSettings, build_engine, engine_url, prediction_log

    parsed = make_url(engine_url(url))
    safe = parsed.render_as_string(hide_password=True)
    file = parsed.database if parsed.get_backend_name() == "sqlite" else None
    if file not in (None, "", ":memory:") and not Path(str(file)).is_file():
        raise DataError(
            f"{safe}: no such database file. Fix: pass the service's prediction log with "
            "--database-url URL (or set DATABASE_URL)"
        )
    engine = build_engine(LogSettings(url=url))
    # SQLite keeps times as text without an offset: compare with naive UTC times.
    naive = engine.dialect.name == "sqlite"
    since, until = (t.replace(tzinfo=None) if naive else t for t in (window.since, window.until))
    log = prediction_log.c
    query = (
        select(log.inputs, log.predicted_class, log.model_version)
        .where(log.created_at >= since, log.created_at < until)
        .order_by(log.id)
    )
    try:
        with engine.connect() as connection:
            rows = connection.execute(query).all()
    except SQLAlchemyError as exc:
        cause = getattr(exc, "orig", None) or exc
        raise DataError(
            f"{safe}: cannot read the prediction log: {str(cause).strip().splitlines()[0]}. "
            "Fix: check --database-url (or DATABASE_URL) points at the service's database"
        ) from None
    finally:
        engine.dispose()
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
