"""Analytics of the service's traffic: the prediction log (through the same SQLAlchemy URL as
the service) and the error counters of its ``/metrics``.

The log holds one row per predicted record and only successful predictions; a request's
latency is repeated on each of its rows, so request counts and latency percentiles are taken
over distinct requests. Refused and failed requests are not logged; they are counted by the
service's ``mlrepo_http_requests`` counter, by endpoint and status.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd

from mlrepo.errors import DataError

PERCENTILES = (50, 95, 99)
REQUESTS_METRIC = "mlrepo_http_requests"


@dataclass(frozen=True)
class Traffic:
    rows: pd.DataFrame  # one per predicted record: created_at, request_id, class, latency_ms...

    @property
    def empty(self) -> bool:
        return self.rows.empty

    def requests(self) -> pd.DataFrame:
        """One row per request: when, how many records, latency, model version."""
        return (
            self.rows.groupby("request_id", sort=False)
            .agg(
                created_at=("created_at", "first"),
                records=("predicted_class", "size"),
                latency_ms=("latency_ms", "first"),
                model_version=("model_version", "first"),
            )
            .reset_index()
            .sort_values("created_at")
        )

    def requests_over_time(self, freq: str = "1min") -> pd.DataFrame:
        """Requests and predicted records per ``freq`` interval (UTC)."""
        requests = self.requests().set_index("created_at")
        counted = requests.resample(freq).agg({"request_id": "count", "records": "sum"})
        return counted.rename(columns={"request_id": "requests"})

    def class_distribution(self) -> pd.DataFrame:
        counts = self.rows["predicted_class"].value_counts().rename_axis("class")
        frame = counts.rename("predictions").reset_index()
        frame["share"] = frame["predictions"] / frame["predictions"].sum()
        return frame

    def latency_percentiles(self) -> dict[str, float]:
        """p50, p95, p99 of the request latency in milliseconds (measured by the service)."""
        latency = self.requests()["latency_ms"]
        return {f"p{p}": float(latency.quantile(p / 100)) for p in PERCENTILES}


def read_traffic(url: str, since: timedelta | None = None, limit: int = 200_000) -> Traffic:
    """The ``limit`` most recent logged predictions (of the last ``since``, if given)."""
    from sqlalchemy import make_url, select
    from sqlalchemy.exc import SQLAlchemyError

    from mlrepo.serve.prediction_log import LogSettings, build_engine, engine_url, prediction_log

    parsed = make_url(engine_url(url))
    safe = parsed.render_as_string(hide_password=True)
    file = parsed.database if parsed.get_backend_name() == "sqlite" else None
    if file not in (None, "", ":memory:") and not Path(str(file)).is_file():
        raise DataError(
            f"{safe}: no such database file yet: the service creates it on its first "
            "prediction. Fix: make a prediction, or set DATABASE_URL to the service's database"
        )
    log = prediction_log.c
    query = select(
        log.created_at, log.request_id, log.predicted_class, log.latency_ms, log.model_version
    )
    engine = build_engine(LogSettings(url=url))
    if since is not None:
        start = datetime.now(UTC) - since
        # SQLite keeps times as text without an offset: compare with naive UTC times.
        naive = engine.dialect.name == "sqlite"
        query = query.where(log.created_at >= (start.replace(tzinfo=None) if naive else start))
    query = query.order_by(log.id.desc()).limit(limit)
    try:
        with engine.connect() as connection:
            rows = connection.execute(query).all()
    except SQLAlchemyError as exc:
        cause = getattr(exc, "orig", None) or exc
        raise DataError(
            f"{safe}: cannot read the prediction log: {str(cause).strip().splitlines()[0]}. "
            "Fix: check DATABASE_URL points at the service's database"
        ) from None
    finally:
        engine.dispose()
    frame = pd.DataFrame(
        rows,
        columns=["created_at", "request_id", "predicted_class", "latency_ms", "model_version"],
    )
    frame["created_at"] = pd.to_datetime(frame["created_at"], utc=True)
    return Traffic(frame.iloc[::-1].reset_index(drop=True))


def error_counts(metrics_text: str) -> pd.DataFrame:
    """Requests the service answered with 4xx or 5xx since it started, by endpoint and status."""
    from prometheus_client.parser import text_string_to_metric_families

    found = []
    for family in text_string_to_metric_families(metrics_text):
        # By sample name: the family's name depends on how the TYPE line spells it.
        for sample in family.samples:
            status = sample.labels.get("status", "")
            if (
                sample.name == f"{REQUESTS_METRIC}_total"
                and status[:1] in ("4", "5")
                and sample.value
            ):
                found.append(
                    {
                        "endpoint": sample.labels.get("endpoint"),
                        "method": sample.labels.get("method"),
                        "status": status,
                        "requests": int(sample.value),
                    }
                )
    frame = pd.DataFrame(found, columns=["endpoint", "method", "status", "requests"])
    return frame.sort_values(["status", "endpoint"]).reset_index(drop=True)
