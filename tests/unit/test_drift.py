"""Drift detection: Evidently's test choice, no false alarm on same-distribution data, detection
of mean, variance, category and prediction shifts, the batches stage, the report, the prediction
log window and the ``mlrepo drift`` command's exit codes.

Data come from the project's own generator with fixed seeds; the model is a real (small) random
forest; the prediction log is a real SQLite database written by the service's own writer.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.spatial import distance

from mlrepo.bundle import ModelBundle
from mlrepo.cli import main
from mlrepo.errors import DataError, MlrepoError, ParamsError
from mlrepo.monitor import stattests
from mlrepo.monitor.command import EXIT_DRIFT, EXIT_NO_DRIFT
from mlrepo.monitor.drift import (
    DriftResult,
    category_counts,
    check_columns,
    column_drift,
    detect_drift,
)
from mlrepo.monitor.log_window import parse_window, read_window
from mlrepo.monitor.report import replace_folder, write_report
from mlrepo.monitor.sources import predicted_classes
from mlrepo.params import BatchParams, GenerateParams, MonitorParams, TrainParams, parse_params
from mlrepo.prediction.backends import SklearnPredictor
from mlrepo.prediction_store import LogSettings
from mlrepo.prediction_store.entries import Entry
from mlrepo.schema import Feature, FeatureSchema
from mlrepo.serve.prediction_log import PredictionLog
from mlrepo.stages.batches import NEW_CATEGORY, make_batches
from mlrepo.stages.featurize import Split
from mlrepo.stages.generate import synthesize
from mlrepo.stages.train import train
from mlrepo.stages.validate import Validation

PARAMS = MonitorParams()
EXIT_USER_ERROR = 2


def generated(n_samples: int, seed: int = 42) -> tuple[pd.DataFrame, list[Feature]]:
    """A table of the default shape (20 numeric, 2 categorical features) and its features."""
    frame = synthesize(GenerateParams(n_samples=n_samples, seed=seed))
    features = [
        Feature(name=c, kind="categorical" if c.startswith("cat_") else "numeric")
        for c in frame.columns
        if c != "target"
    ]
    return frame, features


def halves(frame: pd.DataFrame, n_reference: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A seeded random split: both parts follow exactly the same distribution."""
    order = np.random.default_rng(seed).permutation(len(frame))
    reference = frame.iloc[order[:n_reference]].reset_index(drop=True)
    return reference, frame.iloc[order[n_reference:]].reset_index(drop=True)


@pytest.fixture(scope="module")
def small() -> tuple[pd.DataFrame, pd.DataFrame, list[Feature]]:
    """800 reference and 200 current rows: the p-value tests (reference <= 1000 rows)."""
    frame, features = generated(1000)
    return (*halves(frame, 800, seed=1), features)


@pytest.fixture(scope="module")
def large() -> tuple[pd.DataFrame, pd.DataFrame, list[Feature]]:
    """5000 reference and 3000 current rows: the distance tests."""
    frame, features = generated(8000)
    return (*halves(frame, 5000, seed=2), features)


def newly_drifted(
    reference: pd.DataFrame, current: pd.DataFrame, features: list[Feature], result: DriftResult
) -> set[str]:
    """The columns that drift in ``result`` but not when ``current`` is left as it was: the
    sample's own chance alarms (about 5% of columns at p < 0.05) cancel out."""
    before = {c.column for c in detect_drift(reference, current, features, PARAMS).drifted}
    return {c.column for c in result.drifted} - before


def shifted_mean(frame: pd.DataFrame, column: str, by_std: float) -> pd.DataFrame:
    out = frame.copy()
    out[column] = out[column] + by_std * out[column].std()
    return out


def scaled(frame: pd.DataFrame, column: str, factor: float) -> pd.DataFrame:
    out = frame.copy()
    mean = out[column].mean()
    out[column] = mean + factor * (out[column] - mean)
    return out


def with_new_category(frame: pd.DataFrame, column: str, share: float) -> pd.DataFrame:
    out = frame.copy()
    out.loc[out.index[: int(share * len(out))], column] = "zzz"
    return out


