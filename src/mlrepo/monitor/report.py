"""The human report of a drift result: Markdown with one small plot per drifted column.

Plots show the reference and current distributions of a column (histograms on shared bins for
numbers, category shares side by side otherwise), titled in plain words. They are PNGs rendered
with matplotlib's Agg backend and no metadata, and the Markdown holds no time or absolute path,
so the same inputs give the same bytes (the monitor stage's outputs are tracked by DVC).
matplotlib is imported by the function that draws, so importing this module stays fast.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from mlrepo.errors import MlrepoError
from mlrepo.io import write_with
from mlrepo.monitor import stattests
from mlrepo.monitor.drift import category_counts
from mlrepo.monitor.result import ColumnDrift, DriftResult
from mlrepo.plots import PNG_METADATA, pyplot
from mlrepo.prediction import PREDICTION

if TYPE_CHECKING:
    from matplotlib.axes import Axes

MAX_BINS = 40
MAX_CATEGORIES = 20  # the most frequent; the rest are summed as "(other)"
COLORS = ("tab:blue", "tab:orange")


def write_report(
    result: DriftResult,
    samples: dict[str, tuple[pd.Series, pd.Series]],
    path: str | Path,
    plots: str | Path,
    sources: dict[str, str],
) -> None:
    """Write the Markdown report to ``path`` and a PNG per drifted column into ``plots``.

    ``samples`` maps a column name (and ``prediction``) to its (reference, current) values.
    ``plots`` is replaced as a whole, so no plot of an earlier run is left behind; it must not
    hold anything but such plots.
    """
    path, plots = Path(path), Path(plots)
    shown = [*result.drifted]
    if result.prediction is not None and result.prediction.drift:
        shown.append(result.prediction)
    names = plot_names([c.column for c in shown])

    def draw(folder: Path) -> None:
        for column in shown:
            reference, current = samples[column.column]
            plot_column(column, reference, current, folder / names[column.column])

    replace_folder(plots, draw)
    link = Path(os.path.relpath(plots, path.parent)).as_posix()
    text = render_markdown(result, sources, {c: f"{link}/{n}" for c, n in names.items()})
    write_with(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def render_markdown(result: DriftResult, sources: dict[str, str], images: dict[str, str]) -> str:
    """The report: verdict, sources, the table of every test, and a section per drift."""
    lines = ["# Drift report", ""]
    lines.append(
        f"**Dataset drift: {'detected' if result.dataset_drift else 'not detected'}** — "
        f"{result.n_drifted} of {len(result.features)} features drifted "
        f"({result.share_drifted:.0%}; the dataset drifts from {result.drift_share:.0%})."
    )
    if result.prediction is not None:
        lines += [
            "",
            f"**Prediction drift: {'detected' if result.prediction.drift else 'not detected'}**"
            f" — predicted class distribution: {result.prediction.evidence()}.",
        ]
    warning = result.small_sample_warning()
    if warning:
        lines += ["", f"**Warning: {warning}.**"]
    lines += ["", f"Multiple testing: {result.multiple_testing()}.", ""]
    lines += [f"- {key}: `{value}`" for key, value in sources.items()]
    lines += [
        f"- rows: {result.reference_rows} reference, {result.current_rows} current",
        "",
        "## Every test",
        "",
        "| column | kind | test | score | adjusted | threshold | drift | current missing "
        "| new categories |",
        "|---|---|---|---:|---:|---:|---|---:|---|",
    ]
    columns = [*result.features, *([result.prediction] if result.prediction else [])]
    for column in columns:
        lines.append(
            f"| {column.column} | {_kind(column)} | {column.test} "
            f"({column.statistic}) | {column.score:.4g} | {_adjusted(column)} | "
            f"{column.threshold:g} | "
            f"{'**yes**' if column.drift else 'no'} | {column.current_missing} | "
            f"{', '.join(column.new_categories)} |"
        )
    used = sorted({c.test for c in columns})
    lines += ["", "Tests: " + "; ".join(f"{t}: {stattests.DESCRIPTION[t]}" for t in used) + "."]
    drifted = [c for c in columns if c.drift]
    if drifted:
        lines += ["", "## Drifted columns"]
    for column in drifted:
        lines += [
            "",
            f"### {column.column}",
            "",
            f"{column.evidence()}.",
            "",
            f"![{column.column}: reference vs current]({images[column.column]})",
        ]
    return "\n".join(lines) + "\n"


def _adjusted(column: ColumnDrift) -> str:
    return "" if column.adjusted is None else f"{column.adjusted:.4g}"


def plain_title(drift: ColumnDrift) -> tuple[str, str]:
    """The plot's title in words: what moved, then the evidence a reader can check."""
    name = "predicted class" if drift.column == PREDICTION else drift.column
    verdict = "has drifted" if drift.drift else "has not drifted"
    test = stattests.DESCRIPTION[drift.test].split(" (")[0]
    side = "below" if drift.decided_on < drift.threshold else "at or above"
    if drift.statistic == "p_value":
        value = f"p-value {drift.score:.2g}"
        if drift.adjusted is not None:
            value += f" ({stattests.CORRECTION_NAME[drift.correction]}: {drift.adjusted:.2g})"
        meaning = "the distributions differ" if drift.drift else "no clear difference"
    else:
        value = f"distance {drift.score:.2g}"
        meaning = "the distributions differ" if drift.drift else "close enough"
    evidence = f"{test} test: {value}, {side} the {drift.threshold:g} threshold: {meaning}"
    if drift.new_categories:
        evidence += f"; new categories: {', '.join(drift.new_categories)}"
    return f"{name} {verdict} from the training data", evidence


