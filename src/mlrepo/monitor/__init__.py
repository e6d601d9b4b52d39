"""Drift detection: is the current data still like the data the model was trained on?

* ``stattests`` — the tests (KS, chi-square, z, Wasserstein, Jensen-Shannon) and the choice
  of one per column, Evidently's defaults unless ``params.yaml`` (``monitor``) says otherwise;
* ``drift`` — the tests of each column and the dataset verdict (the pure core), whose
  findings are ``result``'s ``ColumnDrift`` and ``DriftResult``;
* ``sources`` / ``log_window`` — the reference (a table or a model's training data) and the
  current data (a table or a window of the service's prediction log);
* ``report`` — the Markdown report with a plot per drifted column;
* ``command`` — ``mlrepo drift`` end to end, with its exit codes.
"""

from mlrepo.monitor.drift import check_columns, detect_drift
from mlrepo.monitor.result import ColumnDrift, DriftResult

__all__ = ["ColumnDrift", "DriftResult", "check_columns", "detect_drift"]
