"""Experiments: `dvc exp show` as a sortable table, and two revisions side by side."""

from __future__ import annotations

import streamlit as st

from mlrepo.app import ui
from mlrepo.app.experiments import compare, experiment_rows, label, run_exp_show
from mlrepo.errors import MlrepoError

st.title("Experiments")
settings = ui.settings()


@st.cache_data(ttl=60, show_spinner="running dvc exp show")
def _shown(project: str) -> list[dict[str, object]]:
    from pathlib import Path

    return run_exp_show(Path(project))


if st.button("Refresh"):
    _shown.clear()
try:
    rows = experiment_rows(_shown(str(settings.project)))
except MlrepoError as exc:
    ui.show_error(exc)
    st.stop()
if rows.empty:
    st.info("`dvc exp show` lists no revision.")
    st.stop()
with_params = st.toggle("Show params", value=False)
shown = rows if with_params else rows[[c for c in rows.columns if not c.startswith("params")]]
st.caption("Click a column header to sort.")
st.dataframe(shown, hide_index=True, width="stretch")

st.subheader("Compare two revisions")
labels = list(rows.apply(label, axis=1))
left, right = st.columns(2)
a = left.selectbox("A", labels, index=0, key="rev-a")
b = right.selectbox("B", labels, index=min(1, len(labels) - 1), key="rev-b")
every = st.checkbox("Every param, not only those that differ")
st.dataframe(compare(rows, a, b, every), hide_index=True, width="stretch")
