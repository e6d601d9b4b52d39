"""Batch prediction: upload a CSV, check it as `mlrepo predict` does, score it, download it."""

from __future__ import annotations

import streamlit as st

from mlrepo.app import ui
from mlrepo.app.batch import check_upload, read_upload, score_upload
from mlrepo.errors import MlrepoError

st.title("Batch prediction")
model = ui.served_model()
if model is None:
    st.stop()
st.caption(
    f"Model {model.version} takes these columns: {', '.join(model.schema.names)}. The file is "
    "checked as `mlrepo predict` checks it; other columns can be passed through to the result."
)
upload = st.file_uploader("CSV file", type=["csv"], key="batch-file")
if upload is None:
    st.stop()
try:
    frame = read_upload(upload.name, upload.getvalue())
except MlrepoError as exc:
    ui.show_error(exc)
    st.stop()
keep = st.multiselect(
    "Columns to pass through (ids, the label...)", [str(c) for c in frame.columns], key="keep"
)
try:
    checked = check_upload(frame, model.schema, keep)
except MlrepoError as exc:
    ui.show_error(exc)
    st.stop()
if not checked.ok:
    st.error(
        f"{upload.name} does not fit the model's feature schema: {len(checked.problems)} "
        "problem(s). Nothing was scored."
    )
    st.dataframe(checked.problem_table(), hide_index=True, width="stretch")
    st.stop()

key = (upload.file_id, tuple(keep), model.version)
if st.session_state.get("batch-key") != key:
    bar = st.progress(0.0, text=f"scoring {len(frame)} rows")
    try:
        scored = score_upload(checked, model.schema, ui.client(), bar.progress)
    except MlrepoError as exc:
        bar.empty()
        ui.show_error(exc)
        st.stop()
    bar.empty()
    st.session_state["batch-key"] = key
    st.session_state["batch-result"] = scored
    # Rendered once: the page reruns on every widget change, and a large CSV takes seconds.
    st.session_state["batch-csv"] = scored.to_csv(index=False).encode("utf-8")
scored = st.session_state["batch-result"]
st.success(f"{len(scored)} rows scored by model {model.version}")
counts = scored["prediction"].astype(str).value_counts().rename_axis("class")
st.bar_chart(counts.rename("rows").reset_index(), x="class", y="rows")
st.dataframe(scored.head(1000), hide_index=True, width="stretch")
st.download_button(
    "Download predictions (CSV)",
    st.session_state["batch-csv"],
    file_name=f"{upload.name.rsplit('.', 1)[0]}-predictions.csv",
    mime="text/csv",
    type="primary",
)
