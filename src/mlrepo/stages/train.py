"""Stage 4, train: cross-validate, optionally search hyperparameters, fit the final Pipeline.

The output is one scikit-learn ``Pipeline`` (the fitted preprocessor from featurize + the model)
and a metadata file (params, data hash, library versions, classes, feature schema). ``dvc.yaml``
runs ``python -m mlrepo.stages.train --train data/split/train.parquet --schema data/schema.json
--preprocessor models/preprocessor.joblib --model models/model.joblib --meta models/model.json
--metrics metrics/train.json``.
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
from sklearn.model_selection import ParameterGrid, ParameterSampler, StratifiedKFold
from sklearn.pipeline import Pipeline
from tqdm import tqdm

from mlrepo import metrics
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


def cross_validate(
    pipeline: Pipeline, x: pd.DataFrame, y: pd.Series, classes: list[Any], params: TrainParams
) -> dict[str, float]:
    """Mean and std of each metric over stratified folds; preprocessing refitted per fold."""
    folds = StratifiedKFold(n_splits=params.cv_folds, shuffle=True, random_state=params.seed)
    scores: list[dict[str, float]] = []
    splits = tqdm(
        folds.split(x, y), total=params.cv_folds, desc="cv folds", leave=False, disable=None
    )
    for train_idx, valid_idx in splits:
        fold = clone(pipeline).fit(x.iloc[train_idx], y.iloc[train_idx])
        proba = for_prediction(fold).predict_proba(x.iloc[valid_idx])
        scores.append(metrics.summary(y.iloc[valid_idx].to_numpy(), proba, classes))
    result = {}
    for key in scores[0]:
        values = np.array([s[key] for s in scores])
        result[f"{key}_mean"] = float(values.mean())
        result[f"{key}_std"] = float(values.std())
    return result


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


def train(
    frame: pd.DataFrame, schema: FeatureSchema, preprocessor: ColumnTransformer, params: TrainParams
) -> Trained:
    """Cross-validate each candidate, pick the best by ``train.scoring``, fit it on all of train."""
    x, y = frame[schema.names], frame[schema.target]
    smallest = int(y.value_counts().min())
    if smallest < params.cv_folds:
        raise DataError(
            f"train.cv_folds={params.cv_folds} but the smallest class has {smallest} training"
            f" row(s); each fold needs one. Fix: lower train.cv_folds or add data"
        )
    log = get_logger()
    results = []
    settings = candidates(params)
    for setting in tqdm(settings, desc="search", disable=None if len(settings) > 1 else True):
        unfitted = Pipeline(
            [("preprocess", clone(preprocessor)), ("model", build_estimator(params, setting))]
        )
        cv = cross_validate(unfitted, x, y, schema.classes, params)
        results.append({"params": setting, "cv": cv})
        if len(settings) > 1:
            log.info("candidate %s: %s=%.4f", setting, params.scoring, _score(cv, params))
    best = max(results, key=lambda r: _score(r["cv"], params))  # first best on ties
    model = build_estimator(params, best["params"]).fit(preprocessor.transform(x), y)
    pipeline = Pipeline([("preprocess", preprocessor), ("model", for_prediction(model))])
    return Trained(pipeline, best["cv"], best["params"], results if len(results) > 1 else [])


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
    frame = read_table(args.train)
    preprocessor = joblib.load(args.preprocessor)
    with timed(f"train {params.model} ({len(frame)} rows)"):
        trained = train(frame, schema, preprocessor, params)
    write_with(args.model, lambda tmp: joblib.dump(trained.pipeline, tmp))
    write_json(metadata(trained, schema, params, file_md5(args.train), len(frame)), args.meta)
    write_json(
        {"cv": trained.cv, "best_params": trained.best_params, "search": trained.candidates},
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
