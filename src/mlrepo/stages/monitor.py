"""The monitor stage: drift of the current batch against the training data, recorded, not fatal.

The same drift run as ``mlrepo drift`` (``monitor.command.compare``), on the pipeline's own
files: the training split as the reference, the batch ``monitor.current`` names, and the model
the train stage wrote (DVC hands the stage the bytes dvc.lock records, so the registry's hash
check is not repeated). It writes the verdict as DVC metrics, every column's test, a Markdown
report and its plots. Drift is a finding, not a failure: the stage succeeds (``mlrepo drift`` is
the command whose exit code tells a scheduler).
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
from mlrepo.monitor.command import compare
from mlrepo.monitor.drift import check_columns
from mlrepo.monitor.result import DriftResult
from mlrepo.monitor.sources import Current, Reference, bundle_schema
from mlrepo.params import load_params
from mlrepo.prediction.core import from_bundle


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
    features = bundle_schema(bundle).features
    model = from_bundle(bundle, backend="sklearn")
    reference = Reference(
        read_table(args.reference), features, args.reference, model, str(args.model)
    )
    current = Current(read_table(args.current), args.current)
    check_columns(reference.frame, features, args.reference)
    check_columns(current.frame, features, args.current)
    with timed("monitor"):
        outcome = compare(reference, current, params, args.report, args.plots)
    write_json(outcome.metrics(), args.metrics)
    write_json(outcome.as_dict(), args.result)
    _log_verdict(log, outcome.result, args.current)
    return 0


def _log_verdict(log: logging.Logger, result: DriftResult, current: str) -> None:
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
