"""``mlrepo drift``: load the two samples, test them, write the report, choose the exit code.

Exit codes, for schedulers: 0 no drift; 3 drift (of the dataset or of the predicted classes);
2 a user error (missing columns, empty window, unreadable file...; ``errors.run_cli``). Not 1:
Python exits with 1 on a crash, which must not read as "drift".
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd

from mlrepo.errors import MlrepoError
from mlrepo.logs import get_logger, timed
from mlrepo.monitor.drift import check_columns, detect_drift
from mlrepo.monitor.log_window import default_url, parse_window, read_window
from mlrepo.monitor.result import DriftResult
from mlrepo.monitor.sources import (
    Current,
    Reference,
    load_current,
    load_reference,
    predicted_classes,
)
from mlrepo.params import MonitorParams
from mlrepo.prediction import PREDICTION
from mlrepo.scans import sample_positions

EXIT_NO_DRIFT = 0
EXIT_DRIFT = 3


@dataclass(frozen=True)
class Outcome:
    result: DriftResult
    sources: dict[str, str]
    details: dict[str, Any] = field(default_factory=dict)
    # Rows a sample had before it was cut to monitor.max_rows, by sample; empty if none was.
    sampled_from: dict[str, int] = field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        return EXIT_DRIFT if self.result.drift else EXIT_NO_DRIFT

    def metrics(self) -> dict[str, Any]:
        """The verdict in numbers (``DriftResult.metrics``), with the sizes sampled from."""
        return {**self.result.metrics(), **self._sampled()}

    def as_dict(self) -> dict[str, Any]:
        log = {"log": self.details} if self.details else {}
        return {**self.result.as_dict(), **self._sampled(), "sources": self.sources, **log}

    def _sampled(self) -> dict[str, Any]:
        return {"sampled_from": self.sampled_from} if self.sampled_from else {}

    def summary(self) -> str:
        head = "".join(f"{key}: {value}\n" for key, value in self.sources.items())
        if self.result.prediction is None:
            head += "prediction drift: not tested (no model; pass --model REF)\n"
        return head + self.result.summary()


def plots_folder(report: Path) -> Path:
    """Where a report's plots go: ``reports/drift.md`` -> ``reports/drift_plots/``."""
    return report.with_name(f"{report.stem}_plots")


def run_drift(
    reference: str,
    params: MonitorParams,
    *,
    current: str | None = None,
    since: str | None = None,
    until: str | None = None,
    last: str | None = None,
    database_url: str | None = None,
    model: str | None = None,
    root: str | Path = ".",
    target: str = "target",
    report: Path | None = None,
) -> Outcome:
    """Compare ``current`` (a table) or a window of the prediction log with ``reference``."""
    if current is not None and until is not None:
        raise MlrepoError("--until belongs to a log window (--since or --last), not to --current")
    window = None if current is not None else parse_window(since, until, last)
    with timed("loading the reference"):
        ref = load_reference(reference, model, root, target)
        check_columns(ref.frame, ref.features, ref.label)
    with timed("loading the current data"):
        if window is None:
            assert current is not None
            cur = load_current(current)
        else:
            cur = read_window(database_url or default_url(), window)
        check_columns(cur.frame, ref.features, cur.label)
    return compare(ref, cur, params, report)


def compare(
    ref: Reference,
    cur: Current,
    params: MonitorParams,
    report: Path | None = None,
    plots: Path | None = None,
) -> Outcome:
    """The drift run itself, whoever loaded the samples (``mlrepo drift`` above, the monitor
    stage): the classes the model predicts, the tests, the warning, and the report with its
    plots (in ``plots``, default beside the report)."""
    log = get_logger()
    log.info("reference %d rows, current %d rows", len(ref.frame), len(cur.frame))
    ref, cur, sampled_from = _subsets(ref, cur, params)
    predictions = None
    if ref.model is not None:
        with timed("predicting classes"):
            predictions = _predictions(ref, cur)
    with timed("drift tests"):
        result = detect_drift(
            ref.frame, cur.frame, ref.features, params, predictions, source=cur.label
        )
    if warning := result.small_sample_warning():
        log.warning("%s: %s", cur.label, warning)
    sources = {"reference": ref.label, "current": cur.label}
    if ref.model_label is not None:
        sources["model"] = ref.model_label
    for name, rows in sampled_from.items():  # said in the summary, the report and the JSON
        sources[name] += f" (tested on a seeded subset of {params.max_rows} of its {rows} rows)"
    if report is not None:
        from mlrepo.monitor.report import write_report  # matplotlib: imported when needed

        samples = {f.name: (ref.frame[f.name], cur.frame[f.name]) for f in ref.features}
        if predictions is not None:
            samples[PREDICTION] = predictions
        with timed("writing the report"):
            write_report(result, samples, report, plots or plots_folder(report), sources)
        log.info("report written to %s", report)
    return Outcome(result, sources, cur.details, sampled_from)


def _subsets(
    ref: Reference, cur: Current, params: MonitorParams
) -> tuple[Reference, Current, dict[str, int]]:
    """Each sample above ``params.max_rows`` cut to a seeded random subset of that many rows,
    in their original order, and the sizes they had."""
    sampled_from: dict[str, int] = {}
    keep = sample_positions(len(ref.frame), params.max_rows, params.seed)
    if keep is not None:
        sampled_from["reference"] = len(ref.frame)
        ref = replace(ref, frame=ref.frame.iloc[keep])
    keep = sample_positions(len(cur.frame), params.max_rows, params.seed + 1)
    if keep is not None:
        sampled_from["current"] = len(cur.frame)
        predicted = None if cur.predicted is None else cur.predicted.iloc[keep]
        cur = replace(cur, frame=cur.frame.iloc[keep], predicted=predicted)
    for name, rows in sampled_from.items():
        get_logger().info(
            "%s: %d rows tested of %d (monitor.max_rows, seeded by monitor.seed)",
            name,
            params.max_rows,
            rows,
        )
    return ref, cur, sampled_from


def _predictions(ref: Reference, cur: Current) -> tuple[pd.Series, pd.Series]:
    assert ref.model is not None
    predictor = ref.model.predictor
    reference = predicted_classes(predictor, ref.frame, "reference")
    if cur.predicted is not None:  # the classes the service predicted, as it logged them
        return reference, cur.predicted
    return reference, predicted_classes(predictor, cur.frame, "current")
