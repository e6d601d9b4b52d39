"""Stage 4, train: cross-validate, optionally search hyperparameters, fit the final Pipeline.

The output is one scikit-learn ``Pipeline`` (the fitted preprocessor from featurize + the model)
and a metadata file (params, data hash, library versions, classes, feature schema); the metrics
hold the CV scores, the rows used and, with a search, every candidate's scores. With
``DASK_SCHEDULER_ADDRESS`` set, the CV and search fits run on that Dask cluster
(:mod:`mlrepo.cluster`) and the outputs do not change. With ``train.distributed: true``
(xgboost only) the stage never reads the split whole: CV and search run on a seeded sample and
the final fit runs on the cluster with ``xgboost.dask`` (:mod:`mlrepo.xgboost_dask`).
"""

from __future__ import annotations

import argparse
import platform
from dataclasses import dataclass
from typing import Any

import joblib
import numpy as np
import pandas as pd
import sklearn
from sklearn.base import clone
from sklearn.compose import ColumnTransformer
from sklearn.model_selection import (
    ParameterGrid,
    ParameterSampler,
    StratifiedKFold,
    train_test_split,
)
from sklearn.pipeline import Pipeline
from threadpoolctl import threadpool_limits

from mlrepo import cluster, cores, metrics, progress
from mlrepo.errors import DataError, run_cli
from mlrepo.io import file_md5, read_json, read_table, write_json, write_with
from mlrepo.logs import get_logger, setup_logging, timed
from mlrepo.models import build_estimator, for_prediction
from mlrepo.params import TrainParams, load_params
from mlrepo.schema import FeatureSchema


@dataclass
class Trained:
    pipeline: Pipeline
    cv: dict[str, float]
    best_params: dict[str, Any]
    candidates: list[dict[str, Any]]
    cv_rows: int
    n_iter: int | None  # boosting rounds of the final fit, where early stopping can cut them


def cv_sample(x: pd.DataFrame, y: pd.Series, params: TrainParams) -> tuple[pd.DataFrame, pd.Series]:
    """At most ``train.cv_max_rows`` rows, stratified and seeded, so CV does not cost k big fits."""
    if params.cv_max_rows is None or len(x) <= params.cv_max_rows:
        return x, y
    keep, _ = train_test_split(
        np.arange(len(x)), train_size=params.cv_max_rows, stratify=y, random_state=params.seed
    )
    keep.sort()  # the rows keep their file order, so folds do not depend on the sampler's order
    return x.iloc[keep], y.iloc[keep]


def cross_validate(
    unfitted: list[Pipeline], x: pd.DataFrame, y: pd.Series, classes: list[Any], params: TrainParams
) -> list[dict[str, float]]:
    """Mean and std of each metric over stratified folds, for each candidate pipeline.

    Every (candidate, fold) fit is one task; :mod:`mlrepo.cores` runs them side by side. The
    folds are the same for every candidate, and preprocessing is refitted inside each fold.
    """
    folds = list(
        StratifiedKFold(n_splits=params.cv_folds, shuffle=True, random_state=params.seed).split(
            x, y
        )
    )
    tasks = [(c, f) for c in range(len(unfitted)) for f in range(len(folds))]
    plan = cores.plan(len(tasks), len(folds[0][0]), params.n_jobs)
    get_logger().info(
        "cross-validating %d fit(s) on %d rows: %d at a time, %d thread(s) each",
        len(tasks),
        len(x),
        plan.workers,
        plan.threads,
    )

    def fit_fold(task: tuple[int, int]) -> dict[str, float]:
        candidate, fold = task
        train_idx, valid_idx = folds[fold]
        pipeline = clone(unfitted[candidate])
        pipeline.set_params(**_thread_params(pipeline, plan.threads))
        with threadpool_limits(plan.threads, user_api="openmp"):
            pipeline.fit(x.iloc[train_idx], y.iloc[train_idx])
            proba = for_prediction(pipeline).predict_proba(x.iloc[valid_idx])
        return metrics.summary(y.iloc[valid_idx].to_numpy(), proba, classes)

    # OpenMP limits hold per thread (set inside each task); BLAS limits are process-wide.
    with threadpool_limits(plan.threads, user_api="blas"):
        scores = list(
            progress.track(cores.run(fit_fold, tasks, plan.workers), len(tasks), "cv fits")
        )
    results = []
    for candidate in range(len(unfitted)):
        mine = scores[candidate * len(folds) : (candidate + 1) * len(folds)]
        summary = {}
        for key in mine[0]:
            values = np.array([s[key] for s in mine])
            summary[f"{key}_mean"] = float(values.mean())
            summary[f"{key}_std"] = float(values.std())
        results.append(summary)
    return results


