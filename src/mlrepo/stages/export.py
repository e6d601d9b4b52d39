"""Stage 6, export: the trained Pipeline as ONNX, checked against scikit-learn on the test split.

``mlrepo.onnx_convert`` converts it. Parity on the whole test split is the gate:
labels agree 100% and probabilities within ``export.tolerance``, else the stage fails naming the
rows.

When skl2onnx (or onnxruntime) cannot handle a step, e.g. a nullable categorical column's
imputer, ``export.on_unsupported: error`` fails naming the estimator; ``fallback`` succeeds with
an EMPTY ONNX file (DVC needs the output to exist) and ``"converted": false`` plus the reason in
the export metrics: the service and batch predictor then serve the hash-verified scikit-learn
pipeline and say why.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from mlrepo.errors import MlrepoError, run_cli
from mlrepo.io import write_json, write_with
from mlrepo.logs import get_logger, setup_logging, timed
from mlrepo.metrics import predicted_labels
from mlrepo.models import for_prediction
from mlrepo.onnx_convert import (
    UnsupportedModelError,
    converter_versions,
    estimator_name,
    session,
    to_onnx,
)
from mlrepo.params import ExportParams, load_params
from mlrepo.prediction.backends import OnnxPredictor
from mlrepo.schema import FeatureSchema, coerce
from mlrepo.stages import parse_paths, read_trained

MAX_ROWS_SHOWN = 5


class ParityError(MlrepoError):
    """The ONNX graph predicts differently from the scikit-learn pipeline on the test split."""


@dataclass(frozen=True)
class Exported:
    onnx_bytes: bytes  # empty when the pipeline was not converted (on_unsupported: fallback)
    parity: dict[str, Any]  # metrics/export.json


def export(
    pipeline: Pipeline, test: pd.DataFrame, schema: FeatureSchema, params: ExportParams
) -> Exported:
    """Convert ``pipeline`` to ONNX and check it on ``test``; raise if they disagree."""
    pipeline = for_prediction(pipeline)
    model = pipeline.steps[-1][1]
    summary: dict[str, Any] = {
        "estimator": estimator_name(model),
        "on_unsupported": params.on_unsupported,
        "versions": converter_versions(model),
    }
    try:
        onnx_bytes = to_onnx(pipeline, schema)
        predictor = session(onnx_bytes, schema, pipeline)
    except UnsupportedModelError as exc:
        if params.on_unsupported == "error":
            raise
        return Exported(b"", {**summary, "converted": False, "reason": str(exc)})
    parity = compare(pipeline, predictor, test, schema, params.tolerance)
    summary |= {"converted": True, "onnx_bytes": len(onnx_bytes), **parity}
    summary["inputs"] = [
        {"feature": f.name, "name": name, "type": t.type}
        for f, name, t in zip(
            schema.features, predictor.inputs, predictor.session.get_inputs(), strict=True
        )
    ]
    summary["outputs"] = predictor.outputs
    if not parity["passed"]:
        raise ParityError(parity_message(parity))
    return Exported(onnx_bytes, summary)


def compare(
    pipeline: Pipeline,
    predictor: OnnxPredictor,
    test: pd.DataFrame,
    schema: FeatureSchema,
    tolerance: float,
) -> dict[str, Any]:
    """Parity of the two backends on every row of ``test``; rows are numbered from 1."""
    x = coerce(test, schema)  # what the predictors feed both backends
    expected = pipeline.predict_proba(x)
    onnx_labels, proba = predictor.run(x)
    diff = np.abs(expected - proba.astype(np.float64)).max(axis=1)
    # The labels served (argmax of the probabilities), and the graph's own label output.
    served = (predicted_labels(expected, schema.classes), predicted_labels(proba, schema.classes))
    sk_labels = np.asarray(pipeline.predict(x)).astype(str)
    # An exact tie (e.g. 25 of 50 trees each way) is decided by the last bit of the sums, which
    # float32 and float64 arithmetic round differently: a label may differ there and nowhere
    # else. Such rows are counted as ties, not faults; the probabilities must still agree.
    top_two = np.sort(expected, axis=1)[:, -2:]
    tied = (top_two[:, 1] - top_two[:, 0]) <= tolerance
    label_rows = np.flatnonzero((served[0] != served[1]) & ~tied)
    predict_rows = np.flatnonzero((sk_labels != onnx_labels.astype(str)) & ~tied)
    tie_flips = np.flatnonzero(
        ((served[0] != served[1]) | (sk_labels != onnx_labels.astype(str))) & tied
    )
    over = np.flatnonzero(diff > tolerance)
    worst = int(diff.argmax())
    return {
        "passed": not (len(label_rows) or len(predict_rows) or len(over)),
        "rows": len(x),
        "tolerance": tolerance,
        "label_agreement": 1 - len(label_rows) / len(x),
        "predict_agreement": 1 - len(predict_rows) / len(x),
        "max_abs_proba_diff": float(diff[worst]),
        "max_abs_proba_diff_row": worst + 1,
        "rows_over_tolerance": len(over),
        "tied_rows": int(tied.sum()),
        "tied_rows_with_different_label": len(tie_flips),
        "probability_dtype": str(proba.dtype),
        "disagreements": {
            "label_rows": [int(i) + 1 for i in label_rows[:MAX_ROWS_SHOWN]],
            "predict_rows": [int(i) + 1 for i in predict_rows[:MAX_ROWS_SHOWN]],
            "over_tolerance_rows": [int(i) + 1 for i in over[:MAX_ROWS_SHOWN]],
        },
    }


def parity_message(parity: dict[str, Any]) -> str:
    shown = {key: _rows(rows) for key, rows in parity["disagreements"].items()}
    return (
        f"the ONNX graph disagrees with scikit-learn on the test split ({parity['rows']} rows):"
        f" labels agree on {parity['label_agreement']:.2%} ({shown['label_rows']}), the graph's"
        f" label output on {parity['predict_agreement']:.2%} ({shown['predict_rows']}); largest"
        f" |probability difference| {parity['max_abs_proba_diff']:.3g} at row"
        f" {parity['max_abs_proba_diff_row']}, {parity['rows_over_tolerance']} row(s) above"
        f" export.tolerance={parity['tolerance']} ({shown['over_tolerance_rows']}). A difference"
        " this size is a conversion fault (e.g. a tree split decided in float32 that"
        " scikit-learn decides in float64), not noise: find its cause rather than raising"
        " export.tolerance; until then choose another train.model"
    )


def _rows(rows: list[int]) -> str:
    return "e.g. rows " + ", ".join(map(str, rows)) if rows else "no rows"


def main(argv: list[str] | None = None) -> int:
    args = parse_paths(__doc__, ("model", "test", "schema", "onnx", "metrics"), argv)
    log = setup_logging("export")
    params = load_params(args.params).export
    pipeline, test, schema = read_trained(args.model, args.test, args.schema)
    with timed(f"export {estimator_name(pipeline.steps[-1][1])} ({len(test)} test rows)"):
        exported = export(pipeline, test, schema, params)
    write_with(args.onnx, lambda tmp: tmp.write_bytes(exported.onnx_bytes))
    write_json(exported.parity, args.metrics)
    parity = exported.parity
    if not parity["converted"]:
        get_logger().warning(
            "no ONNX graph (export.on_unsupported=fallback), %s is empty: %s",
            args.onnx,
            parity["reason"],
        )
        return 0
    log.info(
        "%s: %d bytes; labels agree %.2f%%, max |proba diff| %.2g (tolerance %g)",
        args.onnx,
        parity["onnx_bytes"],
        parity["label_agreement"] * 100,
        parity["max_abs_proba_diff"],
        parity["tolerance"],
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
