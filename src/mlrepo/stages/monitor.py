"""Stage 8, monitor: drift of the current batch against the training data, recorded, not fatal.

``dvc.yaml`` runs ``python -m mlrepo.stages.monitor --reference data/split/train.parquet
--current ${monitor.current} --model models/model.joblib --meta models/model.json
--metrics metrics/drift.json --result reports/drift.json --report reports/drift.md
--plots reports/drift_plots``.
Drift is a finding, not a failure: the stage writes it and succeeds (``mlrepo drift`` is the
command whose exit code tells a scheduler).
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from mlrepo.bundle import ModelBundle
from mlrepo.errors import run_cli
from mlrepo.io import read_table, write_json
from mlrepo.logs import setup_logging, timed
from mlrepo.monitor.drift import PREDICTION, DriftResult, check_columns, detect_drift
from mlrepo.monitor.report import write_report
from mlrepo.monitor.sources import predicted_classes
from mlrepo.params import load_params
from mlrepo.predictor import load_predictor
from mlrepo.schema import FeatureSchema


def model_bundle(model: Path, meta: Path) -> ModelBundle:
    """The pipeline's model files as a bundle. DVC hands the stage the exact bytes dvc.lock
    records for these dependencies, so the registry's hash check is not repeated here."""
    metadata = meta.read_bytes()
    return ModelBundle(
        files={"pipeline": model.read_bytes(), "metadata": metadata},
        metadata=json.loads(metadata),
        source=str(model),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").replace("``", ""))
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--reference", required=True, help="the training table")
    parser.add_argument("--current", required=True, help="the batch to check")
    parser.add_argument("--model", required=True, type=Path)
    parser.add_argument("--meta", required=True, type=Path)
    parser.add_argument("--metrics", required=True, help="JSON: the verdict (DVC metrics)")
    parser.add_argument("--result", required=True, help="JSON: every column's test")
    parser.add_argument("--report", required=True, type=Path, help="Markdown report")
    parser.add_argument("--plots", required=True, type=Path, help="folder of PNGs")
    args = parser.parse_args(argv)
    log = setup_logging("monitor")
    params = load_params(args.params).monitor
    bundle = model_bundle(args.model, args.meta)
    features = FeatureSchema.model_validate(bundle.metadata["feature_schema"]).features
    reference, current = read_table(args.reference), read_table(args.current)
    check_columns(reference, features, args.reference)
    check_columns(current, features, args.current)
    with timed("monitor"):
        predictor = load_predictor(bundle, backend="sklearn")
        predictions = (
            predicted_classes(predictor, reference, "reference"),
            predicted_classes(predictor, current, "current"),
        )
        result = detect_drift(
            reference, current, features, params, predictions, source=args.current
        )
    sources = {"reference": args.reference, "current": args.current, "model": str(args.model)}
    write_json(result.metrics(), args.metrics)
    write_json({**result.as_dict(), "sources": sources}, args.result)
    samples = {f.name: (reference[f.name], current[f.name]) for f in features}
    samples[PREDICTION] = predictions
    write_report(result, samples, args.report, args.plots, sources)
    _log_verdict(log, result, args.current)
    return 0


def _log_verdict(log: logging.Logger, result: DriftResult, current: str) -> None:
    if warning := result.small_sample_warning():
        log.warning("%s: %s", current, warning)
    verdict = "DRIFT" if result.drift else "no drift"
    log.info(
        "%s: %s (%d of %d features drifted; prediction drift: %s)",
        current,
        verdict,
        result.n_drifted,
        len(result.features),
        "yes" if result.prediction_drift else "no",
    )
    log.info("multiple testing: %s", result.multiple_testing())


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