# ---------------------------------------------------------------------------------------------
# The test chosen for a column: Evidently's defaults, overridable in params.yaml


@pytest.mark.parametrize(
    ("reference_rows", "numeric", "n_values", "expected"),
    [
        (1000, True, 6, "ks"),
        (1000, True, 5, "chi2"),  # few distinct numbers: tested as categories
        (1000, True, 3, "chi2"),
        (1000, True, 2, "z"),
        (1000, False, 7, "chi2"),
        (1000, False, 2, "z"),
        (1001, True, 6, "wasserstein"),
        (1001, True, 5, "jensenshannon"),
        (1001, True, 2, "jensenshannon"),
        (1001, False, 7, "jensenshannon"),
        (1001, False, 2, "jensenshannon"),
    ],
)
def test_the_default_choice_is_evidentlys(
    reference_rows: int, numeric: bool, n_values: int, expected: str
) -> None:
    group = stattests.group_of(numeric, n_values, PARAMS)
    assert stattests.choose(group, reference_rows, PARAMS) == expected


def test_the_choice_and_thresholds_come_from_params() -> None:
    params = parse_params(
        {
            "monitor": {
                "small_reference_rows": 10,
                "min_distinct_numeric": 2,
                "tests": {"numeric_large": "ks", "categorical_large": "chi2"},
            }
        }
    ).monitor
    assert stattests.choose(stattests.group_of(True, 3, params), 11, params) == "ks"
    assert stattests.choose(stattests.group_of(False, 3, params), 11, params) == "chi2"
    rng = np.random.default_rng(0)
    reference = pd.Series(rng.normal(size=500))
    current = pd.Series(rng.normal(0.2, 1, size=500))
    p = stattests.ks(reference.to_numpy(), current.to_numpy())
    above = column_drift("x", "numeric", reference, current, params.model_copy())
    assert above.test == "ks" and above.score == p
    for limit, drift in ((p * 2, True), (p / 2, False)):
        limited = PARAMS.model_copy(update={"p_value": limit})
        assert column_drift("x", "numeric", reference, current, limited).drift is drift


def test_a_test_that_does_not_fit_the_column_group_is_a_params_error() -> None:
    with pytest.raises(ParamsError, match=r"monitor\.tests\.categorical_small: must be one of"):
        parse_params({"monitor": {"tests": {"categorical_small": "ks"}}})
    with pytest.raises(ParamsError, match=r"did you mean 'monitor\.drift_share'"):
        parse_params({"monitor": {"drift_shar": 0.3}})


# ---------------------------------------------------------------------------------------------
# The statistics themselves


@pytest.mark.parametrize(("n", "m"), [(5, 9), (800, 200), (5000, 30000)])
def test_wasserstein_equals_scipys_divided_by_the_reference_std(n: int, m: int) -> None:
    rng = np.random.default_rng(n)
    reference = rng.normal(size=n).round(1)  # rounded: ties inside and across the samples
    current = rng.normal(0.3, 1.5, size=m).round(1)
    expected = stats.wasserstein_distance(reference, current) / np.std(reference)
    assert stattests.wasserstein(reference, current) == pytest.approx(expected, rel=1e-9)


def test_count_tests_match_their_textbook_formulas() -> None:
    counts = category_counts(pd.Series(["a"] * 60 + ["b"] * 40), pd.Series(["a"] * 30 + ["b"] * 70))
    assert counts.labels == ["a", "b"]
    p_ref, p_cur, pooled = 0.4, 0.7, 110 / 200
    z = (p_ref - p_cur) / np.sqrt(pooled * (1 - pooled) * (1 / 100 + 1 / 100))
    assert stattests.z(counts) == pytest.approx(2 * stats.norm.sf(abs(z)))
    expected = stats.chisquare([30, 70], [60, 40]).pvalue
    assert stattests.chi2(counts) == pytest.approx(expected)
    assert stattests.jensenshannon(counts) == pytest.approx(
        distance.jensenshannon([0.6, 0.4], [0.3, 0.7])
    )
    same = category_counts(pd.Series(["a"] * 5), pd.Series(["a"] * 9))
    assert stattests.z(same) == stattests.chi2(same) == 1.0


