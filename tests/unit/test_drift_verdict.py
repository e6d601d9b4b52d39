"""The guards on the drift verdict: too few current rows, many tests at once, readable plots."""

from __future__ import annotations

import struct
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlrepo.cli import main
from mlrepo.errors import DataError, ParamsError
from mlrepo.monitor import stattests
from mlrepo.monitor.drift import detect_drift
from mlrepo.monitor.report import plain_title, write_report
from mlrepo.params import GenerateParams, MonitorParams, parse_params
from mlrepo.prediction_store import LogSettings
from mlrepo.prediction_store.entries import Entry
from mlrepo.schema import Feature
from mlrepo.serve.prediction_log import PredictionLog
from mlrepo.stages.generate import synthesize

EXIT_USER_ERROR = 2


@pytest.fixture(scope="module")
def small() -> tuple[pd.DataFrame, pd.DataFrame, list[Feature]]:
    """800 reference and 200 current rows of one distribution (p-value tests)."""
    frame = synthesize(GenerateParams(n_samples=1000, seed=42))
    features = [
        Feature(name=c, kind="categorical" if c.startswith("cat_") else "numeric")
        for c in frame.columns
        if c != "target"
    ]
    order = np.random.default_rng(1).permutation(len(frame))
    reference = frame.iloc[order[:800]].reset_index(drop=True)
    return reference, frame.iloc[order[800:]].reset_index(drop=True), features


def shifted(frame: pd.DataFrame, columns: int) -> pd.DataFrame:
    out = frame.copy()
    for i in range(columns):
        name = f"num_{i:02d}"
        out[name] = out[name] + out[name].std()
    return out


# ---------------------------------------------------------------------------------------------
# A minimum current-sample size


def test_one_current_row_gets_no_verdict_but_a_clear_error(
    small: tuple[pd.DataFrame, pd.DataFrame, list[Feature]],
) -> None:
    reference, current, features = small
    with pytest.raises(DataError) as caught:
        detect_drift(reference, current.head(1), features, MonitorParams(), source="batch.csv")
    message = str(caught.value)
    assert message.startswith("batch.csv: 1 row(s), fewer than monitor.min_current_rows (30)")
    assert "monitor.small_current: warn" in message
    limit = MonitorParams(min_current_rows=200)
    assert detect_drift(reference, current, features, limit).too_few_rows is False


def test_warn_gives_a_verdict_marked_unreliable_everywhere(
    tmp_path: Path, small: tuple[pd.DataFrame, pd.DataFrame, list[Feature]]
) -> None:
    reference, current, features = small
    params = MonitorParams(small_current="warn")
    result = detect_drift(reference, current.head(5), features, params)
    assert result.too_few_rows and result.metrics()["too_few_rows"] == 1
    assert result.summary().startswith(
        "WARNING: only 5 current row(s), fewer than monitor.min_current_rows (30)"
    )
    samples = {f.name: (reference[f.name], current.head(5)[f.name]) for f in features}
    report = tmp_path / "drift.md"
    write_report(result, samples, report, tmp_path / "drift_plots", {"current": "x.csv"})
    assert "**Warning: only 5 current row(s)" in report.read_text("utf-8")
    full = detect_drift(reference, current, features, params)
    assert not full.too_few_rows and "WARNING" not in full.summary()


