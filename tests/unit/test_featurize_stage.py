"""featurize: a stratified, seeded split and preprocessing fitted on the train part only."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import pandas.testing as pdt
import pytest
from sklearn.impute import SimpleImputer
from sklearn.preprocessing import RobustScaler, StandardScaler

from mlrepo.errors import DataError, run_cli
from mlrepo.io import read_table, write_json, write_parquet
from mlrepo.params import FeaturizeParams, GenerateParams, ValidateParams
from mlrepo.schema import FeatureSchema
from mlrepo.stages import featurize as featurize_stage
from mlrepo.stages.featurize import build_preprocessor, featurize
from mlrepo.stages.generate import synthesize
from mlrepo.stages.validate import validate


def step(split: featurize_stage.Split, part: str, name: str) -> Any:
    return split.preprocessor.named_transformers_[part].named_steps[name]


def test_split_sizes_and_no_row_in_both_parts(
    validated_frame: pd.DataFrame, schema: FeatureSchema
) -> None:
    validated_frame["row"] = np.arange(len(validated_frame))
    split = featurize(validated_frame, schema, FeaturizeParams(test_size=0.25))
    assert (len(split.train), len(split.test)) == (225, 75)
    assert set(split.train["row"]).isdisjoint(split.test["row"])
    assert split.train.index.tolist() == list(range(225))
    assert split.test.columns.tolist() == validated_frame.columns.tolist()


def test_stratified_split_preserves_class_proportions(
    small_generate: Callable[..., GenerateParams],
) -> None:
    raw = synthesize(small_generate(n_samples=400, n_classes=3, weights=[0.6, 0.3, 0.1]))
    result = validate(raw, "target", ValidateParams())
    assert result.frame is not None and result.schema is not None
    split = featurize(result.frame, result.schema, FeaturizeParams(test_size=0.25))
    whole = result.frame["target"].value_counts(normalize=True).sort_index()
    for part in (split.train, split.test):
        shares = part["target"].value_counts(normalize=True).sort_index()
        # Stratification keeps every class within one row of its overall share.
        assert np.abs(shares - whole).max() <= 1.0 / len(part) + 1e-9


def test_split_is_seeded(validated_frame: pd.DataFrame, schema: FeatureSchema) -> None:
    first = featurize(validated_frame, schema, FeaturizeParams(seed=5))
    second = featurize(validated_frame, schema, FeaturizeParams(seed=5))
    other = featurize(validated_frame, schema, FeaturizeParams(seed=6))
    pdt.assert_frame_equal(first.train, second.train)
    pdt.assert_frame_equal(first.test, second.test)
    assert not first.test.equals(other.test)


def test_preprocessor_is_fitted_on_the_train_part_only(
    validated_frame: pd.DataFrame, schema: FeatureSchema
) -> None:
    split = featurize(validated_frame, schema, FeaturizeParams(test_size=0.3))
    scaler = step(split, "numeric", "scale")
    assert isinstance(scaler, StandardScaler)
    train_mean = split.train[schema.numeric].mean().to_numpy()
    whole_mean = validated_frame[schema.numeric].mean().to_numpy()
    np.testing.assert_allclose(scaler.mean_, train_mean)
    assert not np.allclose(scaler.mean_, whole_mean)
    np.testing.assert_allclose(scaler.scale_, split.train[schema.numeric].std(ddof=0))


def test_transform_gives_scaled_numbers_and_one_hot_categories(
    split: featurize_stage.Split, schema: FeatureSchema
) -> None:
    out = split.preprocessor.transform(split.train[schema.names])
    names = split.preprocessor.get_feature_names_out().tolist()
    assert names[:6] == schema.numeric
    assert names[6:] == [f"cat_{i}_{c}" for i in range(2) for c in "abcde"]
    np.testing.assert_allclose(out[:, :6].mean(axis=0), 0, atol=1e-9)
    one_hot = out[:, 6:]
    assert set(np.unique(one_hot)) == {0.0, 1.0}
    assert (one_hot.sum(axis=1) == 2).all()  # one category per categorical column


def test_unknown_category_at_transform_time_does_not_fail(
    split: featurize_stage.Split, schema: FeatureSchema
) -> None:
    rows = split.test[schema.names].head(2).copy()
    rows.loc[0, "cat_0"] = "never-seen"
    out = split.preprocessor.transform(rows)
    names = split.preprocessor.get_feature_names_out().tolist()
    cat_0 = [i for i, n in enumerate(names) if n.startswith("cat_0_")]
    assert out[0, cat_0].tolist() == [0.0] * 5
    assert out[1, cat_0].sum() == 1.0


def test_no_imputer_unless_the_schema_is_nullable(
    split: featurize_stage.Split, schema: FeatureSchema
) -> None:
    for part in ("numeric", "categorical"):
        assert "impute" not in split.preprocessor.named_transformers_[part].named_steps
    rows = split.test[schema.names].head(3).copy()
    rows.loc[0, "num_00"] = np.nan
    # Without an imputer the model's NaN handling is not silently decided here.
    assert np.isnan(split.preprocessor.transform(rows)[0, 0])


def test_imputer_when_the_schema_is_nullable(raw_frame: pd.DataFrame) -> None:
    raw_frame.loc[[3, 7, 50], "num_01"] = np.nan
    raw_frame.loc[[5, 9], "cat_0"] = None
    result = validate(raw_frame, "target", ValidateParams(missing="impute"))
    assert result.frame is not None and result.schema is not None
    split = featurize(result.frame, result.schema, FeaturizeParams())
    numeric = step(split, "numeric", "impute")
    categorical = step(split, "categorical", "impute")
    assert isinstance(numeric, SimpleImputer) and numeric.strategy == "median"
    assert isinstance(categorical, SimpleImputer) and categorical.strategy == "most_frequent"
    num_01 = result.schema.numeric.index("num_01")
    assert numeric.statistics_[num_01] == split.train["num_01"].median()
    assert not np.isnan(split.preprocessor.transform(result.frame[result.schema.names])).any()


@pytest.mark.parametrize(
    ("scaler", "kind"), [("standard", StandardScaler), ("robust", RobustScaler), ("none", None)]
)
def test_scaler_choice(
    validated_frame: pd.DataFrame, schema: FeatureSchema, scaler: str, kind: type | None
) -> None:
    split = featurize(validated_frame, schema, FeaturizeParams(scaler=scaler))
    fitted = step(split, "numeric", "scale")
    if kind is None:
        assert fitted == "passthrough"
        out = split.preprocessor.transform(split.test[schema.names])
        np.testing.assert_allclose(out[:, :6], split.test[schema.numeric].to_numpy())
    else:
        assert isinstance(fitted, kind)


def test_only_the_kinds_present_get_a_transformer(schema: FeatureSchema) -> None:
    numeric_only = FeatureSchema(
        target=schema.target,
        classes=schema.classes,
        features=[f for f in schema.features if f.kind == "numeric"],
    )
    names = [name for name, _, _ in build_preprocessor(numeric_only, "standard").transformers]
    assert names == ["numeric"]


@pytest.mark.parametrize("test_size", [0.003, 0.995])
def test_too_small_a_part_is_a_data_error(
    validated_frame: pd.DataFrame, schema: FeatureSchema, test_size: float
) -> None:
    with pytest.raises(DataError) as caught:
        featurize(validated_frame, schema, FeaturizeParams(test_size=test_size))
    message = str(caught.value)
    assert f"featurize.test_size={test_size}" in message
    assert "Fix:" in message


def three_class_table(small_generate: Callable[..., GenerateParams]) -> tuple[Any, Any]:
    raw = synthesize(small_generate(n_samples=100, n_classes=3))
    result = validate(raw, "target", ValidateParams(min_class_count=1))
    assert result.frame is not None and result.schema is not None
    return result.frame, result.schema


def test_train_part_too_small_for_every_class_is_a_data_error(
    small_generate: Callable[..., GenerateParams],
) -> None:
    # 100 rows at 0.971: scikit-learn puts ceil(97.1) = 98 rows in test, 2 in train, for 3
    # classes; that must be the user's error message, not scikit-learn's traceback.
    frame, schema = three_class_table(small_generate)
    with pytest.raises(DataError, match=r"featurize\.test_size=0\.971"):
        featurize(frame, schema, FeaturizeParams(test_size=0.971))


def test_a_class_with_a_single_row_is_a_data_error(
    small_generate: Callable[..., GenerateParams],
) -> None:
    # validate.min_class_count: 1 lets a one-row class through; a stratified split needs two.
    frame, schema = three_class_table(small_generate)
    frame.loc[0, "target"] = 7
    schema = schema.model_copy(update={"classes": [*schema.classes, 7]})
    with pytest.raises(DataError) as caught:
        featurize(frame, schema, FeaturizeParams())
    message = str(caught.value)
    assert "7" in message
    assert "validate.min_class_count" in message


def test_main_writes_the_split_and_the_fitted_preprocessor(
    tmp_path: Path,
    params_file: Callable[[dict[str, Any]], Path],
    validated_frame: pd.DataFrame,
    schema: FeatureSchema,
) -> None:
    data, schema_path = tmp_path / "validated.parquet", tmp_path / "schema.json"
    write_parquet(validated_frame, data)
    write_json(schema.model_dump(), schema_path)
    outs = {
        "train": tmp_path / "split" / "train.parquet",
        "test": tmp_path / "split" / "test.parquet",
        "preprocessor": tmp_path / "models" / "preprocessor.joblib",
    }
    args = ["--params", str(params_file({"featurize": {"test_size": 0.2, "seed": 9}}))]
    args += ["--data", str(data), "--schema", str(schema_path)]
    for name, path in outs.items():
        args += [f"--{name}", str(path)]
    assert run_cli(featurize_stage.main, args) == 0
    expected = featurize(validated_frame, schema, FeaturizeParams(test_size=0.2, seed=9))
    train = read_table(outs["train"])
    pdt.assert_frame_equal(train, expected.train, check_dtype=False)
    assert len(read_table(outs["test"])) == 60
    preprocessor = joblib.load(outs["preprocessor"])
    np.testing.assert_allclose(
        preprocessor.transform(train[schema.names]),
        expected.preprocessor.transform(expected.train[schema.names]),
    )