def test_labels_from_different_files_are_one_category() -> None:
    counts = category_counts(pd.Series([1.0, 2.0, 1.0]), pd.Series(["1", "2", 2]))
    assert counts.labels == ["1", "2"]
    assert counts.reference.tolist() == [2, 1] and counts.current.tolist() == [1, 2]


# ---------------------------------------------------------------------------------------------
# No false alarm, and detection of each kind of shift, with both families of tests


@pytest.mark.parametrize("sample", ["small", "large"])
def test_no_false_alarm_on_a_batch_from_the_same_distribution(
    sample: str, request: pytest.FixtureRequest
) -> None:
    reference, current, features = request.getfixturevalue(sample)
    result = detect_drift(reference, current, features, PARAMS)
    assert not result.dataset_drift and not result.drift
    assert result.n_drifted <= 2, result.summary()  # ~5% of 22 by chance at p < 0.05
    expected = {"small": {"ks", "chi2"}, "large": {"wasserstein", "jensenshannon"}}[sample]
    assert {c.test for c in result.features} == expected


@pytest.mark.parametrize("sample", ["small", "large"])
def test_a_mean_shift_is_detected(sample: str, request: pytest.FixtureRequest) -> None:
    reference, current, features = request.getfixturevalue(sample)
    result = detect_drift(reference, shifted_mean(current, "num_03", 0.5), features, PARAMS)
    assert newly_drifted(reference, current, features, result) == {"num_03"}
    assert not result.dataset_drift  # one feature of 22 is below drift_share


@pytest.mark.parametrize("sample", ["small", "large"])
def test_a_variance_change_without_a_mean_shift_is_detected(
    sample: str, request: pytest.FixtureRequest
) -> None:
    reference, current, features = request.getfixturevalue(sample)
    result = detect_drift(reference, scaled(current, "num_15", 2.0), features, PARAMS)
    assert newly_drifted(reference, current, features, result) == {"num_15"}


@pytest.mark.parametrize("sample", ["small", "large"])
def test_a_new_category_is_detected_and_named(sample: str, request: pytest.FixtureRequest) -> None:
    reference, current, features = request.getfixturevalue(sample)
    result = detect_drift(reference, with_new_category(current, "cat_0", 0.1), features, PARAMS)
    assert newly_drifted(reference, current, features, result) == {"cat_0"}
    (drifted,) = [c for c in result.features if c.column == "cat_0"]
    assert drifted.new_categories == ("zzz",)


def test_the_dataset_drifts_from_drift_share_of_the_features(
    small: tuple[pd.DataFrame, pd.DataFrame, list[Feature]],
) -> None:
    reference, current, features = small
    for i in range(10):  # with cat_1 (drifted by chance in this sample): half of 22
        current = shifted_mean(current, f"num_{i:02d}", 1.0)
    result = detect_drift(reference, current, features, PARAMS)
    assert result.n_drifted == 11 and result.share_drifted == 0.5
    assert result.dataset_drift and result.drift
    stricter = PARAMS.model_copy(update={"drift_share": 0.6})
    assert not detect_drift(reference, current, features, stricter).dataset_drift
    metrics = result.metrics()
    assert metrics["dataset_drift"] == 1 and metrics["n_drifted"] == 11
    assert json.loads(json.dumps(result.as_dict()))["features"]["num_00"]["drift"] == 1


@pytest.fixture(scope="module")
def predictor(_split: Split, _validated: Validation) -> SklearnPredictor:
    """A real random forest trained on the unit suite's small table, as a bundle would load."""
    assert _validated.schema is not None
    params = TrainParams(cv_folds=2, n_jobs=1, random_forest={"n_estimators": 10, "max_depth": 5})
    model = train(_split.train, _validated.schema, _split.preprocessor, params)
    buffer = io.BytesIO()
    joblib.dump(model.pipeline, buffer)
    metadata = {"feature_schema": _validated.schema.model_dump()}
    return SklearnPredictor(ModelBundle(files={"pipeline": buffer.getvalue()}, metadata=metadata))


