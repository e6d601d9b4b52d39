"""check_frame: the one "does this table fit the schema" used by validate, predict and serve."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlrepo.problems import Problem
from mlrepo.schema import Feature, FeatureSchema, check_frame, coerce, infer_kind

FEATURES = [
    Feature(name="age", kind="numeric", min=0, max=120),
    Feature(name="income", kind="numeric"),
    Feature(name="plan", kind="categorical", categories=["basic", "pro"]),
]
BOUNDS = {"age": (0, 120)}  # declared, as validate.columns would


def good_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "age": [23, 45, 31, 52],
            "income": [1000.0, 2500.5, 1800.0, 3000.0],
            "plan": ["basic", "pro", "basic", "pro"],
        }
    )


def only(problems: list[Problem], check: str, column: str) -> Problem:
    found = [p for p in problems if p.check == check and p.column == column]
    assert len(found) == 1, problems
    return found[0]


def test_a_frame_that_fits_has_no_problems() -> None:
    assert check_frame(good_frame(), FEATURES, bounds=BOUNDS) == []


def test_missing_column() -> None:
    problems = check_frame(good_frame().drop(columns="income"), FEATURES, bounds=BOUNDS)
    problem = only(problems, "column_in_dataframe", "income")
    assert problem.severity == "error"
    assert "missing" in problem.message
    assert len(problems) == 1


def test_extra_column_is_rejected_when_strict() -> None:
    frame = good_frame().assign(customer_id=[1, 2, 3, 4])
    problem = only(check_frame(frame, FEATURES, bounds=BOUNDS), "column_in_schema", "customer_id")
    assert "unexpected column" in problem.message
    assert check_frame(frame, FEATURES, bounds=BOUNDS, strict=False) == []


def test_text_in_a_numeric_column() -> None:
    frame = good_frame().astype({"income": object})
    frame.loc[2, "income"] = "n/a"
    problem = only(check_frame(frame, FEATURES, bounds=BOUNDS), "coerce_dtype", "income")
    assert problem.count == 1
    assert "not numeric" in problem.message
    assert "rows 3" in problem.message
    assert problem.examples == ["'n/a'"]


def test_numbers_written_as_text_are_numbers() -> None:
    frame = good_frame().astype({"age": str})
    assert check_frame(frame, FEATURES, bounds=BOUNDS) == []


@pytest.mark.parametrize("missing", [None, np.nan])
def test_nulls_when_not_nullable(missing: object) -> None:
    frame = good_frame().astype({"income": object, "plan": object})
    frame.loc[1, "income"] = missing
    frame.loc[3, "plan"] = missing
    problems = check_frame(frame, FEATURES, bounds=BOUNDS)
    assert "rows 2" in only(problems, "not_nullable", "income").message
    assert "rows 4" in only(problems, "not_nullable", "plan").message


def test_nulls_pass_when_nullable() -> None:
    nullable = [f.model_copy(update={"nullable": True}) for f in FEATURES]
    frame = good_frame().astype({"plan": object})
    frame.loc[1, "income"] = np.nan
    frame.loc[3, "plan"] = None
    assert check_frame(frame, nullable, bounds=BOUNDS) == []


@pytest.mark.parametrize("value", [np.inf, -np.inf])
def test_infinite_values(value: float) -> None:
    frame = good_frame()
    frame.loc[0, "income"] = value
    problem = only(check_frame(frame, FEATURES, bounds=BOUNDS), "finite", "income")
    assert "infinite" in problem.message
    assert "rows 1" in problem.message
    assert problem.fix == "replace inf/-inf with finite numbers"


def test_below_min_and_above_max() -> None:
    frame = good_frame()
    frame.loc[0, "age"] = -3
    frame.loc[2, "age"] = 130
    problems = check_frame(frame, FEATURES, bounds=BOUNDS)
    low = only(problems, "greater_than_or_equal_to", "age")
    high = only(problems, "less_than_or_equal_to", "age")
    assert "below the declared min 0.0" in low.message and "rows 1" in low.message
    assert "above the declared max 120.0" in high.message and "rows 3" in high.message
    assert low.examples == ["-3.0"] and high.examples == ["130.0"]


def test_bounds_are_inclusive() -> None:
    frame = good_frame()
    frame.loc[0, "age"] = 0
    frame.loc[1, "age"] = 120
    assert check_frame(frame, FEATURES, bounds=BOUNDS) == []


def test_unknown_category() -> None:
    frame = good_frame()
    frame.loc[1, "plan"] = "gold"
    problem = only(check_frame(frame, FEATURES, bounds=BOUNDS), "isin", "plan")
    assert "unknown category (known: basic, pro)" in problem.message
    assert "'gold'" in problem.message and "rows 2" in problem.message
    assert check_frame(frame, FEATURES, bounds=BOUNDS, check_categories=False) == []


def test_every_problem_is_reported_in_one_call() -> None:
    frame = good_frame().astype({"income": object}).assign(extra=1)
    frame.loc[0, "age"] = -1
    frame.loc[1, "income"] = "lots"
    frame.loc[2, "income"] = np.inf
    frame.loc[3, "plan"] = "gold"
    features = [*FEATURES, Feature(name="tenure", kind="numeric")]
    problems = check_frame(frame, features, bounds=BOUNDS)
    assert {(p.column, p.check) for p in problems} == {
        ("age", "greater_than_or_equal_to"),
        ("extra", "column_in_schema"),
        ("income", "coerce_dtype"),
        ("income", "finite"),
        ("plan", "isin"),
        ("tenure", "column_in_dataframe"),
    }
    assert all(p.severity == "error" for p in problems)
    # Sorted by column so the report is stable.
    assert [p.column for p in problems] == sorted(p.column or "" for p in problems)


def test_text_is_not_also_reported_as_out_of_range() -> None:
    frame = good_frame().astype({"age": object})
    frame.loc[1, "age"] = "old"
    problems = check_frame(frame, FEATURES, bounds=BOUNDS)
    assert [(p.column, p.check) for p in problems] == [("age", "coerce_dtype")]


def test_row_numbers_count_data_rows_from_one() -> None:
    frame = good_frame()
    frame.loc[3, "age"] = 500
    assert (
        "rows 4"
        in only(check_frame(frame, FEATURES, bounds=BOUNDS), "less_than_or_equal_to", "age").message
    )


@pytest.mark.parametrize(
    "index",
    [
        pytest.param([10, 11, 12, 13], id="offset"),
        pytest.param(["a", "b", "c", "d"], id="labels"),
        pytest.param([0, 0, 0, 0], id="repeated"),
    ],
)
def test_row_numbers_do_not_depend_on_the_index(index: list[object]) -> None:
    # A caller (batch prediction, the service) may pass a slice or a labelled frame: messages
    # still count data rows from 1, and every bad value is found.
    frame = good_frame().astype({"income": object})
    frame.loc[1, "income"] = "lots"
    frame.loc[2, "age"] = -5
    frame.loc[3, "plan"] = "gold"
    frame.index = index
    problems = check_frame(frame, FEATURES, bounds=BOUNDS)
    assert "rows 2" in only(problems, "coerce_dtype", "income").message
    assert "rows 3" in only(problems, "greater_than_or_equal_to", "age").message
    assert "rows 4" in only(problems, "isin", "plan").message
    assert len(problems) == 3


def test_many_failures_show_a_few_examples_and_the_full_count() -> None:
    frame = pd.DataFrame({"age": [-1.0] * 12, "income": [1.0] * 12, "plan": ["basic"] * 12})
    problem = only(check_frame(frame, FEATURES, bounds=BOUNDS), "greater_than_or_equal_to", "age")
    assert problem.count == 12
    assert "12 row(s), e.g. rows 1, 2, 3, 4, 5;" in problem.message


def test_fixes_can_be_overridden_per_check() -> None:
    frame = good_frame()
    frame.loc[0, "income"] = np.nan
    problems = check_frame(
        frame, FEATURES, bounds=BOUNDS, fixes={"not_nullable": "set validate.missing"}
    )
    assert only(problems, "not_nullable", "income").fix == "set validate.missing"


def test_render_names_source_column_rule_and_fix() -> None:
    frame = good_frame()
    frame.loc[1, "plan"] = "gold"
    problem = only(check_frame(frame, FEATURES, bounds=BOUNDS), "isin", "plan")
    text = problem.render("customers.csv")
    assert text.startswith("customers.csv: column 'plan': unknown category")
    assert "[isin] Fix: use one of the known categories" in text


def test_categories_are_compared_as_strings() -> None:
    features = [Feature(name="code", kind="categorical", categories=["1", "2"])]
    # 1.0 read from one file and 1 from another are the same category.
    assert check_frame(pd.DataFrame({"code": [1.0, 2, "1"]}), features) == []


def test_coerce_gives_float64_numbers_and_str_categories() -> None:
    schema = FeatureSchema(target="target", classes=[0, 1], features=FEATURES)
    frame = pd.DataFrame(
        {
            "plan": ["basic", None, "pro"],
            "age": ["23", "45", "31"],
            "income": [1, 2, 3],
            "other": [9, 9, 9],
        },
        index=[5, 6, 7],
    )
    out = coerce(frame, schema)
    assert out.columns.tolist() == ["age", "income", "plan"]
    assert out.dtypes.to_dict() == {
        "age": np.dtype("float64"),
        "income": np.dtype("float64"),
        "plan": np.dtype(object),
    }
    assert out["age"].tolist() == [23.0, 45.0, 31.0]
    assert out.index.tolist() == [5, 6, 7]
    assert out.loc[5, "plan"] == "basic" and type(out.loc[5, "plan"]) is str
    assert pd.isna(out.loc[6, "plan"])


def test_coerce_turns_integral_floats_and_booleans_into_plain_category_strings() -> None:
    schema = FeatureSchema(
        target="t",
        classes=[0, 1],
        features=[
            Feature(name="code", kind="categorical"),
            Feature(name="flag", kind="categorical"),
        ],
    )
    out = coerce(pd.DataFrame({"code": [1.0, 2.5], "flag": [True, False]}), schema)
    assert out["code"].tolist() == ["1", "2.5"]
    assert out["flag"].tolist() == ["True", "False"]


def test_coerce_strict_and_lenient() -> None:
    schema = FeatureSchema(target="t", classes=[0, 1], features=FEATURES[1:2])
    frame = pd.DataFrame({"income": ["1", "lots"]})
    with pytest.raises(ValueError):
        coerce(frame, schema)
    assert coerce(frame, schema, lenient=True)["income"].isna().tolist() == [False, True]


@pytest.mark.parametrize(
    ("values", "kind"),
    [
        ([1, 2], "numeric"),
        ([1.5, 2.5], "numeric"),
        (["a", "b"], "categorical"),
        ([True, False], "categorical"),
        (pd.Categorical(["x", "y"]), "categorical"),
    ],
)
def test_infer_kind(values: object, kind: str) -> None:
    assert infer_kind(pd.Series(values)) == kind


def test_schema_lists_names_by_kind() -> None:
    schema = FeatureSchema(target="t", classes=["no", "yes"], features=FEATURES)
    assert schema.names == ["age", "income", "plan"]
    assert schema.numeric == ["age", "income"]
    assert schema.categorical == ["plan"]
    # The schema is written to data/schema.json and read back by every consumer.
    assert FeatureSchema.model_validate_json(schema.model_dump_json()) == schema
