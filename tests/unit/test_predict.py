"""Batch prediction: ``mlrepo predict`` equals the model in process, chunk after chunk, and a
file that does not fit the schema is refused with every problem at once and nothing written."""

from __future__ import annotations

import math
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import pytest
import yaml

from mlrepo.bundle import MODEL_FILES
from mlrepo.cli import main
from mlrepo.io import file_md5, write_json
from mlrepo.params import ExportParams, TrainParams
from mlrepo.prediction.core import (
    PREDICT_FIXES,
    InvalidInput,
    LoadedModel,
    Predictions,
    check_input,
    load_model,
    typed_frame,
)
from mlrepo.prediction_store.entries import Entry, Records
from mlrepo.schema import FeatureSchema, check_frame, surely_fits, surely_fits_record
from mlrepo.stages.export import export
from mlrepo.stages.featurize import Split
from mlrepo.stages.train import metadata, train


@pytest.fixture
def project(
    tmp_path: Path,
    split: Split,
    schema: FeatureSchema,
    small_train: Callable[..., TrainParams],
    monkeypatch: pytest.MonkeyPatch,
) -> Path:
    """A git repository (the registry resolves inside one) holding a trained model and the
    dvc.lock that records its md5s, as `dvc repro` leaves it; the working directory."""
    root = tmp_path / "project"
    (root / "models").mkdir(parents=True)
    params = small_train()
    trained = train(split.train, schema, split.preprocessor, params)
    joblib.dump(trained.pipeline, root / MODEL_FILES["pipeline"])
    meta = metadata(trained, schema, params, "0" * 32, len(split.train))
    write_json(meta, root / MODEL_FILES["metadata"])
    exported = export(trained.pipeline, split.test, schema, ExportParams())
    (root / MODEL_FILES["onnx"]).write_bytes(exported.onnx_bytes)
    present = [path for path in MODEL_FILES.values() if (root / path).exists()]
    outs = [{"path": path, "md5": file_md5(root / path)} for path in present]
    (root / "dvc.lock").write_text(yaml.safe_dump({"stages": {"train": {"outs": outs}}}))
    (root / "dvc.yaml").write_text("stages: {}\n")
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    monkeypatch.chdir(root)
    return root


@pytest.fixture
def model(project: Path) -> LoadedModel:
    return load_model("workspace", root=project)


def test_the_onnx_graph_is_served_by_default(model: LoadedModel) -> None:
    assert model.predictor.backend == "onnx"
    assert model.predictor.fallback_reason is None


@pytest.fixture
def table(split: Split) -> pd.DataFrame:
    """Rows to score: the test split with an id column in front and the label at the end."""
    frame = pd.concat([split.test, split.train.iloc[:40]], ignore_index=True)
    frame.insert(0, "row_id", [f"r{i}" for i in range(len(frame))])
    return frame


def write(frame: pd.DataFrame, path: Path) -> Path:
    if path.suffix == ".csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_parquet(path, index=False)
    return path


def read(path: Path) -> pd.DataFrame:
    return pd.read_csv(path) if path.suffix == ".csv" else pd.read_parquet(path)


def predict(*args: str | Path) -> int:
    return main(["predict", "--model", "workspace", *map(str, args)])


@pytest.mark.parametrize(
    ("backend", "source", "target"),
    [("onnx", "csv", "parquet"), ("onnx", "parquet", "csv"), ("sklearn", "csv", "parquet")],
)
def test_cli_predictions_equal_the_model_in_process(
    table: pd.DataFrame, project: Path, tmp_path: Path, backend: Any, source: str, target: str
) -> None:
    data = write(table, tmp_path / f"in.{source}")
    out = tmp_path / f"out.{target}"
    # Chunks of 7 rows: scoring in chunks must not change a single bit or the row order.
    ids = ["--id", "row_id", "--id", "target", "--backend", backend]
    assert predict("--input", data, "--output", out, *ids, "--chunk-rows", "7") == 0
    model = load_model("workspace", backend, root=project)
    assert model.predictor.backend == backend
    scored = read(out)
    classes = model.predictor.classes
    expected = model.predictor.predict_proba(table[model.predictor.schema.names])
    probabilities = [f"proba_{c}" for c in classes]
    assert list(scored.columns) == ["row_id", "target", "prediction", *probabilities]
    assert scored["row_id"].tolist() == table["row_id"].tolist()
    assert scored["target"].tolist() == table["target"].tolist()
    np.testing.assert_array_equal(scored[probabilities].to_numpy(), expected)
    assert scored["prediction"].tolist() == [classes[i] for i in expected.argmax(axis=1)]


