"""validate: every rule reported at once, each naming the column and the param that allows it."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from mlrepo.errors import run_cli
from mlrepo.io import dumps_json, read_table, write_parquet
from mlrepo.params import GenerateParams, ValidateParams
from mlrepo.problems import Problem
from mlrepo.schema import FeatureSchema
from mlrepo.stages import validate as validate_stage
from mlrepo.stages.generate import synthesize
from mlrepo.stages.validate import Validation, validate

NUMERIC = [f"num_{i:02d}" for i in range(6)]
CATEGORICAL = ["cat_0", "cat_1"]


def run(frame: pd.DataFrame, **params: Any) -> Validation:
    return validate(frame, "target", ValidateParams(**params), source="customers.csv")


def problem(result: Validation, check: str, column: str | None) -> Problem:
    found = [p for p in result.problems if p.check == check and p.column == column]
    assert len(found) == 1, [p.as_dict() for p in result.problems]
    return found[0]


def assert_fails(result: Validation) -> None:
    assert result.errors
    assert result.frame is None and result.schema is None
    assert result.report()["passed"] is False
    assert result.report()["rows_out"] == 0


def assert_passes(result: Validation) -> None:
    assert result.errors == [], [p.as_dict() for p in result.errors]
    assert result.frame is not None and result.schema is not None
    assert result.report()["passed"] is True


def test_clean_table_passes_and_yields_the_schema(raw_frame: pd.DataFrame) -> None:
    result = run(raw_frame)
    assert_passes(result)
    assert result.problems == []
    schema = result.schema
    assert schema is not None and result.frame is not None
    assert schema.target == "target"
    assert schema.classes == [0, 1]
    assert schema.numeric == NUMERIC
    assert schema.categorical == CATEGORICAL
    for feature in schema.features:
        assert feature.nullable is False
        if feature.kind == "categorical":
            assert feature.categories == ["a", "b", "c", "d", "e"]
        else:
            assert feature.min == raw_frame[feature.name].min()
            assert feature.max == raw_frame[feature.name].max()
    assert result.frame.columns.tolist() == [*NUMERIC, *CATEGORICAL, "target"]
    assert all(result.frame[c].dtype == np.float64 for c in NUMERIC)
    assert all(isinstance(v, str) for v in result.frame["cat_0"])
    report = result.report()
    assert (report["rows_in"], report["rows_out"], report["n_features"]) == (300, 300, 8)
    assert (report["n_errors"], report["n_warnings"]) == (0, 0)
    # The report is what the stage writes: it must serialise (no numpy scalars, no NaN).
    assert json.loads(dumps_json(report)) == report


def test_string_classes_are_sorted(raw_frame: pd.DataFrame) -> None:
    raw_frame["target"] = raw_frame["target"].map({0: "stay", 1: "churn"})
    result = run(raw_frame)
    assert_passes(result)
    assert result.schema is not None and result.schema.classes == ["churn", "stay"]


def test_missing_target_column(raw_frame: pd.DataFrame) -> None:
    result = run(raw_frame.rename(columns={"target": "Target"}))
    assert_fails(result)
    found = problem(result, "target_present", "target")
    assert "did you mean 'Target'?" in found.message
    assert "generate.target" in found.fix


def test_single_class_target(raw_frame: pd.DataFrame) -> None:
    result = run(raw_frame.assign(target=1))
    assert_fails(result)
    found = problem(result, "target_classes", "target")
    assert found.message == "needs at least 2 classes, found 1 (1)"
    assert "two or more classes" in found.fix


def test_class_below_min_class_count(raw_frame: pd.DataFrame) -> None:
    raw_frame.loc[:4, "target"] = 2
    result = run(raw_frame)
    assert_fails(result)
    found = problem(result, "min_class_count", "target")
    assert "fewer than 10 rows: 2: 5" in found.message
    assert "validate.min_class_count" in found.fix
    assert_passes(run(raw_frame, min_class_count=5))


def test_unlabelled_rows(raw_frame: pd.DataFrame) -> None:
    raw_frame["target"] = raw_frame["target"].astype("float64")
    raw_frame.loc[[3, 4], "target"] = np.nan
    found = problem(run(raw_frame), "target_not_null", "target")
    assert found.count == 2


def with_nulls(frame: pd.DataFrame) -> pd.DataFrame:
    frame.loc[[3, 7], "num_01"] = np.nan
    frame.loc[5, "cat_0"] = None
    return frame


def test_nulls_are_an_error_by_default(raw_frame: pd.DataFrame) -> None:
    result = run(with_nulls(raw_frame))
    assert_fails(result)
    numeric = problem(result, "not_nullable", "num_01")
    categorical = problem(result, "not_nullable", "cat_0")
    assert "2 row(s), e.g. rows 4, 8" in numeric.message
    assert "rows 6" in categorical.message
    for found in (numeric, categorical):
        assert "validate.missing: drop" in found.fix
        assert "validate.missing: impute" in found.fix


def test_missing_drop_drops_the_rows_and_counts_them(raw_frame: pd.DataFrame) -> None:
    result = run(with_nulls(raw_frame), missing="drop")
    assert_passes(result)
    assert result.frame is not None and result.schema is not None
    assert result.dropped["missing_rows"] == 3
    assert result.report()["rows_out"] == 297
    assert not result.frame.isna().any().any()
    assert result.frame.index.tolist() == list(range(297))
    assert not any(f.nullable for f in result.schema.features)


def test_missing_impute_keeps_the_rows_and_makes_the_schema_nullable(
    raw_frame: pd.DataFrame,
) -> None:
    result = run(with_nulls(raw_frame), missing="impute")
    assert_passes(result)
    assert result.frame is not None and result.schema is not None
    assert len(result.frame) == 300
    assert result.frame["num_01"].isna().sum() == 2
    assert all(f.nullable for f in result.schema.features)


@pytest.mark.parametrize("missing", ["error", "impute"])
def test_infinities_are_an_error(raw_frame: pd.DataFrame, missing: str) -> None:
    raw_frame.loc[3, "num_01"] = np.inf
    raw_frame.loc[4, "num_02"] = -np.inf
    result = run(raw_frame, missing=missing)
    assert_fails(result)
    assert "rows 4; values inf" in problem(result, "finite", "num_01").message
    assert "rows 5; values -inf" in problem(result, "finite", "num_02").message


def test_text_in_a_numeric_column(raw_frame: pd.DataFrame) -> None:
    raw_frame["num_01"] = raw_frame["num_01"].round(3).astype(str)
    raw_frame.loc[3, "num_01"] = "n/a"
    raw_frame.loc[9, "num_01"] = "12,5"
    result = run(raw_frame)
    assert_fails(result)
    found = problem(result, "numeric_dtype", "num_01")
    assert found.count == 2
    assert "rows 4, 10" in found.message
    assert found.examples == ["'12,5'", "'n/a'"]
    assert "validate.columns.<name>.dtype: categorical" in found.fix


def test_text_in_a_declared_numeric_column(raw_frame: pd.DataFrame) -> None:
    raw_frame["num_01"] = raw_frame["num_01"].astype(object)
    raw_frame.loc[3, "num_01"] = "unknown"
    result = run(raw_frame, columns={"num_01": {"dtype": "numeric"}})
    assert_fails(result)
    found = problem(result, "coerce_dtype", "num_01")
    assert "rows 4; values 'unknown'" in found.message


def with_duplicates(frame: pd.DataFrame) -> pd.DataFrame:
    return pd.concat([frame, frame.iloc[:5]], ignore_index=True)


def test_duplicates_drop_is_the_default_and_is_counted(raw_frame: pd.DataFrame) -> None:
    result = run(with_duplicates(raw_frame))
    assert_passes(result)
    assert result.frame is not None
    assert result.report()["dropped"]["duplicate_rows"] == 5
    assert result.report()["rows_in"] == 305
    assert result.report()["rows_out"] == 300
    assert not result.frame.duplicated().any()


def test_duplicates_error(raw_frame: pd.DataFrame) -> None:
    result = run(with_duplicates(raw_frame), duplicates="error")
    assert_fails(result)
    found = problem(result, "duplicate_rows", None)
    assert found.severity == "error" and found.count == 5
    assert "rows 301, 302, 303, 304, 305" in found.message
    assert "validate.duplicates: drop" in found.fix


def test_duplicates_warn(raw_frame: pd.DataFrame) -> None:
    result = run(with_duplicates(raw_frame), duplicates="warn")
    assert_passes(result)
    assert result.frame is not None and len(result.frame) == 305
    assert problem(result, "duplicate_rows", None).severity == "warning"
    assert result.report()["dropped"]["duplicate_rows"] == 0


def test_constant_column_error(raw_frame: pd.DataFrame) -> None:
    result = run(raw_frame.assign(country="NL"))
    assert_fails(result)
    found = problem(result, "constant_column", "country")
    assert "validate.constant: drop" in found.fix
    assert "validate.drop_columns" in found.fix


def test_constant_column_drop(raw_frame: pd.DataFrame) -> None:
    result = run(raw_frame.assign(country="NL", version=1.0), constant="drop")
    assert_passes(result)
    assert result.frame is not None and result.schema is not None
    assert result.dropped["constant_columns"] == ["country", "version"]
    assert "country" not in result.frame.columns
    assert result.schema.names == [*NUMERIC, *CATEGORICAL]


def test_constant_column_warn(raw_frame: pd.DataFrame) -> None:
    result = run(raw_frame.assign(country="NL"), constant="warn")
    assert_passes(result)
    assert result.schema is not None and "country" in result.schema.names
    assert problem(result, "constant_column", "country").severity == "warning"


def test_copy_of_the_target_is_leakage(raw_frame: pd.DataFrame) -> None:
    result = run(raw_frame.assign(score=raw_frame["target"] * 3.0 + 1))
    assert_fails(result)
    found = problem(result, "leakage", "score")
    assert found.severity == "error"
    assert "validate.leakage: warn" in found.fix
    assert "validate.drop_columns" in found.fix


def test_numeric_feature_that_thresholds_the_target_is_leakage(raw_frame: pd.DataFrame) -> None:
    noise = np.random.default_rng(0).uniform(0, 1, len(raw_frame))
    result = run(raw_frame.assign(days_to_cancel=raw_frame["target"] * 10 + noise))
    assert problem(result, "leakage", "days_to_cancel").severity == "error"


def test_category_that_maps_one_to_one_to_the_label_is_leakage(raw_frame: pd.DataFrame) -> None:
    status = raw_frame["target"].map({0: "active", 1: "cancelled"})
    result = run(raw_frame.assign(status=status))
    assert_fails(result)
    assert problem(result, "leakage", "status").severity == "error"


def test_leakage_warn_lets_the_column_through(raw_frame: pd.DataFrame) -> None:
    frame = raw_frame.assign(
        score=raw_frame["target"] * 3.0, status=raw_frame["target"].map({0: "a", 1: "b"})
    )
    result = run(frame, leakage="warn")
    assert_passes(result)
    assert result.schema is not None and {"score", "status"} <= set(result.schema.names)
    assert problem(result, "leakage", "score").severity == "warning"
    assert problem(result, "leakage", "status").severity == "warning"


def test_strong_but_imperfect_features_are_not_leakage(raw_frame: pd.DataFrame) -> None:
    rng = np.random.default_rng(0)
    flipped = np.where(rng.uniform(size=len(raw_frame)) < 0.05, 1 - raw_frame["target"], 0)
    noisy = (raw_frame["target"] + flipped) % 2
    result = run(raw_frame.assign(score=noisy * 3.0 + rng.uniform(0, 1, len(raw_frame))))
    assert [p for p in result.problems if p.check == "leakage"] == []


def test_outliers_are_a_warning_only(raw_frame: pd.DataFrame) -> None:
    raw_frame.loc[:29, "num_01"] = 1000.0
    result = run(raw_frame)
    assert_passes(result)
    found = problem(result, "outlier_share", "num_01")
    assert found.severity == "warning"
    assert found.message.startswith("10.0% of values")
    assert result.report()["n_warnings"] == 1
    assert_passes(run(raw_frame, max_outlier_share=0.2))
    assert run(raw_frame, max_outlier_share=0.2).warnings == []


def test_class_imbalance_is_a_warning_only() -> None:
    frame = synthesize(
        GenerateParams(
            n_samples=400,
            n_features=6,
            n_informative=4,
            n_redundant=1,
            weights=[0.93, 0.07],
            label_noise=0.0,
            seed=5,
        )
    )
    result = run(frame)
    assert_passes(result)
    found = problem(result, "class_imbalance", "target")
    assert found.severity == "warning"
    assert "threshold 10.0" in found.message
    assert "class_weight: balanced" in found.fix
    assert run(frame, max_imbalance_ratio=50).warnings == []


def test_declared_column_rules(raw_frame: pd.DataFrame) -> None:
    raw_frame["age"] = np.arange(300) % 90 + 1.0
    raw_frame.loc[3, "age"] = -2
    raw_frame.loc[4, "age"] = 200
    raw_frame["plan"] = np.where(np.arange(300) % 2, "basic", "pro")
    raw_frame.loc[7, "plan"] = "gold"
    result = run(
        raw_frame,
        columns={
            "age": {"dtype": "numeric", "min": 0, "max": 120},
            "plan": {"dtype": "categorical", "allowed": ["basic", "pro"]},
        },
    )
    assert_fails(result)
    low = problem(result, "greater_than_or_equal_to", "age")
    high = problem(result, "less_than_or_equal_to", "age")
    unknown = problem(result, "isin", "plan")
    assert "below the declared min 0.0" in low.message and "rows 4" in low.message
    assert "above the declared max 120.0" in high.message and "rows 5" in high.message
    assert "validate.columns" in low.fix and "validate.columns" in high.fix
    assert "'gold'" in unknown.message and "rows 8" in unknown.message
    assert "validate.columns.<name>.allowed" in unknown.fix
    assert len(result.errors) == 3


def test_declared_dtype_overrides_the_inferred_kind(raw_frame: pd.DataFrame) -> None:
    raw_frame["region"] = np.arange(300) % 3
    result = run(raw_frame, columns={"region": {"dtype": "categorical"}})
    assert_passes(result)
    assert result.schema is not None
    region = result.schema.features[result.schema.names.index("region")]
    assert region.kind == "categorical"
    assert region.categories == ["0", "1", "2"]


def test_declared_column_that_is_absent(raw_frame: pd.DataFrame) -> None:
    result = run(raw_frame, columns={"height": {"dtype": "numeric", "min": 0}})
    assert_fails(result)
    found = problem(result, "column_in_dataframe", "height")
    assert "validate.columns" in found.fix


def test_drop_columns(raw_frame: pd.DataFrame) -> None:
    frame = raw_frame.assign(customer_id=[f"c{i:04d}" for i in range(300)])
    result = run(frame, drop_columns=["customer_id", "not_there"])
    assert_passes(result)
    assert result.schema is not None and "customer_id" not in result.schema.names
    assert result.dropped["columns"] == ["customer_id"]
    absent = problem(result, "drop_columns", "not_there")
    assert absent.severity == "warning"


def test_row_numbers_count_data_rows_whatever_the_index(raw_frame: pd.DataFrame) -> None:
    raw_frame.index = raw_frame.index + 1000
    raw_frame.loc[1002, "num_03"] = np.inf
    assert "rows 3" in problem(run(raw_frame), "finite", "num_03").message


def test_several_problems_are_all_reported_in_one_result(raw_frame: pd.DataFrame) -> None:
    frame = raw_frame.assign(country="NL", leak=raw_frame["target"] * 2.0)
    frame.loc[3, "num_01"] = np.nan
    frame.loc[4, "num_02"] = np.inf
    frame["num_03"] = frame["num_03"].round(3).astype(str)
    frame.loc[6, "num_03"] = "n/a"
    frame = pd.concat([frame, frame.iloc[:2]], ignore_index=True)
    result = run(frame, duplicates="error", columns={"tenure": {"dtype": "numeric"}})
    assert_fails(result)
    assert {(p.check, p.column) for p in result.errors} == {
        ("not_nullable", "num_01"),
        ("finite", "num_02"),
        ("numeric_dtype", "num_03"),
        ("duplicate_rows", None),
        ("constant_column", "country"),
        ("leakage", "leak"),
        ("column_in_dataframe", "tenure"),
    }
    assert result.report()["n_errors"] == 7


def bad_raw(path: Path) -> None:
    frame = synthesize(GenerateParams(n_samples=200, n_features=5, n_informative=3, n_redundant=1))
    frame.loc[3, "num_02"] = np.nan
    frame.loc[8, "num_04"] = np.inf
    write_parquet(frame, path)


def cli_paths(tmp_path: Path) -> dict[str, Path]:
    return {
        "data": tmp_path / "data" / "raw.parquet",
        "out": tmp_path / "data" / "validated.parquet",
        "schema": tmp_path / "data" / "schema.json",
        "report": tmp_path / "metrics" / "validation.json",
    }


def cli_args(params: Path, paths: dict[str, Path]) -> list[str]:
    args = ["--params", str(params)]
    for name, path in paths.items():
        args += [f"--{name}", str(path)]
    return args


def test_main_fails_with_one_message_a_report_and_no_outputs(
    tmp_path: Path,
    params_file: Callable[[dict[str, Any]], Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    paths = cli_paths(tmp_path)
    bad_raw(paths["data"])
    params = params_file({"validate": {"min_class_count": 5}})
    code = run_cli(validate_stage.main, cli_args(params, paths))
    err = capsys.readouterr().err
    assert code == 2
    assert "error: validation failed with 2 error(s)" in err
    assert "column 'num_02': missing values" in err
    assert "column 'num_04': infinite values" in err
    assert "validate.missing" in err
    assert f"The full report is in {paths['report']}" in err
    assert "Traceback" not in err
    report = json.loads(paths["report"].read_text())
    assert report["passed"] is False
    assert {e["column"] for e in report["errors"]} == {"num_02", "num_04"}
    assert not paths["out"].exists()
    assert not paths["schema"].exists()


def test_main_names_the_users_file_recorded_by_generate(
    tmp_path: Path,
    params_file: Callable[[dict[str, Any]], Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    paths = cli_paths(tmp_path)
    frame = synthesize(GenerateParams(n_samples=200, n_features=5, n_informative=3, n_redundant=1))
    frame.loc[3, "cat_0"] = None
    frame.attrs = {"source": "data/external/customers.csv"}
    write_parquet(frame, paths["data"])
    code = run_cli(validate_stage.main, cli_args(params_file({}), paths))
    assert code == 2
    assert "data/external/customers.csv: column 'cat_0': missing values" in capsys.readouterr().err


def test_main_writes_the_validated_table_schema_and_report(
    tmp_path: Path, params_file: Callable[[dict[str, Any]], Path]
) -> None:
    paths = cli_paths(tmp_path)
    frame = synthesize(GenerateParams(n_samples=200, n_features=5, n_informative=3, n_redundant=1))
    write_parquet(pd.concat([frame, frame.iloc[:3]], ignore_index=True), paths["data"])
    assert run_cli(validate_stage.main, cli_args(params_file({}), paths)) == 0
    expected = validate(frame, "target", ValidateParams())
    schema = FeatureSchema.model_validate_json(paths["schema"].read_text())
    assert schema == expected.schema
    validated = read_table(paths["out"])
    assert len(validated) == 200
    report = json.loads(paths["report"].read_text())
    assert report["passed"] is True
    assert report["dropped"]["duplicate_rows"] == 3
    assert list(report) == sorted(report), "JSON keys are sorted so the file is byte-stable"


def test_outlier_share_is_sampled_above_sample_rows_and_says_so(raw_frame: pd.DataFrame) -> None:
    raw_frame.loc[:29, "num_02"] = 1e6  # 10% of the rows: an outlier_share warning
    full = run(raw_frame)
    assert "sampled" not in full.report()
    assert "sample" not in problem(full, "outlier_share", "num_02").message

    sampled = run(raw_frame, sample_rows=200, seed=3)
    assert sampled.report()["sampled"] == {"outlier_share": {"rows": 200, "of": 300, "seed": 3}}
    found = problem(sampled, "outlier_share", "num_02")
    assert "estimated on a seeded sample of 200 rows" in found.message
    assert found.severity == "warning"
    again = run(raw_frame, sample_rows=200, seed=3)
    assert again.report() == sampled.report()
    # Exact rules never sample: duplicates and nulls are counted on every row.
    raw_frame.loc[299, "num_01"] = np.nan
    assert problem(run(raw_frame, sample_rows=10), "not_nullable", "num_01").count == 1


@pytest.mark.parametrize("value", [0, -5, "many"])
def test_bad_sample_rows_is_rejected_by_name(value: object) -> None:
    from mlrepo.errors import ParamsError
    from mlrepo.params import parse_params

    with pytest.raises(ParamsError, match=r"validate\.sample_rows"):
        parse_params({"validate": {"sample_rows": value}})


def test_apply_drops_what_the_rules_say_and_keeps_the_rest() -> None:
    frame = pd.DataFrame({"a": [1, 2, 3], "b": [4, 5, 6], "target": [0, 1, 0]}, index=[5, 6, 7])
    result = Validation(source="t", rows_in=3)
    result.dropped |= {"duplicate_rows": 0, "constant_columns": []}
    warning = Problem(check="outlier_share", column="a", severity="warning", message="m", fix="f")
    kept = result.apply(
        frame,
        [
            Problem(
                check="duplicate_rows",
                message="m",
                fix="f",
                severity="drop_rows",
                count=1,
                rows=np.array([False, True, False]),
            ),
            warning,
            Problem(
                check="constant_column", column="b", message="m", fix="f", severity="drop_column"
            ),
        ],
    )
    assert kept.index.tolist() == [5, 7] and kept.columns.tolist() == ["a", "target"]
    assert result.dropped == {"duplicate_rows": 1, "constant_columns": ["b"]}
    assert result.problems == [warning]
