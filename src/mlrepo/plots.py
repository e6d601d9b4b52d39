"""PNG figures of the evaluation: confusion matrix, ROC curve(s) and feature importance.

Rendered with matplotlib's Agg backend and no metadata, so the same inputs give the same bytes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sklearn.metrics import ConfusionMatrixDisplay, RocCurveDisplay

from mlrepo.io import write_with

PNG_METADATA = {"Software": None}


def _save(fig: Any, path: str | Path) -> None:
    write_with(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100, metadata=PNG_METADATA))
    plt.close(fig)


def confusion_png(y_true: np.ndarray, y_pred: np.ndarray, classes: list[Any], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(5, 4.5))
    ConfusionMatrixDisplay.from_predictions(
        y_true, y_pred, labels=classes, ax=ax, colorbar=False, cmap="Blues"
    )
    ax.set_title("Confusion matrix (test set)")
    fig.tight_layout()
    _save(fig, path)


def roc_png(y_true: np.ndarray, proba: np.ndarray, classes: list[Any], path: Path) -> None:
    """ROC of the second class for binary targets; one curve per class (one-vs-rest) otherwise."""
    fig, ax = plt.subplots(figsize=(5, 4.5))
    shown = classes[1:] if len(classes) == 2 else classes
    for label in shown:
        index = classes.index(label)
        RocCurveDisplay.from_predictions(
            y_true == label, proba[:, index], name=f"class {label}", ax=ax
        )
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1)
    ax.set_title("ROC curve (test set)")
    fig.tight_layout()
    _save(fig, path)


def importance_png(importance: pd.DataFrame, path: Path, top: int = 20) -> None:
    """Horizontal bars of permutation importance (mean drop in accuracy, with std)."""
    shown = importance.head(top).iloc[::-1]
    fig, ax = plt.subplots(figsize=(6, 0.3 * len(shown) + 1.2))
    ax.barh(shown["feature"], shown["importance"], xerr=shown["std"], color="tab:blue")
    ax.set_xlabel("mean accuracy drop when shuffled")
    ax.set_title("Permutation feature importance (test set)")
    fig.tight_layout()
    _save(fig, path)
