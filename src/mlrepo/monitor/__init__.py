"""Drift detection: is the current data still like the data the model was trained on?

* ``stattests`` — the tests (KS, chi-square, z, Wasserstein, Jensen-Shannon) and the choice
  of one per column, Evidently's defaults unless ``params.yaml`` (``monitor``) says otherwise;
* ``drift`` — per-column results and the dataset verdict (the pure core);
* ``sources`` / ``log_window`` — the reference (a table or a model's training data) and the
  current data (a table or a window of the service's prediction log);
* ``report`` — the Markdown report with a plot per drifted column;
* ``command`` — ``mlrepo drift`` end to end, with its exit codes.
"""

from mlrepo.monitor.drift import ColumnDrift, DriftResult, check_columns, detect_drift

__all__ = ["ColumnDrift", "DriftResult", "check_columns", "detect_drift"]
