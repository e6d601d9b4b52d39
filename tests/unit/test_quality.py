"""The dataset-level rules of validate, called directly on small hand-made tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlrepo import quality, scans
from mlrepo.params import ValidateParams
from mlrepo.problems import Problem


def test_check_target_accepts_a_good_target() -> None:
    frame = pd.DataFrame({"y": ["a"] * 10 + ["b"] * 10})
    assert quality.check_target(frame, "y", ValidateParams(min_class_count=10)) == []


def test_check_target_lists_every_rare_class() -> None:
    frame = pd.DataFrame({"y": ["a"] * 20 + ["b"] * 3 + ["c"] * 2})
    (problem,) = quality.check_target(frame, "y", ValidateParams(min_class_count=5))
    assert problem.check == "min_class_count"
    assert "'b': 3" in problem.message and "'c': 2" in problem.message
    assert problem.count == 2


def test_check_target_with_no_labels_at_all() -> None:
    frame = pd.DataFrame({"y": [np.nan, np.nan]})
    checks = {p.check for p in quality.check_target(frame, "y", ValidateParams(min_class_count=1))}
    assert checks == {"target_not_null", "target_classes"}


def test_numeric_looking_needs_mostly_numbers() -> None:
    mostly = pd.Series([str(i) for i in range(19)] + ["?"], dtype=object)
    half = pd.Series(["1", "2", "x", "y"], dtype=object)
    frame = pd.DataFrame({"mostly": mostly, "half": half.reindex(range(20))})
    problems = quality.numeric_looking(frame, ["mostly", "half"])
    assert [(p.column, p.count, p.examples) for p in problems] == [("mostly", 1, ["'?'"])]
    assert "rows 20" in problems[0].message


def test_constant_columns_ignore_nulls() -> None:
    frame = pd.DataFrame({"k": [1.0, np.nan, 1.0], "v": [1, 2, 3], "e": [np.nan] * 3})
    problems = quality.constant_columns(frame, ["k", "v", "e"], ValidateParams())
    assert [p.column for p in problems] == ["k", "e"]


def test_duplicate_rows_keep_the_first() -> None:
    frame = pd.DataFrame({"x": [1, 2, 1, 1], "y": [0, 1, 0, 1]})
    assert scans.repeated_rows(frame).tolist() == [False, False, True, False]


def leaking(frame: pd.DataFrame, columns: list[str]) -> list[str | None]:
    return [p.column for p in quality.leaking_columns(frame, columns, "y", ValidateParams())]


@pytest.mark.parametrize(
    ("values", "leaks"),
    [
        pytest.param([0.1, 0.2, 0.3, 5.0, 5.1, 5.2], True, id="threshold-separates"),
        pytest.param([0.1, 5.0, 0.3, 0.2, 5.1, 5.2], False, id="interleaved"),
        pytest.param(["x", "x", "x", "z", "z", "z"], True, id="category-per-class"),
        pytest.param(["u1", "u2", "u3", "u4", "u5", "u6"], False, id="identifier-not-judged"),
    ],
)
def test_leaking_columns(values: list[object], leaks: bool) -> None:
    frame = pd.DataFrame({"f": values, "y": [0, 0, 0, 1, 1, 1]})
    assert leaking(frame, ["f"]) == (["f"] if leaks else [])


def test_leaking_columns_multiclass_runs() -> None:
    # Three classes in three runs along the sorted values: separable by two thresholds.
    frame = pd.DataFrame({"f": [1, 2, 3, 4, 5, 6], "y": ["a", "a", "b", "b", "c", "c"]})
    assert leaking(frame, ["f"]) == ["f"]
    frame["y"] = ["a", "a", "b", "b", "a", "c"]
    assert leaking(frame, ["f"]) == []


def test_outlier_share_uses_median_and_mad() -> None:
    values = np.r_[np.linspace(-1, 1, 90), np.full(10, 100.0)]
    frame = pd.DataFrame({"x": values, "flat": 1.0})
    shares = scans.outlier_share(frame, ["x", "flat"], z=5.0)
    assert shares == {"x": pytest.approx(0.10)}  # a zero MAD column is skipped


def test_imbalance_ratio() -> None:
    frame = pd.DataFrame({"y": [0] * 30 + [1] * 3})
    assert scans.imbalance_ratio(frame["y"].value_counts()) == 10.0
    assert scans.imbalance_ratio(frame.head(5)["y"].value_counts()) == 1.0


def test_distribution_problems_are_never_errors() -> None:
    values = np.r_[np.linspace(-1, 1, 80), np.full(20, 100.0)]
    frame = pd.DataFrame({"x": values, "y": [0] * 98 + [1] * 2})
    params = ValidateParams()
    problems = [
        *quality.outliers(frame, ["x"], params),
        *quality.class_imbalance(frame, "y", params),
    ]
    assert {p.check for p in problems} == {"outlier_share", "class_imbalance"}
    assert {p.severity for p in problems} == {"warning"}


def test_identifier_like_text_columns_are_a_warning() -> None:
    frame = pd.DataFrame({"customer": [f"c{i}" for i in range(50)], "plan": ["a", "b"] * 25})
    problems = quality.identifier_like(frame, ["customer", "plan"])
    assert [(p.column, p.severity) for p in problems] == [("customer", "warning")]
    assert "validate.drop_columns" in problems[0].fix


def test_duplicate_rows_agree_with_pandas_on_awkward_values() -> None:
    # NaN with another payload and -0.0 are the same values to DataFrame.duplicated; so are
    # 1 and 1.0 in an object column, and None and NaN.
    other_nan = np.frombuffer(np.uint64(0x7FF8000000000001).tobytes(), dtype=np.float64)[0]
    frame = pd.DataFrame(
        {
            "x": [np.nan, other_nan, 0.0, -0.0, 1.0, 1.0, 2.0],
            "o": [1, 1.0, "a", "a", None, np.nan, "b"],
            "y": [0, 0, 1, 1, 0, 0, 1],
        }
    )
    expected = frame.duplicated(keep="first").tolist()
    assert expected == [False, True, False, True, False, True, False]
    assert scans.repeated_rows(frame).tolist() == expected


def test_duplicate_rows_on_a_bigger_table_match_pandas() -> None:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "a": rng.integers(0, 3, 5000).astype(float),
            "b": rng.choice(["u", "v"], 5000),
            "y": rng.integers(0, 2, 5000),
        }
    )
    frame.index = frame.index * 2  # masks follow the frame's own index
    mask = scans.repeated_rows(frame)
    assert mask.index.equals(frame.index)
    assert mask.tolist() == frame.duplicated(keep="first").tolist()


def test_leaking_columns_need_every_class_in_its_own_range() -> None:
    frame = pd.DataFrame(
        {
            "touching": [1.0, 2.0, 2.0, 3.0],  # 2.0 is in both classes: not separable
            "gap": [1.0, 2.0, 2.5, 3.0],
            "one_class_missing": [1.0, 2.0, np.nan, np.nan],
            "y": [0, 0, 1, 1],
        }
    )
    columns = ["touching", "gap", "one_class_missing"]
    assert leaking(frame, columns) == ["gap"]


def test_sample_positions_are_seeded_sorted_and_only_for_big_tables() -> None:
    assert scans.sample_positions(100, 100, seed=1) is None
    assert scans.sample_positions(100, None, seed=1) is None
    first = scans.sample_positions(1000, 100, seed=1)
    assert first is not None and len(first) == 100 == len(set(first.tolist()))
    assert (np.diff(first) > 0).all()
    same, other = scans.sample_positions(1000, 100, 1), scans.sample_positions(1000, 100, 2)
    assert same is not None and other is not None
    assert same.tolist() == first.tolist() and other.tolist() != first.tolist()


def test_outlier_share_on_sampled_rows() -> None:
    values = np.r_[np.linspace(-1, 1, 90), np.full(10, 100.0)]
    frame = pd.DataFrame({"x": values})
    assert scans.outlier_share(frame, ["x"], 5.0, rows=np.arange(90)) == {"x": 0.0}
    every_other = scans.outlier_share(frame, ["x"], 5.0, rows=np.arange(0, 100, 4))
    assert every_other == {"x": pytest.approx(2 / 25)}  # rows 92 and 96 are outliers


@pytest.mark.parametrize(
    ("policy", "severity"),
    [("drop", "drop_rows"), ("warn", "warning"), ("error", "error")],
)
def test_duplicate_rows_severity_follows_validate_duplicates(policy: str, severity: str) -> None:
    frame = pd.DataFrame({"x": [1, 2, 1, 1], "y": [0, 1, 0, 1]}, index=[10, 11, 12, 13])
    (found,) = quality.duplicate_rows(frame, ValidateParams(duplicates=policy))
    assert (found.check, found.severity, found.count) == ("duplicate_rows", severity, 1)
    assert found.rows is not None and found.rows.tolist() == [False, False, True, False]
    assert "e.g. rows 13;" in found.message  # the frame's own row numbers, counted from 1
    assert quality.duplicate_rows(frame.head(2), ValidateParams(duplicates=policy)) == []


@pytest.mark.parametrize(
    ("policy", "severity"),
    [("drop", "drop_column"), ("warn", "warning"), ("error", "error")],
)
def test_constant_columns_severity_follows_validate_constant(policy: str, severity: str) -> None:
    frame = pd.DataFrame({"k": [1.0, 1.0, 1.0], "v": [1, 2, 3]})
    problems = quality.constant_columns(frame, ["k", "v"], ValidateParams(constant=policy))
    assert [(p.check, p.column, p.severity) for p in problems] == [
        ("constant_column", "k", severity)
    ]
    assert "validate.constant: drop" in problems[0].fix


@pytest.mark.parametrize(("policy", "severity"), [("warn", "warning"), ("error", "error")])
def test_leaking_columns_severity_follows_validate_leakage(policy: str, severity: str) -> None:
    frame = pd.DataFrame({"f": [0.1, 0.2, 0.3, 5.0, 5.1, 5.2], "y": [0, 0, 0, 1, 1, 1]})
    (found,) = quality.leaking_columns(frame, ["f"], "y", ValidateParams(leakage=policy))
    assert (found.check, found.column, found.severity) == ("leakage", "f", severity)
    assert "validate.leakage: warn" in found.fix


def test_missing_rows_are_dropped_only_under_missing_drop() -> None:
    frame = pd.DataFrame({"a": [1.0, np.nan, 3.0], "b": ["x", "y", None], "y": [0, 1, 0]})
    (found,) = quality.missing_rows(frame, ["a", "b"], ValidateParams(missing="drop"))
    assert (found.severity, found.count) == ("drop_rows", 2)
    assert found.rows is not None and found.rows.tolist() == [False, True, True]
    assert quality.missing_rows(frame, ["a"], ValidateParams(missing="drop"))[0].count == 1
    assert quality.missing_rows(frame.head(1), ["a", "b"], ValidateParams(missing="drop")) == []
    for policy in ("error", "impute"):  # the column rules report or allow the nulls
        assert quality.missing_rows(frame, ["a", "b"], ValidateParams(missing=policy)) == []


def test_listed_columns_drop_the_present_and_warn_about_the_absent() -> None:
    frame = pd.DataFrame({"id": [1, 2], "b": [3, 4], "x": [5, 6]})
    params = ValidateParams(drop_columns=["x", "gone", "id"])
    found = [(p.column, p.severity) for p in quality.listed_columns(frame, params)]
    assert found == [("gone", "warning"), ("id", "drop_column"), ("x", "drop_column")]


def test_a_drop_problem_names_what_to_drop() -> None:
    with pytest.raises(ValueError, match="needs the rows"):
        Problem(check="duplicate_rows", message="m", fix="f", severity="drop_rows")
    with pytest.raises(ValueError, match="needs the column"):
        Problem(check="constant_column", message="m", fix="f", severity="drop_column")
