"""The Streamlit entry point: ``streamlit run src/mlrepo/app/main.py`` (``make app``)."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from mlrepo.app import ui
from mlrepo.errors import MlrepoError

HERE = Path(__file__).parent
PAGES = [
    ("views/overview.py", "Overview", ":material/home:", True),
    ("views/prediction.py", "Single prediction", ":material/person_search:", False),
    ("views/batch.py", "Batch prediction", ":material/table_view:", False),
    ("views/analytics.py", "Analytics", ":material/monitoring:", False),
    ("views/drift.py", "Drift", ":material/ssid_chart:", False),
    ("views/experiments.py", "Experiments", ":material/science:", False),
]

st.set_page_config(page_title="mlrepo", page_icon=":material/model_training:", layout="wide")
page = st.navigation(
    [st.Page(HERE / path, title=t, icon=icon, default=first) for path, t, icon, first in PAGES]
)
try:
    settings = ui.settings()
except MlrepoError as exc:
    ui.show_error(exc)
    st.stop()
with st.sidebar:
    healthy = ui.client().health()
    st.caption(f"Service: {settings.service_url}")
    st.caption("status: :green[up]" if healthy else "status: :red[not answering]")
page.run()
