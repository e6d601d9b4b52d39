"""generate: a seeded synthetic table, or the user's own CSV/Parquet file."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pandas.testing as pdt
import pytest

from mlrepo.errors import DataError, run_cli
from mlrepo.io import read_table
from mlrepo.params import GenerateParams
from mlrepo.stages import generate as generate_stage
from mlrepo.stages.generate import CATEGORIES, generate, load_source, synthesize

MakeParams = Callable[..., GenerateParams]


def test_same_seed_gives_the_same_table(small_generate: MakeParams) -> None:
    pdt.assert_frame_equal(synthesize(small_generate(seed=11)), synthesize(small_generate(seed=11)))


def test_different_seeds_give_different_tables(small_generate: MakeParams) -> None:
    first, second = synthesize(small_generate(seed=1)), synthesize(small_generate(seed=2))
    assert first.shape == second.shape
    assert not first.equals(second)
    assert not first["num_00"].equals(second["num_00"])


@pytest.mark.parametrize(("n_features", "n_categorical"), [(6, 0), (6, 2), (9, 4)])
def test_columns_follow_n_features_and_n_categorical(
    small_generate: MakeParams, n_features: int, n_categorical: int
) -> None:
    frame = synthesize(
        small_generate(n_features=n_features, n_informative=4, n_categorical=n_categorical)
    )
    numeric = [f"num_{i:02d}" for i in range(n_features)]
    categorical = [f"cat_{i}" for i in range(n_categorical)]
    assert frame.columns.tolist() == [*numeric, *categorical, "target"]
    assert frame.shape == (300, n_features + n_categorical + 1)
    assert all(pd.api.types.is_float_dtype(frame[c]) for c in numeric)


def test_categorical_columns_hold_strings(small_generate: MakeParams) -> None:
    frame = synthesize(small_generate(n_categorical=2))
    for column in ("cat_0", "cat_1"):
        values = frame[column].tolist()
        assert all(isinstance(v, str) for v in values)
        assert set(values) == set(CATEGORIES)


def test_categorical_columns_carry_signal(small_generate: MakeParams) -> None:
    # Each is a noisy binning of an informative feature: class rates differ across its values.
    frame = synthesize(small_generate(label_noise=0.0))
    rates = frame.groupby("cat_0")["target"].mean()
    assert rates.max() - rates.min() > 0.2


def test_rows_are_shuffled_not_ordered_by_class(small_generate: MakeParams) -> None:
    target = synthesize(small_generate())["target"]
    assert not target.is_monotonic_increasing
    assert target.iloc[:100].nunique() == 2


def test_target_name_comes_from_params(small_generate: MakeParams) -> None:
    frame = synthesize(small_generate(target="churned"))
    assert frame.columns[-1] == "churned"
    assert "target" not in frame.columns


def test_multiclass_with_weights(small_generate: MakeParams) -> None:
    frame = synthesize(
        small_generate(n_samples=400, n_classes=3, weights=[0.6, 0.3, 0.1], label_noise=0.0)
    )
    shares = frame["target"].value_counts(normalize=True).sort_index()
    assert shares.index.tolist() == [0, 1, 2]
    assert shares.tolist() == pytest.approx([0.6, 0.3, 0.1], abs=0.03)


def test_weights_need_not_sum_to_one(small_generate: MakeParams) -> None:
    frame = synthesize(small_generate(n_samples=400, weights=[3, 1], label_noise=0.0))
    assert frame["target"].mean() == pytest.approx(0.25, abs=0.03)


def test_synthetic_source_is_recorded(small_generate: MakeParams) -> None:
    frame = generate(small_generate())
    assert frame.attrs["source"] == "synthetic"


def string_label_table() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "age": [23, 45, 31, 52, 38, 27],
            "plan": ["basic", "pro", "basic", "pro", "basic", "pro"],
            "Churned": ["no", "yes", "no", "yes", "no", "yes"],
        }
    )


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_file_source_reads_csv_and_parquet_with_string_labels(
    tmp_path: Path, small_generate: MakeParams, suffix: str
) -> None:
    path = tmp_path / f"customers{suffix}"
    table = string_label_table()
    if suffix == ".csv":
        table.to_csv(path, index=False)
    else:
        table.to_parquet(path, index=False)
    frame = generate(small_generate(source="file", path=str(path), target="Churned"))
    assert frame.columns.tolist() == ["age", "plan", "Churned"]
    assert frame["Churned"].tolist() == ["no", "yes", "no", "yes", "no", "yes"]
    assert frame["age"].tolist() == [23, 45, 31, 52, 38, 27]
    assert frame.attrs["source"] == str(path)


def missing_target_message(tmp_path: Path, target: str) -> tuple[Path, str]:
    """The table of ``string_label_table`` as a CSV file, and the error of loading it with
    ``target`` as the target column."""
    path = tmp_path / "customers.csv"
    string_label_table().to_csv(path, index=False)
    with pytest.raises(DataError) as caught:
        load_source(str(path), target)
    return path, str(caught.value)


def test_missing_target_column_suggests_the_close_name(tmp_path: Path) -> None:
    path, message = missing_target_message(tmp_path, "churned")
    assert str(path) in message
    assert "target column 'churned' not found" in message
    assert "did you mean 'Churned'?" in message
    assert "generate.target" in message


def test_missing_target_column_without_a_close_name_lists_the_columns(tmp_path: Path) -> None:
    _, message = missing_target_message(tmp_path, "label")
    assert "columns: age, plan, Churned" in message
    assert "did you mean" not in message


def test_file_source_errors_come_from_read_table(
    tmp_path: Path, small_generate: MakeParams
) -> None:
    missing = tmp_path / "nowhere.csv"
    with pytest.raises(DataError, match="file not found"):
        generate(small_generate(source="file", path=str(missing)))


def test_main_writes_parquet_that_remembers_its_source(
    tmp_path: Path, params_file: Callable[[dict[str, Any]], Path]
) -> None:
    source = tmp_path / "customers.csv"
    string_label_table().to_csv(source, index=False)
    params = params_file({"generate": {"source": "file", "path": str(source), "target": "Churned"}})
    out = tmp_path / "data" / "raw.parquet"
    assert run_cli(generate_stage.main, ["--params", str(params), "--out", str(out)]) == 0
    raw = read_table(out)
    pdt.assert_frame_equal(raw, read_table(source))
    # validate names the user's file, not data/raw.parquet, in its messages.
    assert raw.attrs["source"] == str(source)


def test_main_output_is_byte_identical_across_runs(
    tmp_path: Path, params_file: Callable[[dict[str, Any]], Path]
) -> None:
    params = params_file(
        {"generate": {"n_samples": 200, "n_features": 5, "n_informative": 3, "n_redundant": 1}}
    )
    first, second = tmp_path / "a.parquet", tmp_path / "b.parquet"
    for out in (first, second):
        assert run_cli(generate_stage.main, ["--params", str(params), "--out", str(out)]) == 0
    assert first.read_bytes() == second.read_bytes()


def test_synthesize_matches_building_the_frame_then_shuffling_it(
    small_generate: MakeParams,
) -> None:
    # synthesize gathers each column straight into the shuffled order to save memory; it must
    # give exactly the table of the plain construction, so raw.parquet keeps its bytes.
    import numpy as np
    from sklearn.datasets import make_classification

    params = small_generate(n_categorical=2)
    x, y = make_classification(
        n_samples=params.n_samples,
        n_features=params.n_features,
        n_informative=params.n_informative,
        n_redundant=params.n_redundant,
        n_classes=params.n_classes,
        flip_y=params.label_noise,
        class_sep=params.class_sep,
        shuffle=False,
        random_state=params.seed,
    )
    rng = np.random.default_rng(params.seed)
    expected = pd.DataFrame(x, columns=[f"num_{i:02d}" for i in range(params.n_features)])
    for i in range(params.n_categorical):
        noisy = x[:, i] + rng.normal(scale=0.5, size=len(x))
        edges = np.quantile(noisy, np.linspace(0, 1, len(CATEGORIES) + 1)[1:-1])
        expected[f"cat_{i}"] = np.asarray(CATEGORIES, dtype=object)[np.searchsorted(edges, noisy)]
    expected[params.target] = y
    expected = expected.iloc[rng.permutation(len(expected))].reset_index(drop=True)
    pdt.assert_frame_equal(synthesize(params), expected)