def _thread_params(pipeline: Pipeline, threads: int) -> dict[str, int]:
    """Set every ``n_jobs`` of the pipeline to ``threads`` (the OpenMP ones go by threadpoolctl)."""
    return {
        key: threads
        for key, value in pipeline.get_params().items()
        if key.endswith("__n_jobs") and value is not None  # None: n_jobs has no effect there
    }


def candidates(params: TrainParams) -> list[dict[str, Any]]:
    """Hyperparameter settings to try: just the params section, or the declared search space."""
    if params.search == "grid":
        return list(ParameterGrid(params.search_space))
    if params.search == "random":
        return list(
            ParameterSampler(
                params.search_space, n_iter=params.search_iterations, random_state=params.seed
            )
        )
    return [{}]


@dataclass
class Selection:
    """The candidate CV picked: its params and scores, every candidate's scores (with a search)."""

    best_params: dict[str, Any]
    cv: dict[str, float]
    candidates: list[dict[str, Any]]
    cv_rows: int


def select(
    cv_x: pd.DataFrame,
    cv_y: pd.Series,
    schema: FeatureSchema,
    preprocessor: ColumnTransformer,
    params: TrainParams,
    n_rows: int,
) -> Selection:
    """Cross-validate each candidate on ``cv_x`` (the ``n_rows`` training rows or a sample of
    them) and pick the best by ``train.scoring``."""
    smallest = int(cv_y.value_counts().min())
    if smallest < params.cv_folds:
        sampled = (
            f" of the {len(cv_x)} sampled for CV (train.cv_max_rows)" if len(cv_x) < n_rows else ""
        )
        raise DataError(
            f"train.cv_folds={params.cv_folds} but the smallest class has {smallest} training"
            f" row(s){sampled}; each fold needs one. Fix: lower train.cv_folds or add data"
        )
    log = get_logger()
    settings = candidates(params)
    unfitted = [
        Pipeline([("preprocess", clone(preprocessor)), ("model", build_estimator(params, s))])
        for s in settings
    ]
    scores = cross_validate(unfitted, cv_x, cv_y, schema.classes, params)
    results = [{"params": s, "cv": cv} for s, cv in zip(settings, scores, strict=True)]
    if len(settings) > 1:
        for result in results:
            log.info(
                "candidate %s: %s=%.4f",
                result["params"],
                params.scoring,
                _score(result["cv"], params),
            )
    best = max(results, key=lambda r: _score(r["cv"], params))  # first best on ties
    return Selection(
        best["params"], best["cv"], results if len(results) > 1 else [], cv_rows=len(cv_x)
    )


def train(
    frame: pd.DataFrame, schema: FeatureSchema, preprocessor: ColumnTransformer, params: TrainParams
) -> Trained:
    """Cross-validate each candidate, pick the best by ``train.scoring``, fit it on all of train."""
    x, y = frame[schema.names], frame[schema.target]
    cv_x, cv_y = cv_sample(x, y, params)
    chosen = select(cv_x, cv_y, schema, preprocessor, params, len(x))
    plan = cores.plan(1, len(x), params.n_jobs)
    get_logger().info("final fit on %d rows with %d thread(s)", len(x), plan.threads)
    model = build_estimator(params, chosen.best_params, threads=plan.threads)
    with (
        threadpool_limits(plan.threads),
        progress.heartbeat(f"final {params.model} fit"),
    ):
        model.fit(preprocessor.transform(x), y)
    pipeline = Pipeline([("preprocess", preprocessor), ("model", for_prediction(model))])
    n_iter = getattr(model, "n_iter_", None)
    return Trained(
        pipeline,
        chosen.cv,
        chosen.best_params,
        chosen.candidates,
        cv_rows=chosen.cv_rows,
        n_iter=None if n_iter is None else int(np.max(n_iter)),
    )