def test_a_shift_of_the_predicted_classes_is_detected(
    predictor: SklearnPredictor, _split: Split, schema: FeatureSchema
) -> None:
    reference, test = _split.train, _split.test
    mostly_one = pd.concat([test[test["target"] == 1], test.iloc[:5]], ignore_index=True)
    ref_classes = predicted_classes(predictor, reference, "reference")

    def drift_of(current: pd.DataFrame) -> DriftResult:
        classes = (ref_classes, predicted_classes(predictor, current, "current"))
        return detect_drift(reference, current, schema.features, PARAMS, classes)

    same, shifted = drift_of(test), drift_of(mostly_one)
    assert same.prediction is not None and not same.prediction.drift
    assert shifted.prediction is not None and shifted.prediction.drift
    assert shifted.prediction.test == "z"  # two classes, 240 reference rows
    assert shifted.prediction_drift and shifted.drift  # a scheduler acts on it


# ---------------------------------------------------------------------------------------------
# Bad inputs


def test_columns_missing_from_the_current_data_are_named(
    small: tuple[pd.DataFrame, pd.DataFrame, list[Feature]],
) -> None:
    _, current, features = small
    broken = current.drop(columns=["num_04", "cat_0"])
    broken["num_07"] = broken["num_07"].astype(object)
    broken.loc[3, "num_07"] = "n/a"
    with pytest.raises(DataError) as caught:
        check_columns(broken, features, "batch.csv")
    message = str(caught.value)
    assert "batch.csv: 3 problem(s)" in message
    assert "column 'num_04': required column is missing" in message
    assert "column 'cat_0': required column is missing" in message
    assert "column 'num_07': expected numbers" in message and "'n/a'" in message


def test_new_categories_missing_values_and_extra_columns_are_not_input_errors(
    small: tuple[pd.DataFrame, pd.DataFrame, list[Feature]],
) -> None:
    _, current, features = small
    current = with_new_category(current, "cat_0", 0.5).assign(extra=1)
    current.loc[:9, "num_02"] = np.nan
    check_columns(current, features, "batch.csv")
    result = detect_drift(small[0], current, features, PARAMS)
    assert result.features[2].current_missing == 10 and result.features[2].current_rows == 190


def test_a_column_without_any_value_is_a_clear_error(
    small: tuple[pd.DataFrame, pd.DataFrame, list[Feature]],
) -> None:
    reference, current, features = small
    with pytest.raises(DataError, match="column 'num_01' has no values in the current data"):
        detect_drift(reference, current.assign(num_01=np.nan), features, PARAMS)


# ---------------------------------------------------------------------------------------------
# The prediction log as the current data


def write_log(url: str, rows: pd.DataFrame, at: datetime, predicted: str) -> None:
    """Log ``rows`` through the service's own writer, as requests of 50 records at ``at``."""
    log = PredictionLog(LogSettings(url=url, flush_seconds=0.01))
    log.start()
    for start in range(0, len(rows), 50):
        part = rows.iloc[start : start + 50].reset_index(drop=True)
        proba = np.tile([0.2, 0.8], (len(part), 1))
        request = f"{at.isoformat()}-{start}"
        classes = [predicted] * len(part)
        log.submit(Entry(request, at, "v1", part, classes, ["0", "1"], proba, 2.0))
    log.close()
    assert log.written == len(rows)


