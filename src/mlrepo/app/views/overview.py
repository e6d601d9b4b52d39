"""Overview: which model the service holds, its version, stage and quality."""

from __future__ import annotations

import streamlit as st

from mlrepo.app import ui
from mlrepo.app.client import ServiceError

st.title("Overview")
model = ui.served_model()
if model is None:
    st.stop()
info = model.info
metrics = info.get("metrics") or {}
accuracy = ui.metric_value(metrics, "evaluate", "accuracy")
promotable = ui.metric_value(metrics, "evaluate", "promotable")
minimum = ui.metric_value(metrics, "evaluate", "min_accuracy")

# The version (an md5 for an unregistered model) needs the room to show whole.
left, middle, right, last = st.columns([4, 2, 2, 2])
left.metric("Model version", model.version)
middle.metric("Stage", info.get("stage") or "none", help="the registry stage (GTO), if any")
right.metric("Test accuracy", f"{accuracy:.3f}" if isinstance(accuracy, float) else "unknown")
last.metric(
    "Promotable",
    "unknown" if promotable is None else ("yes" if promotable else "no"),
    help=f"accuracy at least evaluate.min_accuracy = {minimum}" if minimum is not None else None,
)

st.subheader("The served model")
st.table(
    {
        "name": [info.get("name")],
        "registry version": [info.get("registry_version") or "none (not registered)"],
        "git commit": [(info.get("git_rev") or "workspace")[:12]],
        "source": [info.get("source")],
        "estimator": [info.get("estimator")],
        "backend": [info.get("backend")],
        "classes": [", ".join(map(str, model.classes))],
        "features": [f"{len(model.schema.features)} ({len(model.schema.numeric)} numeric, "
                     f"{len(model.schema.categorical)} categorical)"],
    }
)  # fmt: skip
if info.get("fallback_reason"):
    st.warning(f"The service runs the scikit-learn fallback: {info['fallback_reason']}")

evaluate = metrics.get("evaluate") or {}
numbers = {
    k: v
    for k, v in sorted(evaluate.items())
    if isinstance(v, int | float) and not isinstance(v, bool)  # promotable is shown above
}
if numbers:
    st.subheader("Evaluation metrics (held-out test split)")
    st.dataframe({"metric": list(numbers), "value": list(numbers.values())}, hide_index=True)

st.subheader("Service readiness")
try:
    ready = ui.client().ready()
except ServiceError as exc:
    ui.show_error(exc)
else:
    database = ready.get("database") or {}
    # /ready names the kind of database only (it is public: no URL, path or credentials).
    backend = f" ({database['backend']})" if database.get("backend") else ""
    st.write(
        f"ready: **{'yes' if ready.get('ready') else 'no'}** · prediction log: "
        f"**{database.get('status', 'unknown')}**{backend}"
    )
    if database.get("error"):
        st.warning(f"prediction log database: {database['error']}")
