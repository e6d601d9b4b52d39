"""train.distributed: the xgboost.dask fit on an in-process Dask cluster, and its artifact.

A ``distributed.LocalCluster`` of two single-thread workers in this process is a real scheduler
and real workers (no subprocesses, so it starts in a second); the cluster of processes started
by distributed's CLI is in tests/integration/test_cluster_xgboost.py.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from xgboost import XGBClassifier

from mlrepo import cluster, xgboost_dask
from mlrepo.errors import DataError, run_cli
from mlrepo.io import write_json
from mlrepo.models import Booster
from mlrepo.params import FeaturizeParams, TrainParams, ValidateParams
from mlrepo.schema import FeatureSchema
from mlrepo.stages import train as train_stage
from mlrepo.stages.featurize import Split, featurize
from mlrepo.stages.validate import validate

ROW_GROUP = 80


@pytest.fixture
def labelled(raw_frame: pd.DataFrame) -> tuple[Split, FeatureSchema]:
    """The split with string labels, whose order of appearance is not their sorted order."""
    raw_frame["target"] = raw_frame["target"].map({0: "yes", 1: "no"})
    result = validate(raw_frame, "target", ValidateParams())
    assert result.frame is not None and result.schema is not None
    return featurize(result.frame, result.schema, FeaturizeParams()), result.schema


@pytest.fixture
def train_parquet(tmp_path: Path, labelled: tuple[Split, FeatureSchema]) -> Path:
    path = tmp_path / "train.parquet"
    table = pa.Table.from_pandas(labelled[0].train, preserve_index=False)
    pq.write_table(table, path, row_group_size=ROW_GROUP)  # 3 row groups = 3 partitions
    return path


@pytest.fixture
def local_cluster(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    from distributed import LocalCluster

    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None
    ) as running:
        monkeypatch.setenv(cluster.ADDRESS_VARIABLE, running.scheduler_address)
        yield running.scheduler_address


def distributed_params(small_train: Callable[..., TrainParams], **xgboost: Any) -> TrainParams:
    base = small_train("xgboost", distributed=True, cv_folds=2)
    return base.model_copy(update={"xgboost": base.xgboost.model_copy(update=xgboost)})


def test_encode_is_the_preprocessor_in_float32_and_the_sorted_label_codes(
    labelled: tuple[Split, FeatureSchema],
) -> None:
    split, schema = labelled
    part = split.train.iloc[:50]
    classes = np.array(["no", "yes"])
    encoded = xgboost_dask.encode(part, split.preprocessor, schema, classes)
    expected = split.preprocessor.transform(part[schema.names]).astype(np.float32)
    features = encoded.drop(columns=[xgboost_dask.LABEL])
    np.testing.assert_array_equal(features.to_numpy(), expected)
    assert (features.dtypes == np.float32).all()
    codes = encoded[xgboost_dask.LABEL].to_numpy()
    np.testing.assert_array_equal(classes[codes], part["target"].to_numpy())


@pytest.mark.parametrize("early_stopping", [False, True])
def test_distributed_fit_writes_the_same_kind_of_pipeline_as_a_local_fit(
    local_cluster: str,
    train_parquet: Path,
    labelled: tuple[Split, FeatureSchema],
    small_train: Callable[..., TrainParams],
    early_stopping: bool,
    tmp_path: Path,
) -> None:
    split, schema = labelled
    params = distributed_params(small_train, early_stopping=early_stopping, n_iter_no_change=3)
    with cluster.connect():
        trained, n_rows = train_stage.train_distributed(
            str(train_parquet), schema, split.preprocessor, params
        )
    assert n_rows == len(split.train)
    assert trained.cv_rows == len(split.train)  # cv_max_rows is above the split's rows
    pipeline = joblib.load(_dumped(trained.pipeline, tmp_path))
    model = pipeline.named_steps["model"]
    assert isinstance(model, Booster) and type(model.estimator_) is XGBClassifier
    assert model.estimator_.n_jobs == 1  # predictions single-threaded, as after a local fit
    assert list(pipeline.classes_) == ["no", "yes"]
    assert (1 <= trained.n_iter <= 20) if early_stopping else trained.n_iter == 20
    x = split.test[schema.names]
    proba = pipeline.predict_proba(x)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert (pipeline.predict(x) == split.test["target"].to_numpy()).mean() > 0.7


def _dumped(pipeline: Any, tmp_path: Path) -> Path:
    path = tmp_path / "model.joblib"
    joblib.dump(pipeline, path)
    return path


def test_distributed_without_a_scheduler_is_a_clear_error(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    params_file: Callable[[dict[str, Any]], Path],
    train_parquet: Path,
    labelled: tuple[Split, FeatureSchema],
) -> None:
    monkeypatch.delenv(cluster.ADDRESS_VARIABLE, raising=False)
    split, schema = labelled
    write_json(schema.model_dump(), tmp_path / "schema.json")
    joblib.dump(split.preprocessor, tmp_path / "preprocessor.joblib")
    params = params_file({"train": {"model": "xgboost", "distributed": True}})
    args = ["--params", str(params), "--train", str(train_parquet)]
    args += ["--schema", str(tmp_path / "schema.json")]
    args += ["--preprocessor", str(tmp_path / "preprocessor.joblib")]
    for name in ("model", "meta", "metrics"):
        args += [f"--{name}", str(tmp_path / "out" / name)]
    assert run_cli(train_stage.main, args) == 2
    err = capsys.readouterr().err
    assert "error: train.distributed is true but DASK_SCHEDULER_ADDRESS is not set" in err
    assert not (tmp_path / "out").exists()


def test_a_split_the_workers_cannot_open_is_a_clear_error(
    local_cluster: str,
    train_parquet: Path,
    labelled: tuple[Split, FeatureSchema],
    small_train: Callable[..., TrainParams],
) -> None:
    schema = labelled[1]
    with cluster.connect():
        split = xgboost_dask.read_split(train_parquet, [*schema.names, schema.target])
        train_parquet.unlink()  # here when the graph was built, gone when the workers read it
        with pytest.raises(DataError, match="the Dask workers cannot open the training split"):
            xgboost_dask.cv_sample(split, 240, distributed_params(small_train))


def test_the_version_check_finds_xgboost_as_it_is_installed() -> None:
    """requirements.txt pins the xgboost-cpu distribution: its version is compared with the
    workers', not reported missing on both sides (which would pass any mismatch)."""
    import xgboost

    assert f"xgboost {xgboost.__version__}," in cluster.code_digest()
    assert "missing" not in cluster.code_digest()
