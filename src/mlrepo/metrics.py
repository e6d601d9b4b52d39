"""Classification metrics from predicted probabilities: one implementation for CV and evaluate."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    log_loss,
    precision_recall_fscore_support,
    roc_auc_score,
)


def as_labels(values: Any) -> np.ndarray:
    """Labels as a plain int or str array (object arrays of ints confuse scikit-learn's metrics)."""
    return np.asarray(list(values))


def predicted_labels(proba: np.ndarray, classes: list[Any]) -> np.ndarray:
    return as_labels(classes)[np.argmax(proba, axis=1)]


def roc_auc(y_true: np.ndarray, proba: np.ndarray, classes: list[Any]) -> float:
    """ROC-AUC: of the second class for binary targets, macro one-vs-rest for multiclass."""
    if len(classes) == 2:
        return float(roc_auc_score(y_true == classes[1], proba[:, 1]))
    return float(roc_auc_score(y_true, proba, multi_class="ovr", average="macro", labels=classes))


def summary(y_true: np.ndarray, proba: np.ndarray, classes: list[Any]) -> dict[str, float]:
    """Accuracy, macro and weighted precision/recall/F1, ROC-AUC and log loss."""
    y_true = as_labels(y_true)
    y_pred = predicted_labels(proba, classes)
    result = {"accuracy": float(accuracy_score(y_true, y_pred))}
    for average in ("macro", "weighted"):
        precision, recall, f1, _ = precision_recall_fscore_support(
            y_true, y_pred, labels=classes, average=average, zero_division=0
        )
        result[f"precision_{average}"] = float(precision)
        result[f"recall_{average}"] = float(recall)
        result[f"f1_{average}"] = float(f1)
    result["roc_auc"] = roc_auc(y_true, proba, classes)
    result["log_loss"] = float(log_loss(y_true, proba, labels=classes))
    return result


SCORE_KEYS = {
    "accuracy": "accuracy",
    "f1_macro": "f1_macro",
    "f1_weighted": "f1_weighted",
    "roc_auc": "roc_auc",
    "neg_log_loss": "log_loss",
}