def test_every_problem_of_every_chunk_is_reported_and_nothing_is_written(
    table: pd.DataFrame, project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = table.drop(columns=["num_05"]).astype({"num_01": object})
    bad["channel"] = "web"
    bad.loc[1, "cat_0"] = "zebra"  # first chunk (rows 1-10)
    bad.loc[24, "cat_0"] = "zebra"  # third chunk: the same problem, counted once overall
    bad.loc[26, "num_01"] = "abc"
    bad.loc[33, "num_02"] = np.inf
    bad.loc[38, "cat_1"] = None
    data = write(bad, tmp_path / "bad.csv")
    out = tmp_path / "out.csv"
    out.write_text("previous results\n")

    assert predict("--input", data, "--output", out, "--id", "row_id", "--chunk-rows", "10") == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("  - ")]
    found = {
        (line.split("column '")[1].split("'")[0], line.rsplit("[", 1)[1].split("]")[0])
        for line in lines
    }
    assert found == {
        ("cat_0", "isin"),
        ("channel", "column_in_schema"),
        ("num_05", "column_in_dataframe"),
        ("num_01", "coerce_dtype"),
        ("num_02", "finite"),
        ("cat_1", "not_nullable"),
        ("target", "column_in_schema"),
    }
    assert len(lines) == 7  # one line per column and rule, however many chunks had it
    category = next(line for line in lines if "'cat_0'" in line)
    assert "rows 2" in category and "2 rows in all" in category
    assert "rows 27" in next(line for line in lines if "'num_01'" in line)  # row 7 of chunk 3
    assert "rows 34" in next(line for line in lines if "'num_02'" in line)
    assert "--id" in next(line for line in lines if "'target'" in line)  # how to keep it
    assert out.read_text() == "previous results\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.csv", "out.csv", "project"]


