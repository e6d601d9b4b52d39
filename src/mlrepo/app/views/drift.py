"""Drift: the monitor stage's latest report, and a drift check of an uploaded CSV."""

from __future__ import annotations

import streamlit as st

from mlrepo.app import ui
from mlrepo.app.drift import LatestReport, check_csv, drift_table, latest_report
from mlrepo.errors import MlrepoError

st.title("Drift")
settings = ui.settings()
st.subheader("Latest report (`dvc repro monitor`)")
report: LatestReport | None
try:
    report = latest_report(settings.project)
except MlrepoError as exc:
    ui.show_error(exc)
    report = None
if report is not None:
    result = report.result
    cells = st.columns(4)
    cells[0].metric("Dataset drift", "yes" if result.get("dataset_drift") else "no")
    features = result.get("features") or {}
    drifted = sum(bool(t.get("drift")) for t in features.values())
    cells[1].metric("Drifted features", f"{drifted} of {len(features)}")
    cells[2].metric("Drift share threshold", f"{result.get('drift_share', 0):.0%}")
    prediction = result.get("prediction") or {}
    cells[3].metric("Prediction drift", "yes" if prediction.get("drift") else "no")
    st.dataframe(drift_table(report.feature_rows()), hide_index=True, width="stretch")
    with st.expander(f"Plots ({len(report.plots)})"):
        columns = st.columns(3)
        for i, plot in enumerate(report.plots):
            columns[i % 3].image(str(plot), caption=plot.stem)
    with st.expander("The report as written (reports/drift.md)"):
        st.markdown(report.markdown)

st.subheader("Check a CSV for drift")
model = ui.served_model()
if model is None:
    st.stop()
st.caption(
    f"Compared with the training data of the served model ({model.reference[:12]}), with the "
    "tests and thresholds of params.yaml's monitor section."
)
upload = st.file_uploader("CSV file", type=["csv"], key="drift-file")
if upload is not None:
    try:
        with st.spinner("testing every feature"):
            outcome = check_csv(upload.name, upload.getvalue(), model.reference, settings.project)
    except MlrepoError as exc:
        ui.show_error(exc)
        st.stop()
    verdict = outcome.result
    (st.error if verdict.drift else st.success)(
        f"{'Drift' if verdict.drift else 'No drift'}: {verdict.n_drifted} of "
        f"{len(verdict.features)} features drifted ({verdict.share_drifted:.0%}; the dataset "
        f"drifts from {verdict.drift_share:.0%})"
    )
    st.dataframe(
        drift_table([{"column": c.column, **c.as_dict()} for c in verdict.features]),
        hide_index=True,
        width="stretch",
    )
