"""XGBoost on a training split larger than one machine's memory: ``xgboost.dask`` on the cluster.

With ``train.distributed: true`` (``train.model: xgboost`` only) and a Dask cluster connected
(:mod:`mlrepo.cluster`), the workers read the split with ``dask.dataframe``, one partition per
Parquet row group. Each partition goes through the preprocessor featurize fitted (a row-wise
transform, to float32 as XGBoost stores features) and ``xgboost.dask`` fits one model over the
workers' partitions: each worker builds the histograms of its own rows and the workers sum them
every round. The stage's own process reads only the file's footer and the seeded sample of
``train.cv_max_rows`` rows that CV and search use, so no process holds the whole table; each
worker holds its share of the rows as float32, not the table.

The fitted library model is copied into a plain ``XGBClassifier`` inside the same
:class:`mlrepo.models.Booster` the single-process fit makes, so ``models/model.joblib``, its ONNX
export, the registry's hash check, batch prediction and the service are the same as for a
local fit. The model is not byte-identical to a local fit, nor between clusters of different
shape: the histogram bins come from quantile sketches made per worker and merged, and the
gradient sums are added across workers, so the trees depend on how the rows are spread over the
workers (their number and the partitions each one gets). That is why the choice is a param
(DVC records it) while the scheduler address stays out of params; the log records the cluster.

Early stopping holds out ``validation_fraction`` of each partition (seeded by ``train.seed``),
not a stratified share of the whole table, as a stratified split would need every label at once.

On the same path validate and featurize work partition by partition (:mod:`mlrepo.partitioned`)
and write the split one row group per partition, the partitions read here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from sklearn.compose import ColumnTransformer

from mlrepo import cluster
from mlrepo.errors import DataError
from mlrepo.logs import get_logger
from mlrepo.models import (
    AUTO_EARLY_STOPPING_ROWS,
    EARLY_STOPPING_KEYS,
    Booster,
    build_estimator,
    fitted_with,
)
from mlrepo.params import TrainParams
from mlrepo.schema import FeatureSchema

# The label codes' column in the encoded partitions (a name no preprocessor output takes).
LABEL = "__mlrepo_label__"


def row_count(path: str | Path) -> int:
    """Rows of the Parquet split, from its footer."""
    try:
        return int(pq.ParquetFile(path).metadata.num_rows)
    except FileNotFoundError:
        raise DataError(f"{path}: file not found; run the featurize stage first") from None
    except (pa.ArrowException, OSError) as exc:
        raise DataError(f"{path}: cannot be read as Parquet: {exc}") from None


def read_split(path: str | Path, columns: list[str]) -> Any:
    """The split as a lazy ``dask.dataframe``, one partition per row group.

    An absolute path: the workers open the file themselves, so on several machines it must be
    on storage they all mount (or an ``s3://`` URL, which ``read_parquet`` also takes).
    """
    import dask.dataframe as dd

    return dd.read_parquet(str(Path(path).resolve()), columns=columns, split_row_groups=True)


def cv_sample(split: Any, n_rows: int, params: TrainParams) -> pd.DataFrame:
    """About ``train.cv_max_rows`` rows drawn on the workers (each partition sampled with a
    seed derived from ``train.seed``), gathered here for CV and search."""
    assert params.cv_max_rows is not None  # TrainParams refuses null with distributed
    fraction = params.cv_max_rows / n_rows
    sample = split if fraction >= 1 else split.sample(frac=fraction, random_state=params.seed)
    try:
        frame: pd.DataFrame = sample.compute().reset_index(drop=True)
    except FileNotFoundError as exc:  # the first pass over the split, run by the workers
        raise DataError(
            f"the Dask workers cannot open the training split ({exc}). Fix: put it on storage"
            " every worker mounts at the same path, or run the workers on this machine"
        ) from None
    return frame


def encode(
    part: pd.DataFrame,
    preprocessor: ColumnTransformer,
    schema: FeatureSchema,
    classes: np.ndarray,
) -> pd.DataFrame:
    """One partition as the model sees it: preprocessed float32 features and the label codes."""
    values = np.asarray(preprocessor.transform(part[schema.names]), dtype=np.float32)
    encoded = pd.DataFrame(values, columns=_feature_names(preprocessor), index=part.index)
    encoded[LABEL] = pd.Index(classes).get_indexer(part[schema.target]).astype(np.int32)
    return encoded


def _feature_names(preprocessor: ColumnTransformer) -> list[str]:
    return [str(name) for name in preprocessor.get_feature_names_out()]


def _persist(*collections: Any) -> list[Any]:
    """The collections computed together on the workers (each partition read and encoded
    once) and held there for the fit; a worker lost meanwhile raises here, as Dask reports it."""
    from distributed import futures_of, wait

    remote = cluster.current()
    assert remote is not None
    persisted = list(remote.client.persist(list(collections)))
    futures = futures_of(persisted)
    wait(futures)
    for future in futures:
        if future.status != "finished":
            future.result()  # raises the task's error, or KilledWorker
    return persisted


def fit(
    split: Any,
    n_rows: int,
    schema: FeatureSchema,
    preprocessor: ColumnTransformer,
    params: TrainParams,
    best_params: dict[str, Any],
) -> Booster:
    """Fit ``best_params`` on every row of ``split`` with ``xgboost.dask`` on the cluster."""
    from xgboost import XGBClassifier
    from xgboost.dask import DaskXGBClassifier

    remote = cluster.current()
    if remote is None:
        raise RuntimeError("xgboost_dask.fit needs a connected cluster (mlrepo.cluster.connect)")
    classes = np.unique(np.asarray(schema.classes))  # sorted, as Booster.fit codes them
    names = _feature_names(preprocessor)
    meta = pd.DataFrame({name: pd.Series(dtype="float32") for name in names})
    meta[LABEL] = pd.Series(dtype="int32")
    encoded = split.map_partitions(encode, preprocessor, schema, classes, meta=meta)

    values = {**params.xgboost.model_dump(), **best_params}
    library = {key: value for key, value in values.items() if key not in EARLY_STOPPING_KEYS}
    stop = values["early_stopping"]
    if stop == "auto":
        stop = n_rows > AUTO_EARLY_STOPPING_ROWS
    model = DaskXGBClassifier(
        **library,
        random_state=params.seed,
        early_stopping_rounds=values["n_iter_no_change"] if stop else None,
    )
    model.client = remote.client
    get_logger().info(
        "final fit with xgboost.dask on %d rows in %d partition(s), on %d worker(s) at %s%s",
        n_rows,
        split.npartitions,
        remote.workers,
        remote.address,
        f", early stopping on {values['validation_fraction']:.0%} held out" if stop else "",
    )
    if stop:
        share = values["validation_fraction"]
        kept, held_out = encoded.random_split([1 - share, share], random_state=params.seed)
        x, y, x_eval, y_eval = _persist(kept[names], kept[LABEL], held_out[names], held_out[LABEL])
        model.fit(x, y, eval_set=[(x_eval, y_eval)], verbose=False)
    else:
        x, y = _persist(encoded[names], encoded[LABEL])
        model.fit(x, y, verbose=False)

    booster = model.get_booster()
    booster.feature_names = None  # the pipeline hands the model the preprocessor's arrays
    local = XGBClassifier(**library, random_state=params.seed, n_jobs=1)
    local.load_model(booster.save_raw("json"))
    n_iter = int(model.best_iteration) + 1 if stop else int(library["n_estimators"])
    unfitted = build_estimator(params, best_params)
    assert isinstance(unfitted, Booster)
    return fitted_with(unfitted, local, classes, n_iter)
