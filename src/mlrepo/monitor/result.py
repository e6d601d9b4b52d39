"""What a drift run found: each column's test (``ColumnDrift``) and the dataset verdict
(``DriftResult``), as DVC metrics, as JSON and as a summary a person reads."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from mlrepo.monitor import stattests
from mlrepo.monitor.stattests import Group, TestName


@dataclass(frozen=True)
class ColumnDrift:
    """The test of one column: which test, its score against which threshold, and the verdict."""

    column: str
    kind: str  # the schema's kind: numeric | categorical
    group: Group  # how it was tested: numeric | categorical | binary
    test: TestName
    score: float
    threshold: float
    drift: bool
    reference_rows: int  # non-missing values tested
    current_rows: int
    current_missing: int  # missing values in the current data (not tested)
    new_categories: tuple[str, ...] = ()  # categories the reference never had
    # The p-value after the multiple-testing correction (None: not corrected); drift is
    # decided on it when given.
    adjusted: float | None = None
    correction: str = "none"

    @property
    def statistic(self) -> str:
        return stattests.STATISTIC[self.test]

    @property
    def decided_on(self) -> float:
        """The number compared with the threshold: the adjusted p-value, if there is one."""
        return self.score if self.adjusted is None else self.adjusted

    def as_dict(self) -> dict[str, Any]:
        return {
            "adjusted_score": None if self.adjusted is None else _rounded(self.adjusted),
            "current_missing": self.current_missing,
            "current_rows": self.current_rows,
            "drift": int(self.drift),
            "group": self.group,
            "kind": self.kind,
            "new_categories": list(self.new_categories),
            "reference_rows": self.reference_rows,
            "score": _rounded(self.score),
            "statistic": self.statistic,
            "test": self.test,
            "threshold": self.threshold,
        }

    def evidence(self) -> str:
        """The test and its outcome, e.g. ``ks p_value 1.2e-09 < 0.05`` or, corrected,
        ``ks p_value 0.004 (Benjamini-Hochberg adjusted 0.09) >= 0.05``."""
        relation = "<" if self.decided_on < self.threshold else ">="
        new = f"; new categories: {', '.join(self.new_categories)}" if self.new_categories else ""
        adjusted = ""
        if self.adjusted is not None:
            name = stattests.CORRECTION_NAME[self.correction]
            adjusted = f" ({name} adjusted {_short(self.adjusted)})"
        return (
            f"{self.test} {self.statistic} {_short(self.score)}{adjusted} {relation} "
            f"{_short(self.threshold)}{new}"
        )

    def describe(self) -> str:
        """One line for people, e.g. ``num_03: drift (ks p_value 1.2e-09 < 0.05)``."""
        return f"{self.column}: {'drift' if self.drift else 'no drift'} ({self.evidence()})"


@dataclass(frozen=True)
class DriftResult:
    """Every feature's test, the prediction test if predictions were given, and the verdict."""

    features: list[ColumnDrift]
    prediction: ColumnDrift | None
    drift_share: float
    reference_rows: int
    current_rows: int
    correction: str = "none"
    p_value: float = 0.05  # the threshold of the p-value tests
    min_current_rows: int = 1
    # True when the current sample is below min_current_rows and small_current is warn.
    too_few_rows: bool = False

    @property
    def n_p_value_tests(self) -> int:
        return sum(column.statistic == "p_value" for column in self.features)

    @property
    def expected_false_alarms(self) -> float:
        """Features expected to drift by chance alone without correction, if none drifted:
        the number of p-value tests times the threshold."""
        return self.n_p_value_tests * self.p_value

    def multiple_testing(self) -> str:
        """One sentence on the many tests: the correction applied, or the false alarms to
        expect without one."""
        n = self.n_p_value_tests
        if n == 0:
            return "no p-value test (distance tests only): no multiple-testing correction needed"
        if self.correction == "none":
            return (
                f"{n} p-value tests at {self.p_value:g} without correction: about "
                f"{self.expected_false_alarms:.1f} feature(s) drift by chance alone even when "
                "nothing changed (monitor.correction can adjust for it)"
            )
        bound = (
            "the chance of any false alarm"
            if self.correction == "bonferroni"
            else "the expected share of false alarms among the drifted features"
        )
        return (
            f"{n} p-value tests, {stattests.CORRECTION_NAME[self.correction]} adjusted: "
            f"{bound} is at most {self.p_value:g}"
        )

    def small_sample_warning(self) -> str | None:
        if not self.too_few_rows:
            return None
        return (
            f"only {self.current_rows} current row(s), fewer than monitor.min_current_rows "
            f"({self.min_current_rows}): too few to judge drift, this verdict is unreliable"
        )

    @property
    def n_drifted(self) -> int:
        return sum(column.drift for column in self.features)

    @property
    def share_drifted(self) -> float:
        return self.n_drifted / len(self.features)

    @property
    def dataset_drift(self) -> bool:
        return self.share_drifted >= self.drift_share

    @property
    def prediction_drift(self) -> bool:
        return self.prediction is not None and self.prediction.drift

    @property
    def drift(self) -> bool:
        """What a scheduler acts on: the dataset drifted, or the predicted classes did."""
        return self.dataset_drift or self.prediction_drift

    @property
    def drifted(self) -> list[ColumnDrift]:
        return [column for column in self.features if column.drift]

    def metrics(self) -> dict[str, Any]:
        """The verdict in numbers (0/1 for yes/no), so `dvc metrics diff` can compare runs."""
        return {
            "dataset_drift": int(self.dataset_drift),
            "drift": int(self.drift),
            "n_drifted": self.n_drifted,
            "n_features": len(self.features),
            "prediction_drift": int(self.prediction_drift),
            "rows": {"current": self.current_rows, "reference": self.reference_rows},
            "share_drifted": _rounded(self.share_drifted),
            "too_few_rows": int(self.too_few_rows),
        }

    def as_dict(self) -> dict[str, Any]:
        """The metrics with every column's test: the full result, JSON-ready."""
        return {
            **self.metrics(),
            "correction": self.correction,
            "drift_share": self.drift_share,
            "expected_false_alarms": _rounded(self.expected_false_alarms),
            "min_current_rows": self.min_current_rows,
            "features": {column.column: column.as_dict() for column in self.features},
            "prediction": self.prediction.as_dict() if self.prediction else None,
        }

    def summary(self) -> str:
        """A few lines for a terminal: the verdict, then the drifted columns."""
        warning = self.small_sample_warning()
        lines = [f"WARNING: {warning}"] if warning else []
        lines += [
            f"dataset drift: {'yes' if self.dataset_drift else 'no'} ({self.n_drifted} of "
            f"{len(self.features)} features drifted, {self.share_drifted:.0%}; the dataset "
            f"drifts from {self.drift_share:.0%})",
            f"multiple testing: {self.multiple_testing()}",
        ]
        if self.prediction is not None:
            lines.append(
                f"prediction drift: {'yes' if self.prediction.drift else 'no'} "
                f"({self.prediction.evidence()})"
            )
        lines += [f"  {column.describe()}" for column in self.drifted]
        return "\n".join(lines) + "\n"


def _rounded(value: float) -> float:
    """Six significant digits: byte-stable JSON across platforms, plenty for a test score."""
    if value == 0 or not math.isfinite(value):
        return value
    return float(f"{value:.6g}")


def _short(value: float) -> str:
    return f"{value:.3g}"
