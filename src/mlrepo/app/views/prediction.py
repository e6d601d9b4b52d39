"""Single prediction: a form generated from the served model's feature schema."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from mlrepo.app import ui
from mlrepo.app.client import ServiceError
from mlrepo.app.forms import form_fields, record_from

st.title("Single prediction")
model = ui.served_model()
if model is None:
    st.stop()
st.caption(
    f"Model {model.version}: numeric inputs start at the middle of their training range; "
    "categorical ones offer the categories seen in training."
)
fields = form_fields(model.schema)
values: dict[str, Any] = {}
with st.form("record"):
    columns = st.columns(3)
    for i, field in enumerate(fields):
        where = columns[i % 3]
        if field.kind == "numeric":
            values[field.name] = where.number_input(
                field.name,
                min_value=field.low,
                max_value=field.high,
                value=field.default,
                format="%.4f",
                help=field.help,
                key=f"field-{field.name}",
            )
        else:
            values[field.name] = where.selectbox(
                field.name, field.options, help=field.help, key=f"field-{field.name}"
            )
    submitted = st.form_submit_button("Predict", type="primary")

if submitted:
    record = record_from(fields, values)
    try:
        st.session_state["prediction"] = ui.client().predict(record)
    except ServiceError as exc:
        st.session_state.pop("prediction", None)
        ui.show_error(exc)

result = st.session_state.get("prediction")
if result:
    st.subheader("Result")
    left, right = st.columns([1, 2])
    left.metric("Predicted class", str(result["class"]))
    top = max(result["probabilities"].values())
    left.metric("Probability", f"{top:.1%}")
    left.caption(f"model {result['model_version']} · request {result['request_id']}")
    probabilities = result["probabilities"]
    chart = pd.DataFrame(
        {"class": list(probabilities), "probability": list(probabilities.values())}
    )
    right.bar_chart(chart, x="class", y="probability", horizontal=True)
