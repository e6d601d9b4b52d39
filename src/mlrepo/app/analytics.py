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

import pandas as pd

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
    from mlrepo.prediction_store import read_rows  # SQLAlchemy: imported on use

    columns = ["created_at", "request_id", "predicted_class", "latency_ms", "model_version"]
    rows = read_rows(
        url,
        columns,
        since=None if since is None else datetime.now(UTC) - since,
        newest=limit,
        missing="no such database file yet: the service creates it on its first "
        "prediction. Fix: make a prediction, or set DATABASE_URL to the service's database",
        fix="check DATABASE_URL points at the service's database",
    )
    frame = pd.DataFrame(rows, columns=columns)
    frame["created_at"] = pd.to_datetime(frame["created_at"], utc=True)
    return Traffic(frame)


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
