"""Analytics: traffic, class mix and latency from the prediction log; errors from /metrics."""

from __future__ import annotations

from datetime import timedelta

import streamlit as st

from mlrepo.app import ui
from mlrepo.app.analytics import Traffic, error_counts, read_traffic
from mlrepo.app.client import ServiceError
from mlrepo.errors import MlrepoError

WINDOWS = {
    "last hour": timedelta(hours=1),
    "last 24 hours": timedelta(days=1),
    "last 7 days": timedelta(days=7),
    "everything": None,
}

st.title("Analytics")
settings = ui.settings()
st.caption(f"Prediction log: {settings.database_url} (DATABASE_URL, as the service reads it)")
window = st.selectbox("Window", list(WINDOWS), index=1, key="window")
traffic: Traffic | None
try:
    traffic = read_traffic(settings.database_url, WINDOWS[window])
except MlrepoError as exc:
    ui.show_error(exc)
    traffic = None

if traffic is not None and traffic.empty:
    st.info(f"No predictions logged in the {window}.")
elif traffic is not None:
    requests = traffic.requests()
    latency = traffic.latency_percentiles()
    cells = st.columns(5)
    cells[0].metric("Requests", len(requests))
    cells[1].metric("Predicted records", len(traffic.rows))
    for cell, (name, value) in zip(cells[2:], latency.items(), strict=True):
        cell.metric(f"Latency {name}", f"{value:.1f} ms")
    freq = {"last hour": "1min", "last 24 hours": "10min", "last 7 days": "1h"}.get(window, "1D")
    st.subheader(f"Requests over time (per {freq}, UTC)")
    # Bars, not lines: a single interval with traffic would draw no line at all.
    st.bar_chart(traffic.requests_over_time(freq)[["requests"]])
    left, right = st.columns(2)
    left.subheader("Predicted classes")
    left.bar_chart(traffic.class_distribution(), x="class", y="predictions")
    right.subheader("Latency by request (ms)")
    right.scatter_chart(requests, x="created_at", y="latency_ms")
    st.subheader("Most recent requests")
    st.dataframe(
        requests.sort_values("created_at", ascending=False).head(50),
        hide_index=True,
        width="stretch",
    )

st.subheader("Refused and failed requests (since the service started)")
try:
    errors = error_counts(ui.client().metrics())
except ServiceError as exc:
    ui.show_error(exc)
else:
    if errors.empty:
        st.success("No request answered with an error.")
    else:
        st.dataframe(errors, hide_index=True, width="stretch")
    st.caption("Counted by the service's mlrepo_http_requests metric; the prediction log keeps "
               "successful predictions only.")  # fmt: skip