def train_distributed(
    path: str, schema: FeatureSchema, preprocessor: ColumnTransformer, params: TrainParams
) -> tuple[Trained, int]:
    """:func:`train` for a split too large for this process, with the model and its rows:
    CV and search on a seeded sample of the split, the final fit with ``xgboost.dask`` on the
    connected cluster (:mod:`mlrepo.xgboost_dask`)."""
    from mlrepo import xgboost_dask  # late: the local path does not import dask.dataframe

    n_rows = xgboost_dask.row_count(path)
    split = xgboost_dask.read_split(path, [*schema.names, schema.target])
    sample = xgboost_dask.cv_sample(split, n_rows, params)
    x, y = sample[schema.names], sample[schema.target]
    chosen = select(x, y, schema, preprocessor, params, n_rows)
    del sample, x, y
    with progress.heartbeat("final xgboost.dask fit"):
        model = xgboost_dask.fit(split, n_rows, schema, preprocessor, params, chosen.best_params)
    pipeline = Pipeline([("preprocess", preprocessor), ("model", for_prediction(model))])
    trained = Trained(
        pipeline,
        chosen.cv,
        chosen.best_params,
        chosen.candidates,
        cv_rows=chosen.cv_rows,
        n_iter=model.n_iter_,
    )
    return trained, n_rows


def _score(cv: dict[str, float], params: TrainParams) -> float:
    key = metrics.SCORE_KEYS[params.scoring]
    value = cv[f"{key}_mean"]
    return -value if params.scoring == "neg_log_loss" else value


def metadata(
    trained: Trained, schema: FeatureSchema, params: TrainParams, data_md5: str, n_rows: int
) -> dict[str, Any]:
    """What a registry, predictor or service needs to know about the model (no clock time)."""
    return {
        "model": params.model,
        "params": {**params.model_params().model_dump(), **trained.best_params},
        "seed": params.seed,
        "classes": schema.classes,
        "feature_schema": schema.model_dump(),
        "training_data": {"md5": data_md5, "rows": n_rows},
        "cv": trained.cv,
        "versions": {
            "python": platform.python_version(),
            "scikit-learn": sklearn.__version__,
            "numpy": np.__version__,
            "pandas": pd.__version__,
            "joblib": joblib.__version__,
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    for name in ("train", "schema", "preprocessor", "model", "meta", "metrics"):
        parser.add_argument(f"--{name}", required=True)
    args = parser.parse_args(argv)
    log = setup_logging("train")
    params = load_params(args.params).train
    schema = FeatureSchema.model_validate(read_json(args.schema))
    preprocessor = joblib.load(args.preprocessor)
    if params.distributed:
        if cluster.address() is None:
            raise cluster.ClusterError(
                f"train.distributed is true but {cluster.ADDRESS_VARIABLE} is not set: the final"
                " fit runs on a Dask cluster. Fix: start one (make cluster) and export the"
                " address it prints, or set train.distributed: false"
            )
        with timed(f"train {params.model} with xgboost.dask"), cluster.connect():
            trained, n_rows = train_distributed(args.train, schema, preprocessor, params)
    else:
        frame = read_table(args.train)
        n_rows = len(frame)
        with timed(f"train {params.model} ({n_rows} rows)"), cluster.connect():
            trained = train(frame, schema, preprocessor, params)
        del frame
    write_with(args.model, lambda tmp: joblib.dump(trained.pipeline, tmp))
    write_json(metadata(trained, schema, params, file_md5(args.train), n_rows), args.meta)
    write_json(
        {
            "cv": trained.cv,
            "cv_rows": trained.cv_rows,
            "train_rows": n_rows,
            "n_iter": trained.n_iter,
            "best_params": trained.best_params,
            "search": trained.candidates,
        },
        args.metrics,
    )
    log.info(
        "cv %s: %.4f ± %.4f",
        params.scoring,
        trained.cv[f"{metrics.SCORE_KEYS[params.scoring]}_mean"],
        trained.cv[f"{metrics.SCORE_KEYS[params.scoring]}_std"],
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