def test_values_outside_the_training_range_are_scored(
    table: pd.DataFrame, model: LoadedModel, tmp_path: Path
) -> None:
    # The schema's ranges are those seen in training (for drift reports), not rules for new data.
    frame = table.drop(columns=["row_id", "target"]).iloc[:3].copy()
    frame["num_00"] = [1e6, -1e6, 0.0]
    assert (
        predict("--input", write(frame, tmp_path / "far.parquet"), "--output", tmp_path / "o.csv")
        == 0
    )
    assert len(read(tmp_path / "o.csv")) == 3


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--output", "out.csv", "--id", "customer"], "--id column(s) customer not found"),
        (["--output", "out.csv", "--id", "prediction"], "already has a column of that name"),
        (["--output", "out.json"], "unsupported output file type '.json'"),
        (["--output", "out.csv", "--model", "nope"], "unknown model reference 'nope'"),
    ],
)
def test_usage_mistakes_are_one_clear_message(
    table: pd.DataFrame,
    project: Path,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    message: str,
) -> None:
    write(table.drop(columns="target"), project / "in.csv")
    assert main(["predict", "--model", "workspace", "--input", "in.csv", *args]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (project / "out.csv").exists()


def test_empty_and_unreadable_inputs(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "empty.csv").write_text("")
    (project / "header.csv").write_text("num_00,cat_0\n")
    (project / "junk.parquet").write_bytes(b"not parquet at all")
    for name, message in [
        ("empty.csv", "the file is empty"),
        ("header.csv", "has a header but no data rows"),
        ("junk.parquet", "cannot be read as Parquet"),
    ]:
        assert predict("--input", name, "--output", "out.parquet") == 2
        assert message in capsys.readouterr().err
    assert not (project / "out.parquet").exists()


def mutations(frame: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """A changed copy of ``frame`` per rule of the schema check (and two edge cases)."""
    cases = {"extra": frame.assign(extra=1), "missing": frame.drop(columns="num_03")}
    for name, column, value in [
        ("text", "num_01", "abc"),
        ("null_number", "num_02", None),
        ("inf", "num_04", np.inf),
        ("unknown_category", "cat_0", "zebra"),
        ("null_category", "cat_1", None),
        ("bool_number", "num_00", True),
    ]:
        broken = frame.astype({column: object})
        broken.loc[broken.index[-1], column] = value
        cases[name] = broken
    cases["bool_column"] = frame.assign(num_00=True)
    cases["int_category"] = frame.assign(cat_0=1)
    return cases


def test_the_fast_path_never_hides_a_problem_check_frame_would_report(
    schema: FeatureSchema, split: Split
) -> None:
    features = schema.features
    frame = split.test[schema.names]
    assert check_input(frame, features) == []
    for name, changed in mutations(frame).items():
        expected = check_frame(
            changed, features, strict=True, check_categories=True, fixes=PREDICT_FIXES
        )
        # Booleans are numbers to check_frame (True is 1); every other change breaks a rule.
        assert bool(expected) == (name not in {"bool_number", "bool_column"}), name
        assert check_input(changed, features) == expected, name
    # Integers, categorical dtype and numbers as categories (1.0 is category "1") still fit.
    assert check_input(frame.astype({"cat_0": "category"}), features) == []
    ints = frame.assign(num_00=frame["num_00"].round().astype("int64"))
    assert check_input(ints, features) == []


NOW = datetime(2026, 12, 3, tzinfo=UTC)


def _outcome(predict: Callable[[], Predictions]) -> Any:
    try:
        found = predict()
    except InvalidInput as exc:
        return exc.problems
    return found.classes, found.index.tolist(), found.proba.tobytes()


def test_a_single_record_is_checked_and_predicted_as_its_frame(
    model: LoadedModel, split: Split
) -> None:
    """The service's single-record path (no frame) gives the frame's verdict and the very same
    probabilities, bit for bit, and falls back to the frame for a record in doubt."""
    schema, features = model.schema, model.features
    rows = split.test[schema.names].astype(object).to_numpy().tolist()
    numbers = [i for i, f in enumerate(schema.features) if f.kind == "numeric"]
    categories = [i for i, f in enumerate(schema.features) if f.kind == "categorical"]
    first = [float(v) if i in numbers else v for i, v in enumerate(rows[0])]

    def changed(index: int, value: Any) -> list[Any]:
        return [value if i == index else v for i, v in enumerate(first)]

    records = [[float(v) if i in numbers else v for i, v in enumerate(r)] for r in rows[:20]]
    records += [
        changed(numbers[0], None),  # a null number
        changed(numbers[1], math.inf),
        changed(numbers[2], 3),  # an int: the frame path decides
        changed(numbers[3], True),
        changed(categories[0], "zebra"),
        changed(categories[0], None),  # a null category
        changed(categories[1], 1),
        first[:-1],
    ]
    fast = 0
    for values in records:
        frame = typed_frame([values], schema) if len(values) == len(features) else None
        if frame is not None:
            expected = _outcome(lambda: model.predict(frame, {"isin": "x"}))  # noqa: B023
            # A fast yes, never a no: a record in doubt (an int) is left to the frame.
            assert surely_fits(frame, features) or not surely_fits_record(values, features)
            assert _outcome(lambda: model.predict_record(values, {"isin": "x"})) == expected  # noqa: B023
            if not surely_fits_record(values, features):
                continue
            # The log row of the record as typed (the service's) is the row of its frame.
            proba = np.array([[0.25, 0.75]])
            as_logged = [
                Entry("r", NOW, "v1", inputs, [1], ["0", "1"], proba, 1.0).rows(0, 1)
                for inputs in (Records(schema.names, [values]), frame)
            ]
            assert as_logged[0] == as_logged[1]
        fast += surely_fits_record(values, features)
    assert fast == 20  # the test split's records all take the fast path


# ---------------------------------------------------------------------------------------------
# Progress on long files


def test_progress_counts_the_rows_on_stderr_only_when_asked(
    table: pd.DataFrame, project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = write(table, tmp_path / "in.parquet")
    args = ("--input", data, "--output", tmp_path / "out.csv", "--chunk-rows", "50")
    args += ("--id", "row_id", "--id", "target")
    assert predict(*args, "--progress", "always") == 0
    captured = capsys.readouterr()
    # Parquet's footer gives the total: the bar reaches it, chunk by chunk.
    assert f"scoring in.parquet:   0%|          | 0.00/{len(table)} [" in captured.err
    assert "scoring in.parquet: 100%|" in captured.err
    assert f"{len(table)}/{len(table)} [" in captured.err and " rows/s]" in captured.err
    assert "scoring" not in captured.out
    # pytest's stderr is not a terminal: auto shows nothing.
    assert predict(*args) == 0
    assert "scoring in.parquet" not in capsys.readouterr().err


def test_progress_is_shown_on_a_terminal_but_not_in_a_dvc_stage(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import os

    from mlrepo.predict import show_progress

    leader, follower = os.openpty()
    with open(follower, "w") as terminal, open(os.devnull, "w") as pipe:
        monkeypatch.delenv("DVC_STAGE", raising=False)
        monkeypatch.delenv("TQDM_DISABLE", raising=False)
        assert show_progress(terminal) is True
        assert show_progress(pipe) is False
        monkeypatch.setenv("DVC_STAGE", "predict")
        assert show_progress(terminal) is False
    os.close(leader)