def _kind(column: ColumnDrift) -> str:
    """``numeric``, or ``numeric (binary)`` when few values made it tested as categories."""
    return column.kind if column.kind == column.group else f"{column.kind} ({column.group})"


def plot_names(columns: list[str]) -> dict[str, str]:
    """A distinct, file-system-safe PNG name per column."""
    names: dict[str, str] = {}
    taken: set[str] = set()
    for column in columns:
        stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", column).strip("._") or "column"
        name, n = f"{stem}.png", 1
        while name.lower() in taken:
            n += 1
            name = f"{stem}_{n}.png"
        taken.add(name.lower())
        names[column] = name
    return names


def plot_column(drift: ColumnDrift, reference: pd.Series, current: pd.Series, path: Path) -> None:
    """Reference vs current distribution of one column, titled in plain words."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 5))
    # Fixed margins: tight_layout would draw every figure twice.
    fig.subplots_adjust(left=0.1, right=0.97, top=0.82, bottom=0.17)
    name = "predicted class" if drift.column == PREDICTION else drift.column
    if drift.group == "numeric":
        _histograms(ax, _numbers(reference), _numbers(current))
        ax.set_xlabel(f"{name} (value)", fontsize=11)
        ax.set_ylabel("density (share of rows per unit)", fontsize=11)
    else:
        _category_bars(ax, reference, current)
        ax.set_xlabel(f"{name} (category)", fontsize=11)
        ax.set_ylabel("share of rows", fontsize=11)
    headline, evidence = plain_title(drift)
    fig.suptitle(headline, fontsize=14, y=0.975)
    ax.set_title(textwrap.fill(evidence, 95), fontsize=10, color="0.25")
    ax.tick_params(labelsize=10)
    ax.set_ylim(top=ax.get_ylim()[1] * 1.2)  # room for the legend above the bars
    ax.legend(fontsize=10, loc="upper center", ncol=2, frameon=False)
    write_with(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100, metadata=PNG_METADATA))
    plt.close(fig)


def _numbers(values: pd.Series) -> np.ndarray:
    array = pd.to_numeric(values).to_numpy(dtype="float64")
    return array[np.isfinite(array)]


def _histograms(ax: Axes, reference: np.ndarray, current: np.ndarray) -> None:
    both = np.concatenate([reference, current])
    edges = np.histogram_bin_edges(both, bins=min(MAX_BINS, max(10, int(np.sqrt(len(both))))))
    samples = zip((reference, current), ("reference", "current"), COLORS, strict=True)
    for values, label, color in samples:
        density = np.histogram(values, bins=edges, density=True)[0]
        ax.stairs(
            density, edges, fill=True, alpha=0.45, color=color, label=f"{label}: {len(values)} rows"
        )


def _category_bars(ax: Axes, reference: pd.Series, current: pd.Series) -> None:
    counts = category_counts(reference.dropna(), current.dropna())
    ref_share = counts.reference / counts.reference.sum()
    cur_share = counts.current / counts.current.sum()
    labels = list(counts.labels)
    if len(labels) > MAX_CATEGORIES:
        top = np.argsort(-(ref_share + cur_share), kind="stable")[: MAX_CATEGORIES - 1]
        rest = np.setdiff1d(np.arange(len(labels)), top)
        labels = [labels[i] for i in top] + ["(other)"]
        ref_share = np.append(ref_share[top], ref_share[rest].sum())
        cur_share = np.append(cur_share[top], cur_share[rest].sum())
    x = np.arange(len(labels))
    n_ref, n_cur = counts.reference.sum(), counts.current.sum()
    ax.bar(x - 0.2, ref_share, width=0.4, label=f"reference: {n_ref} rows", color=COLORS[0])
    ax.bar(x + 0.2, cur_share, width=0.4, label=f"current: {n_cur} rows", color=COLORS[1])
    ax.set_xticks(x, labels, rotation=45 if len(labels) > 6 else 0)


def replace_folder(folder: Path, fill: Callable[[Path], None]) -> None:
    """Fill a new temporary folder, then swap it in for ``folder``: all or nothing.

    Refuses a ``folder`` that holds anything but PNG files, so a mistyped path never deletes
    someone's work.
    """
    if folder.exists():
        if not folder.is_dir():
            raise MlrepoError(f"{folder}: exists and is not a folder; choose another plots path")
        foreign = [p.name for p in folder.iterdir() if p.suffix.lower() != ".png" or p.is_dir()]
        if foreign:
            raise MlrepoError(
                f"{folder}: holds {', '.join(sorted(foreign)[:5])}, not only drift plots, so it "
                "is not replaced. Fix: choose another report path or plots folder"
            )
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}."))
    old = tmp.with_name(tmp.name + ".old")
    try:
        fill(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes it private
        if folder.exists():
            folder.rename(old)
        tmp.rename(folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