def test_a_log_window_of_one_row_is_refused_by_mlrepo_drift(
    tmp_path: Path,
    small: tuple[pd.DataFrame, pd.DataFrame, list[Feature]],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    reference, current, _ = small
    monkeypatch.chdir(tmp_path)  # no params.yaml: the documented defaults apply
    reference.to_parquet(tmp_path / "reference.parquet")
    url = f"sqlite:///{tmp_path / 'log.db'}"
    log = PredictionLog(LogSettings(url=url, flush_seconds=0.01))
    log.start()
    at = datetime.now(UTC) - timedelta(minutes=5)
    row = current.drop(columns="target").head(1)
    log.submit(Entry("r1", at, "v1", row, ["1"], ["0", "1"], np.array([[0.2, 0.8]]), 2.0))
    log.close()
    reference_file = str(tmp_path / "reference.parquet")
    code = main(["drift", "--reference", reference_file, "--last", "1h", "--database-url", url])
    err = capsys.readouterr().err
    assert code == EXIT_USER_ERROR
    assert "1 row(s), fewer than monitor.min_current_rows (30)" in err
    assert "prediction log" in err and "Traceback" not in err


def test_bad_guard_params_are_rejected_by_their_dotted_name() -> None:
    cases = {
        "min_current_rows": (0, r"monitor\.min_current_rows: Input should be greater than 0"),
        "small_current": (
            "maybe",
            r"monitor\.small_current: must be one of 'error' or 'warn' \(given: 'maybe'\)",
        ),
        "correction": ("bh", r"monitor\.correction: must be one of 'none', 'bonferroni' or"),
    }
    for key, (value, message) in cases.items():
        with pytest.raises(ParamsError, match=message):
            parse_params({"monitor": {key: value}})


# ---------------------------------------------------------------------------------------------
# Multiple-testing correction


def test_the_corrections_match_their_definitions() -> None:
    p = np.array([0.01, 0.04, 0.03, 0.005, 0.5])
    assert np.allclose(stattests.adjust(p, "none"), p)
    assert np.allclose(stattests.adjust(p, "bonferroni"), [0.05, 0.2, 0.15, 0.025, 1.0])
    # Benjamini-Hochberg by hand: sorted p * m / rank, then the running minimum from the top.
    order = np.argsort(p)
    ranked = p[order] * len(p) / np.arange(1, len(p) + 1)
    expected = np.empty_like(p)
    expected[order] = np.minimum.accumulate(ranked[::-1])[::-1]
    assert np.allclose(stattests.adjust(p, "benjamini_hochberg"), expected)


def test_benjamini_hochberg_removes_the_chance_alarm_and_keeps_real_drift(
    small: tuple[pd.DataFrame, pd.DataFrame, list[Feature]],
) -> None:
    reference, current, features = small
    plain = detect_drift(reference, current, features, MonitorParams())
    assert [c.column for c in plain.drifted] == ["cat_1"]  # 1 of 22 at p < 0.05, by chance
    assert "about 1.1 feature(s) drift by chance alone" in plain.summary()
    bh = MonitorParams(correction="benjamini_hochberg")
    same = detect_drift(reference, current, features, bh)
    assert same.drifted == [] and same.as_dict()["correction"] == "benjamini_hochberg"
    cat_1 = same.as_dict()["features"]["cat_1"]
    assert cat_1["adjusted_score"] > 0.05 > cat_1["score"]
    assert "22 p-value tests, Benjamini-Hochberg adjusted" in same.summary()
    moved = detect_drift(reference, shifted(current, 12), features, bh)
    assert {f"num_{i:02d}" for i in range(12)} <= {c.column for c in moved.drifted}
    assert moved.dataset_drift
    evidence = moved.features[0].evidence()
    assert evidence.startswith("ks p_value ") and "(Benjamini-Hochberg adjusted " in evidence


def test_distance_tests_are_not_corrected(
    small: tuple[pd.DataFrame, pd.DataFrame, list[Feature]],
) -> None:
    reference, current, features = small
    params = MonitorParams(small_reference_rows=10, correction="bonferroni")
    result = detect_drift(reference, current, features, params)
    assert all(c.adjusted is None for c in result.features)
    assert result.multiple_testing().startswith("no p-value test")


# ---------------------------------------------------------------------------------------------
# Plots a person reads


def png_size(path: Path) -> tuple[int, int]:
    width, height = struct.unpack(">II", path.read_bytes()[16:24])
    return width, height


def test_drift_plots_are_titled_in_words_and_big_enough_to_read(
    tmp_path: Path, small: tuple[pd.DataFrame, pd.DataFrame, list[Feature]]
) -> None:
    reference, current, features = small
    moved = shifted(current, 1)
    result = detect_drift(reference, moved, features, MonitorParams())
    num_00 = result.features[0]
    headline, evidence = plain_title(num_00)
    assert headline == "num_00 has drifted from the training data"
    assert evidence.startswith("two-sample Kolmogorov-Smirnov test: p-value ")
    assert evidence.endswith("below the 0.05 threshold: the distributions differ")
    assert "p_value" not in headline + evidence
    samples = {f.name: (reference[f.name], moved[f.name]) for f in features}
    write_report(result, samples, tmp_path / "drift.md", tmp_path / "drift_plots", {})
    assert png_size(tmp_path / "drift_plots" / "num_00.png") == (800, 500)


def test_drawing_modules_import_without_matplotlib() -> None:
    code = (
        "import sys, mlrepo.plots, mlrepo.monitor.report, mlrepo.stages.evaluate, "
        "mlrepo.stages.monitor, mlrepo.monitor.command\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'matplotlib'))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