def test_a_log_window_reads_the_inputs_and_logged_classes_in_it(
    tmp_path: Path, small: tuple[pd.DataFrame, pd.DataFrame, list[Feature]]
) -> None:
    _, current, features = small
    url = f"sqlite:///{tmp_path / 'log.db'}"
    now = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
    write_log(url, current[[f.name for f in features]], now - timedelta(hours=2), "1")
    write_log(url, current.iloc[:7][[f.name for f in features]], now - timedelta(days=3), "0")
    window = parse_window(None, None, "24h", now=now)
    logged = read_window(url, window)
    assert len(logged.frame) == len(current)  # the 3-day-old requests are outside
    check_columns(logged.frame, features, logged.label)
    pd.testing.assert_frame_equal(
        logged.frame[["num_00", "cat_0"]], current[["num_00", "cat_0"]], check_dtype=False
    )
    assert logged.predicted is not None and set(logged.predicted) == {"1"}
    assert logged.details["model_versions"] == {"v1": len(current)}


def test_an_empty_window_and_a_missing_database_are_clear_errors(
    tmp_path: Path, small: tuple[pd.DataFrame, pd.DataFrame, list[Feature]]
) -> None:
    url = f"sqlite:///{tmp_path / 'log.db'}"
    write_log(url, small[1].iloc[:50], datetime(2026, 11, 1, tzinfo=UTC), "1")
    window = parse_window("2026-10-01T00:00", "2026-10-02T00:00", None)
    with pytest.raises(DataError, match="no predictions logged from 2026-10-01T00:00:00Z to"):
        read_window(url, window)
    with pytest.raises(DataError, match="no such database file"):
        read_window(f"sqlite:///{tmp_path / 'nope.db'}", window)


@pytest.mark.parametrize(
    ("since", "until", "last", "message"),
    [
        (None, None, "24x", "expected a number and a unit"),
        ("2026-11-02", "2026-11-01", None, "the window is empty"),
        ("yesterday", None, None, "not an ISO 8601 time"),
        ("2026-11-01", None, "1h", "not both"),
        (None, "2026-11-01", None, "needs --since TIME or --last DURATION"),
    ],
)
def test_bad_windows_are_user_errors(
    since: str | None, until: str | None, last: str | None, message: str
) -> None:
    with pytest.raises(MlrepoError, match=message):
        parse_window(since, until, last)


def test_window_times_are_utc_unless_an_offset_is_given() -> None:
    window = parse_window("2026-11-01T00:00", "2026-11-01T03:00+02:00", None)
    assert window.since == datetime(2026, 11, 1, tzinfo=UTC)
    assert window.until == datetime(2026, 11, 1, 1, tzinfo=UTC)
    last = parse_window(None, None, "1.5d", now=datetime(2026, 11, 3, tzinfo=UTC))
    assert last.since == datetime(2026, 11, 1, 12, tzinfo=UTC)


# ---------------------------------------------------------------------------------------------
# The demo batches


def test_batches_same_is_the_held_out_split_and_shifted_moves_what_params_say(
    _split: Split, schema: FeatureSchema
) -> None:
    params = BatchParams(shift_columns=2, shift=1.0, scale=2.0, new_category_share=0.25)
    batches = make_batches(_split.test, schema, params)
    pd.testing.assert_frame_equal(batches.same, _split.test[schema.names])
    same, shifted = batches.same, batches.shifted
    for column in schema.numeric[:2]:
        moved = same[column].mean() + same[column].std(ddof=0)
        assert shifted[column].mean() == pytest.approx(moved)
        assert shifted[column].std() == pytest.approx(2 * same[column].std())
    for column in schema.numeric[2:]:
        pd.testing.assert_series_equal(shifted[column], same[column])
    for column in schema.categorical:
        assert (shifted[column] == NEW_CATEGORY).mean() == pytest.approx(0.25, abs=0.01)
        unchanged = shifted[column] != NEW_CATEGORY
        pd.testing.assert_series_equal(shifted[column][unchanged], same[column][unchanged])
    again = make_batches(_split.test, schema, params)
    pd.testing.assert_frame_equal(again.shifted, shifted)  # seeded


def test_batches_same_is_not_flagged_and_shifted_is(_split: Split, schema: FeatureSchema) -> None:
    batches = make_batches(_split.test, schema, BatchParams(shift_columns=4))
    train = _split.train
    assert not detect_drift(train, batches.same, schema.features, PARAMS).drift
    result = detect_drift(train, batches.shifted, schema.features, PARAMS)
    assert result.dataset_drift  # 4 of 6 numeric + both categorical
    assert {c.column for c in result.drifted} >= {*schema.numeric[:4], *schema.categorical}


