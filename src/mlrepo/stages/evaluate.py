"""Stage 5, evaluate: metrics, plots and the promotion mark on the held-out test part.

Writes metrics (accuracy, precision/recall/F1 macro and weighted, ROC-AUC, log loss, per-class
report), the data files behind ``dvc plots`` (confusion, ROC, precision-recall, importance) and
PNG images. The quality gate ``evaluate.min_accuracy`` never fails the stage: below it the
metrics are still written and ``promotable`` is false, which the registry refuses to promote.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import (
    accuracy_score,
    classification_report,
    precision_recall_curve,
    roc_curve,
)
from sklearn.pipeline import Pipeline

from mlrepo import metrics, plots
from mlrepo.errors import run_cli
from mlrepo.io import write_csv, write_json
from mlrepo.logs import get_logger, setup_logging, timed
from mlrepo.models import for_prediction
from mlrepo.params import EvaluateParams, load_params
from mlrepo.schema import FeatureSchema
from mlrepo.stages import parse_paths, read_trained


@dataclass
class Evaluation:
    scores: dict[str, Any]
    per_class: dict[str, Any]
    predictions: pd.DataFrame  # actual, predicted: the confusion plot's data
    roc: pd.DataFrame
    precision_recall: pd.DataFrame
    importance: pd.DataFrame
    proba: np.ndarray


def evaluate(
    pipeline: Pipeline, test: pd.DataFrame, schema: FeatureSchema, params: EvaluateParams
) -> Evaluation:
    """Score ``pipeline`` on ``test`` and decide whether it passes the quality gate."""
    pipeline = for_prediction(pipeline)
    x, y = test[schema.names], metrics.as_labels(test[schema.target])
    classes = schema.classes
    proba = pipeline.predict_proba(x)
    scores: dict[str, Any] = metrics.summary(y, proba, classes)
    scores["n_test"] = len(test)
    scores["min_accuracy"] = params.min_accuracy
    scores["promotable"] = scores["accuracy"] >= params.min_accuracy
    predicted = metrics.predicted_labels(proba, classes)
    labels = [str(c) for c in classes]
    per_class = classification_report(
        y.astype(str), predicted.astype(str), labels=labels, output_dict=True, zero_division=0
    )
    return Evaluation(
        scores=scores,
        per_class=per_class,
        predictions=pd.DataFrame({"actual": y.astype(str), "predicted": predicted.astype(str)}),
        roc=_curve(roc_curve, y, proba, classes, ("fpr", "tpr")),
        precision_recall=_curve(precision_recall_curve, y, proba, classes, ("precision", "recall")),
        importance=_importance(pipeline, x, y, params),
        proba=proba,
    )


def _curve(
    fn: Any, y: np.ndarray, proba: np.ndarray, classes: list[Any], names: tuple[str, str]
) -> pd.DataFrame:
    """Points of a curve: for the second class if binary, micro-averaged one-vs-rest otherwise."""
    if len(classes) == 2:
        truth, score = y == classes[1], proba[:, 1]
    else:
        truth = (y[:, None] == metrics.as_labels(classes)[None, :]).ravel()
        score = proba.ravel()
    first, second, _ = fn(truth, score)
    frame = pd.DataFrame({names[0]: first, names[1]: second})
    return frame.round(6).drop_duplicates().reset_index(drop=True)


def _importance(
    pipeline: Pipeline, x: pd.DataFrame, y: np.ndarray, params: EvaluateParams
) -> pd.DataFrame:
    """Permutation importance of the input columns: comparable across every model type."""
    if len(x) > params.importance_max_rows:
        sample = x.sample(params.importance_max_rows, random_state=params.seed)
        x, y = sample, y[x.index.get_indexer(sample.index)]
    drops = permutation_drops(pipeline, x, y, params.importance_repeats, params.seed)
    frame = pd.DataFrame(
        {"feature": x.columns, "importance": drops.mean(axis=1), "std": drops.std(axis=1)}
    )
    return frame.sort_values(["importance", "feature"], ascending=[False, True]).reset_index(
        drop=True
    )


def permutation_drops(
    pipeline: Pipeline, x: pd.DataFrame, y: np.ndarray, repeats: int, seed: int
) -> np.ndarray:
    """The accuracy lost when each column is shuffled, per repeat (columns x repeats).

    The shuffles and scores of ``sklearn.inspection.permutation_importance(scoring="accuracy",
    random_state=seed)``, but a column's repeats are stacked into one frame and predicted in
    one call, not one call each: with a 200-row test split the calls' fixed cost (the
    preprocessing, 100 trees one after another) was most of the stage's time.
    """
    x = x.reset_index(drop=True)
    n = len(x)
    baseline = accuracy_score(y, pipeline.predict(x))
    column_seed = np.random.RandomState(seed).randint(np.iinfo(np.int32).max + 1)
    stacked = pd.concat([x] * repeats, ignore_index=True)
    drops = np.empty((x.shape[1], repeats))
    for column, name in enumerate(x.columns):
        rng = np.random.RandomState(column_seed)  # the same stream for every column, as sklearn
        order = np.arange(n)
        permuted, parts = x[name], []
        for _ in range(repeats):
            rng.shuffle(order)  # in place: each repeat shuffles the previous order again
            permuted = permuted.iloc[order].reset_index(drop=True)
            parts.append(permuted)
        original = stacked[name]
        stacked[name] = pd.concat(parts, ignore_index=True)
        predicted = np.asarray(pipeline.predict(stacked))
        stacked[name] = original
        for repeat in range(repeats):
            block = predicted[repeat * n : (repeat + 1) * n]
            drops[column, repeat] = baseline - accuracy_score(y, block)
    return drops


def write_outputs(
    result: Evaluation, test: pd.DataFrame, schema: FeatureSchema, out: dict[str, Path]
) -> None:
    write_json(result.scores, out["metrics"])
    write_json(result.per_class, out["per_class"])
    for key, frame in (
        ("confusion", result.predictions),
        ("roc", result.roc),
        ("precision_recall", result.precision_recall),
        ("importance", result.importance.round(6)),
    ):
        write_csv(frame, out[key])
    y = metrics.as_labels(test[schema.target])
    plots.confusion_png(
        y,
        metrics.predicted_labels(result.proba, schema.classes),
        schema.classes,
        out["confusion_png"],
    )
    plots.roc_png(y, result.proba, schema.classes, out["roc_png"])
    plots.importance_png(result.importance, out["importance_png"])


OUTPUTS = (
    "metrics",
    "per_class",
    "confusion",
    "roc",
    "precision_recall",
    "importance",
    "confusion_png",
    "roc_png",
    "importance_png",
)


def main(argv: list[str] | None = None) -> int:
    args = parse_paths(__doc__, ("model", "test", "schema", *OUTPUTS), argv)
    log = setup_logging("evaluate")
    params = load_params(args.params).evaluate
    pipeline, test, schema = read_trained(args.model, args.test, args.schema)
    with timed(f"evaluate ({len(test)} rows)"):
        result = evaluate(pipeline, test, schema, params)
        write_outputs(result, test, schema, {k: Path(getattr(args, k)) for k in OUTPUTS})
    scores = result.scores
    log.info(
        "accuracy %.4f, f1_macro %.4f, roc_auc %.4f",
        scores["accuracy"],
        scores["f1_macro"],
        scores["roc_auc"],
    )
    if not scores["promotable"]:
        get_logger().warning(
            "accuracy %.4f is below evaluate.min_accuracy %.2f: the model is marked not"
            " promotable (metrics are still written)",
            scores["accuracy"],
            params.min_accuracy,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
