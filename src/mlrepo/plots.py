"""PNG figures of the evaluation: confusion matrix, ROC curve(s) and feature importance.

Rendered with matplotlib's Agg backend and no metadata, so the same inputs give the same bytes.
matplotlib (and scikit-learn's display helpers) are imported by the functions that draw: a
stage or command that imports this module without drawing does not pay their start-up time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlrepo.io import write_with

PNG_METADATA = {"Software": None}


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the Agg backend (no display needed), imported on first use."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: str | Path) -> None:
    write_with(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100, metadata=PNG_METADATA))
    pyplot().close(fig)


def confusion_png(y_true: np.ndarray, y_pred: np.ndarray, classes: list[Any], path: Path) -> None:
    """Actual classes down the rows, predicted across (as the interactive plot of dvc.yaml)."""
    from sklearn.metrics import ConfusionMatrixDisplay

    fig, ax = pyplot().subplots(figsize=(5, 4.5))
    ConfusionMatrixDisplay.from_predictions(
        y_true, y_pred, labels=classes, ax=ax, colorbar=False, cmap="Blues"
    )
    ax.set_xlabel("predicted class")
    ax.set_ylabel("actual class")
    ax.set_title("Confusion matrix (test set)")
    fig.tight_layout()
    _save(fig, path)


def roc_png(y_true: np.ndarray, proba: np.ndarray, classes: list[Any], path: Path) -> None:
    """ROC of the second class for binary targets; one curve per class (one-vs-rest) otherwise."""
    from sklearn.metrics import RocCurveDisplay

    fig, ax = pyplot().subplots(figsize=(5, 4.5))
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
    fig, ax = pyplot().subplots(figsize=(6, 0.3 * len(shown) + 1.2))
    ax.barh(shown["feature"], shown["importance"], xerr=shown["std"], color="tab:blue")
    ax.set_xlabel("mean accuracy drop when shuffled")
    ax.set_title("Permutation feature importance (test set)")
    fig.tight_layout()
    _save(fig, path)