def test_batches_params_that_do_not_fit_the_data_are_named(
    _split: Split, schema: FeatureSchema
) -> None:
    with pytest.raises(DataError, match=r"monitor\.batch\.n_samples is 5000 but the test split"):
        make_batches(_split.test, schema, BatchParams(n_samples=5000))
    with pytest.raises(ParamsError, match=r"shift_columns: num_99 not numeric features"):
        make_batches(_split.test, schema, BatchParams(shift_columns=["num_00", "num_99"]))
    sampled = make_batches(_split.test, schema, BatchParams(n_samples=20, shift_columns=99))
    assert len(sampled.same) == len(sampled.shifted) == 20
    assert sampled.shifted_columns == schema.numeric  # fewer numeric features than asked: all


# ---------------------------------------------------------------------------------------------
# The report


def test_the_report_plots_each_drifted_column_with_the_same_bytes_every_time(
    tmp_path: Path, small: tuple[pd.DataFrame, pd.DataFrame, list[Feature]]
) -> None:
    reference, current, features = small
    current = with_new_category(shifted_mean(current, "num_00", 1.0), "cat_1", 0.2)
    result = detect_drift(reference, current, features, PARAMS)
    samples = {f.name: (reference[f.name], current[f.name]) for f in features}
    sources = {"reference": "train.parquet", "current": "batch.parquet"}
    contents = []
    for run in ("a", "b"):
        report = tmp_path / run / "drift.md"
        write_report(result, samples, report, tmp_path / run / "drift_plots", sources)
        plots = sorted((tmp_path / run / "drift_plots").iterdir())
        assert [p.name for p in plots] == ["cat_1.png", "num_00.png"]
        contents.append([report.read_bytes(), *(p.read_bytes() for p in plots)])
    assert contents[0] == contents[1]
    text = contents[0][0].decode()
    assert "**Dataset drift: not detected** — 2 of 22 features drifted" in text
    assert "![num_00: reference vs current](drift_plots/num_00.png)" in text
    assert "| cat_1 | categorical | chi2 (p_value) | 0 |  | 0.05 | **yes** | 0 | zzz |" in text
    assert str(tmp_path) not in text


def test_a_rerun_leaves_no_stale_plot_and_foreign_folders_are_not_replaced(
    tmp_path: Path,
) -> None:
    plots = tmp_path / "plots"
    replace_folder(plots, lambda folder: (folder / "old.png").write_bytes(b"1"))
    replace_folder(plots, lambda folder: (folder / "new.png").write_bytes(b"2"))
    assert [p.name for p in plots.iterdir()] == ["new.png"]
    (plots / "notes.txt").write_text("mine")
    with pytest.raises(MlrepoError, match="not only drift plots"):
        replace_folder(plots, lambda folder: None)
    assert (plots / "notes.txt").exists()


# ---------------------------------------------------------------------------------------------
# `mlrepo drift`: output and exit codes


@pytest.fixture
def tables(
    tmp_path: Path, small: tuple[pd.DataFrame, pd.DataFrame, list[Feature]]
) -> Callable[[pd.DataFrame], str]:
    reference, _, _ = small
    reference.to_parquet(tmp_path / "reference.parquet")

    def write(frame: pd.DataFrame) -> str:
        path = tmp_path / f"current{len(list(tmp_path.glob('current*')))}.csv"
        frame.drop(columns=["target"], errors="ignore").to_csv(path, index=False)
        return str(path)

    return write


@pytest.fixture
def drift_cli(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Callable[..., tuple[int, str, str]]:
    """``drift_cli(*args)``: exit code, stdout and stderr of ``mlrepo drift --reference
    reference.parquet *args`` run in tmp_path (no params.yaml: the documented defaults apply)."""
    monkeypatch.chdir(tmp_path)

    def run(*args: str) -> tuple[int, str, str]:
        code = main(["drift", "--reference", str(tmp_path / "reference.parquet"), *args])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


def test_the_command_exits_0_without_drift_and_3_with_it(
    tmp_path: Path,
    tables: Callable[[pd.DataFrame], str],
    small: tuple[pd.DataFrame, pd.DataFrame, list[Feature]],
    drift_cli: Callable[..., tuple[int, str, str]],
) -> None:
    _, current, _ = small
    code, out, _ = drift_cli("--current", tables(current))
    assert code == EXIT_NO_DRIFT == 0
    assert "dataset drift: no (1 of 22 features drifted" in out  # cat_1, by chance
    moved = current
    for i in range(12):
        moved = shifted_mean(moved, f"num_{i:02d}", 1.0)
    report = tmp_path / "out" / "drift.md"
    code, out, _ = drift_cli("--current", tables(moved), "--json", "--report", str(report))
    assert code == EXIT_DRIFT == 3
    result = json.loads(out)
    assert result["dataset_drift"] == 1 and result["n_drifted"] == 13  # with cat_1
    assert result["features"]["num_00"]["test"] == "ks"
    assert result["sources"]["reference"].endswith("reference.parquet")
    assert len(list((tmp_path / "out" / "drift_plots").glob("*.png"))) == 13


def test_the_command_exits_2_with_one_clear_message_on_bad_input(
    tables: Callable[[pd.DataFrame], str],
    small: tuple[pd.DataFrame, pd.DataFrame, list[Feature]],
    drift_cli: Callable[..., tuple[int, str, str]],
) -> None:
    code, _, err = drift_cli("--current", tables(small[1].drop(columns="num_09")))
    assert code == EXIT_USER_ERROR
    assert "column 'num_09': required column is missing" in err and "Traceback" not in err
    code, _, err = drift_cli("--since", "2026-11-01", "--database-url", "sqlite:///none.db")
    assert code == EXIT_USER_ERROR and "no such database file" in err
    with pytest.raises(SystemExit) as caught:  # argparse: --current or a window is required
        main(["drift", "--reference", "x.parquet"])
    assert caught.value.code == EXIT_USER_ERROR


def test_samples_above_max_rows_are_tested_on_a_seeded_subset(
    large: tuple[pd.DataFrame, pd.DataFrame, list[Feature]],
) -> None:
    from mlrepo.monitor.command import compare
    from mlrepo.monitor.sources import Current, Reference

    reference, current, features = large
    params = PARAMS.model_copy(update={"max_rows": 4000})
    shifted = shifted_mean(current, "num_00", 1.0)
    outcome = compare(Reference(reference, features, "ref"), Current(shifted, "cur"), params)
    metrics = outcome.metrics()
    assert metrics["rows"] == {"reference": 4000, "current": 3000}
    assert metrics["sampled_from"] == {"reference": 5000}
    assert outcome.as_dict()["sampled_from"] == {"reference": 5000}
    said = "reference: ref (tested on a seeded subset of 4000 of its 5000 rows)"
    assert said in outcome.summary()
    assert outcome.sources["current"] == "cur"
    assert "num_00" in {c.column for c in outcome.result.drifted}
    again = compare(Reference(reference, features, "ref"), Current(shifted, "cur"), params)
    assert again.as_dict() == outcome.as_dict()  # the subset is seeded
    other = params.model_copy(update={"seed": 7})
    reseeded = compare(Reference(reference, features, "ref"), Current(shifted, "cur"), other)
    assert reseeded.as_dict()["features"] != outcome.as_dict()["features"]
    everything = PARAMS.model_copy(update={"max_rows": None})
    whole = compare(Reference(reference, features, "ref"), Current(shifted, "cur"), everything)
    assert "sampled_from" not in whole.metrics()
    assert whole.metrics()["rows"] == {"reference": 5000, "current": 3000}


def test_max_rows_must_be_positive() -> None:
    with pytest.raises(ParamsError, match=r"monitor\.max_rows"):
        parse_params({"monitor": {"max_rows": 0}})
